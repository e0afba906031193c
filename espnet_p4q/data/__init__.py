"""Kaldi-style data directories: reading, writing, validation and per-speaker splits."""
