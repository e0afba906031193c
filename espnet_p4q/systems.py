"""The registry of systems: the rows of the P4Q comparison, read from conf/systems.yaml.

Why one registry: a system (which base, which per-speaker part, how it is trained and decoded,
what the report calls it) used to be spelled in the pipeline, the tuning script, the sweep and
the report; now each reads it from here, and adding a system is one entry in the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from espnet_p4q.config_check import build_checked, read_yaml_mapping
from espnet_p4q.fileio import InputError

DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "conf" / "systems.yaml"


@dataclass
class Adaptation:
    """Per-speaker training of a system (stage 8)."""

    mode: str
    train_conf: str
    init: str = "random"
    labels: str = "reference"

    def __post_init__(self):
        if self.mode not in ("lora", "full"):
            raise ValueError(f"adapt mode must be lora or full, got {self.mode!r}")
        if self.init not in ("pretrained", "random"):
            raise ValueError(f"adapt init must be pretrained or random, got {self.init!r}")
        if self.mode == "full" and self.init != "random":
            raise ValueError("full fine-tuning starts from the base: init must be random (the default)")


@dataclass
class System:
    """One row of the comparison."""

    label: str
    base: str
    adapter: Optional[str] = None
    adapt: Optional[Adaptation] = None
    plot_label: Optional[str] = None
    name: str = ""

    def __post_init__(self):
        if self.base not in ("fp32", "nf4"):
            raise ValueError(f"base must be fp32 or nf4, got {self.base!r}")
        if self.adapter not in (None, "pretrained"):
            raise ValueError(f"adapter must be pretrained (or absent), got {self.adapter!r}")
        if self.adapter and self.adapt:
            raise ValueError("a system has a shared adapter or per-speaker adaptation, not both")
        if self.adapt and self.adapt.mode == "lora" and self.base != "nf4":
            raise ValueError("LoRA adaptation is on the NF4 base here")

    @property
    def per_speaker(self) -> str:
        """'adapters' (LoRA per speaker), 'models' (FFT per speaker), 'adapter' (one for all) or ''."""
        if self.adapt:
            return "adapters" if self.adapt.mode == "lora" else "models"
        return "adapter" if self.adapter else ""


def load_registry(path: Union[str, Path] = DEFAULT_REGISTRY) -> Dict[str, System]:
    """The systems of ``path`` by name, in file order, every entry checked."""
    raw = read_yaml_mapping(path)
    if not raw:
        raise InputError("no systems", path)
    out: Dict[str, System] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise InputError(f"system '{name}' must be a mapping of options", path)
        entry = dict(entry)
        if "adapt" in entry:
            if not isinstance(entry["adapt"], dict):
                raise InputError(f"system '{name}': 'adapt' must be a mapping", path)
            entry["adapt"] = build_checked(Adaptation, entry["adapt"], path, f"'{name}' adapt option")
        system = build_checked(System, {**entry, "name": str(name)}, path, f"'{name}' option")
        out[str(name)] = system
    for s in out.values():
        if s.adapt and s.adapt.labels != "reference" and s.adapt.labels not in out:
            raise InputError(f"system '{s.name}': labels come from '{s.adapt.labels}', which is not a system", path)
    return out


def select(registry: Dict[str, System], names: List[str], source: str = "--systems") -> List[System]:
    """The named systems in the given order; an unknown name is an error listing the known ones."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise InputError(f"{source}: unknown system(s) {', '.join(unknown)}; registered: {', '.join(registry)}")
    return [registry[n] for n in names]


@dataclass(frozen=True)
class Layout:
    """Where a recipe keeps the shared models (p4q.sh decides; the registry only names kinds)."""

    asr_exp: str            # exp/asr_<tag>: config.yaml and base.pth (FP32)
    nf4_dir: str            # the packed base of stage 6
    pretrained_adapter: str  # the LoRA of stage 7

    def config(self, s: System) -> str:
        return f"{self.nf4_dir}/config.yaml" if s.base == "nf4" else f"{self.asr_exp}/config.yaml"

    def model(self, s: System) -> str:
        return f"{self.nf4_dir}/model.pth" if s.base == "nf4" else f"{self.asr_exp}/base.pth"

    def per_speaker(self, s: System) -> str:
        """'', 'adapter:FILE', 'adapters:DIR' or 'models:DIR' (the decoder's per-speaker part)."""
        kind = s.per_speaker
        if kind == "adapter":
            return f"adapter:{self.pretrained_adapter}"
        if kind:
            return f"{kind}:{self.asr_exp}/adapt_{s.name}"
        return ""

    def manifest_entry(self, s: System) -> dict:
        """The system's entry of systems.json (espnet_p4q.report.manifest)."""
        per = self.per_speaker(s)
        kind, _, where = per.partition(":")
        files = [] if kind == "models" else [self.model(s)] + ([where] if kind == "adapter" else [])
        return {"name": s.name, "label": s.label, "decode_dir": f"{self.asr_exp}/decode_{s.name}",
                "model_files": files, "speaker_dir": where if kind in ("adapters", "models") else None}
