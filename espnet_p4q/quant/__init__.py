"""Block-wise k-bit NormalFloat quantisation of ESPnet models with really packed 4-bit weights."""
