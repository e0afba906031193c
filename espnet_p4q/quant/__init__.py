"""Block-wise k-bit NormalFloat quantisation of ESPnet models with really packed weights: 4-bit
through bitsandbytes (fast CPU paths in layers.py), 2/3/8-bit in kbit*.py, per-module widths,
KL sensitivity and bit allocation for mixed precision."""
