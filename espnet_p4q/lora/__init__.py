"""LoRA adapters (built on loralib) over full-precision or packed 4-bit ESPnet layers."""
