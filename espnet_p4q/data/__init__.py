"""Kaldi-style data directories: reading and writing, validation, audio loading, sentence draws."""
