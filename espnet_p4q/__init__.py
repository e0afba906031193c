"""espnet-p4q: NF4-quantised ESPnet ASR models personalised with per-speaker LoRA (P4Q)."""

__version__ = "0.1.0"
