"""Glue to espnet2: build ESPnet ASR models, load packed bases, attach adapters."""
