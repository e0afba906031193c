"""LoRA settings, read from YAML under conf/lora/."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Union

from espnet_p4q.config_check import load_checked


@dataclass
class LoRAConfig:
    """Rank, scaling, dropout and target modules (regular expressions over module names).

    bias: "none" trains no bias; "lora_only" the biases of the adapted layers; "all" every bias
    (loralib's three modes).
    """

    targets: List[str]
    rank: int = 4
    alpha: float = 8.0
    dropout: float = 0.0
    bias: str = "none"
    exclude: List[str] = field(default_factory=list)

    def __post_init__(self):
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0 (the branch is scaled by alpha/rank), got {self.alpha}")
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.bias not in ("none", "lora_only", "all"):
            raise ValueError(f"bias must be none, lora_only or all, got {self.bias!r}")
        if not self.targets:
            raise ValueError("LoRA needs at least one target pattern")
        self.alpha = float(self.alpha)

    @classmethod
    def from_yaml(cls, path: Union[str, Path], **overrides) -> "LoRAConfig":
        """Read a LoRA YAML, checked by type and range (errors name the file)."""
        return load_checked(cls, path, what="LoRA option", **overrides)

    def to_dict(self) -> dict:
        return asdict(self)
