"""Quantisation settings, read from YAML under conf/quant/."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Union

from espnet_p4q.config_check import load_checked

_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class QuantConfig:
    """Which modules become block-wise 4-bit NormalFloat, and how.

    targets/exclude: regular expressions over module names (see espnet_p4q.patterns). Linear,
    Conv1d/Conv2d and Embedding modules can be targets; everything else stays in full precision.
    """

    targets: List[str]
    exclude: List[str] = field(default_factory=list)
    quant_type: str = "nf4"
    blocksize: int = 64
    double_quant: bool = True
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.quant_type not in ("nf4", "fp4"):
            raise ValueError(f"quant_type must be nf4 or fp4, got {self.quant_type!r}")
        if self.blocksize not in (32, 64, 128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"blocksize must be a power of two in 32..4096, got {self.blocksize}")
        if self.compute_dtype not in _DTYPES:
            raise ValueError(f"compute_dtype must be one of {_DTYPES}, got {self.compute_dtype!r}")
        if not self.targets:
            raise ValueError("quantisation needs at least one target pattern")

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "QuantConfig":
        """Read a quantisation YAML, checked by type and range (errors name the file)."""
        return load_checked(cls, path, what="quantisation option")

    def to_dict(self) -> dict:
        return asdict(self)
