"""Edge packages: one directory with everything a device needs to decode with one speaker's model."""
