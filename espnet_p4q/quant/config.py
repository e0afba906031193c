"""Quantisation settings, read from YAML under conf/quant/."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
import re
from typing import Any, List, Union

from espnet_p4q.config_check import load_checked

_DTYPES = ("float32", "bfloat16", "float16")
BIT_WIDTHS = (2, 3, 4, 8)


@dataclass
class QuantConfig:
    """Which modules become block-wise 4-bit NormalFloat, and how.

    targets/exclude: regular expressions over module names (see espnet_p4q.patterns). Linear,
    Conv1d/Conv2d and Embedding modules can be targets; everything else stays in full precision.

    Mixed precision (optional): ``bits`` is the NormalFloat width of every target (4: bitsandbytes'
    NF4, the default; 2, 3, 8: espnet_p4q.quant.kbit) and ``mixed`` a list of
    ``{pattern: <regex>, bits: <k>}`` rules; a target takes the bits of the first rule whose
    pattern fully matches its name, else ``bits``. Configs without these keys are pure NF4 and
    serialise exactly as before (:meth:`to_dict` leaves the defaults out).
    """

    targets: List[str]
    exclude: List[str] = field(default_factory=list)
    quant_type: str = "nf4"
    blocksize: int = 64
    double_quant: bool = True
    compute_dtype: str = "float32"
    bits: int = 4
    mixed: List[Any] = field(default_factory=list)

    def __post_init__(self):
        if self.quant_type not in ("nf4", "fp4"):
            raise ValueError(f"quant_type must be nf4 or fp4, got {self.quant_type!r}")
        if self.blocksize not in (32, 64, 128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"blocksize must be a power of two in 32..4096, got {self.blocksize}")
        if self.compute_dtype not in _DTYPES:
            raise ValueError(f"compute_dtype must be one of {_DTYPES}, got {self.compute_dtype!r}")
        if not self.targets:
            raise ValueError("quantisation needs at least one target pattern")
        if self.bits not in BIT_WIDTHS:
            raise ValueError(f"bits must be one of {BIT_WIDTHS}, got {self.bits!r}")
        self.mixed = [_mixed_rule(i, r) for i, r in enumerate(self.mixed)]
        if self.quant_type != "nf4" and self.widths() != {4}:
            raise ValueError(f"bits other than 4 are NormalFloat: quant_type must be nf4, got {self.quant_type!r}")

    def widths(self) -> set:
        """Every bit width this config can give a module."""
        return {self.bits} | {r["bits"] for r in self.mixed}

    def bits_for(self, name: str) -> int:
        """The bit width of the target module called ``name`` (first matching mixed rule, else bits)."""
        for rule in self.mixed:
            if re.fullmatch(rule["pattern"], name):
                return rule["bits"]
        return self.bits

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "QuantConfig":
        """Read a quantisation YAML, checked by type and range (errors name the file)."""
        return load_checked(cls, path, what="quantisation option")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["bits"] == 4 and not d["mixed"]:  # pure NF4: the dict (and files) of before mixed precision
            del d["bits"], d["mixed"]
        return d


def _mixed_rule(i: int, rule: Any) -> dict:
    """One ``mixed`` entry checked: a mapping of a compilable ``pattern`` and ``bits`` in BIT_WIDTHS."""
    where = f"mixed[{i}]"
    if not isinstance(rule, dict) or set(rule) != {"pattern", "bits"}:
        raise ValueError(f"'{where}' must be a mapping with exactly 'pattern' and 'bits', got {rule!r}")
    pattern, bits = rule["pattern"], rule["bits"]
    if not isinstance(pattern, str):
        raise ValueError(f"'{where}.pattern' must be a string, got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"'{where}.pattern' is not a regular expression: {e}") from None
    if isinstance(bits, bool) or bits not in BIT_WIDTHS:
        raise ValueError(f"'{where}.bits' must be one of {BIT_WIDTHS}, got {bits!r}")
    return {"pattern": pattern, "bits": int(bits)}
