"""systems.json: which systems the report compares and where each one's files are.

Why a manifest rather than directory globbing: a paper table has a fixed row order, labels and
two baselines (FP32 and NF4) that no directory name can tell apart reliably.

Format (relative paths are taken from ``root``, the recipe directory)::

    {"data_dir": "data", "speakers": "eval", "reference_system": "fp32", "nf4_system": "nf4",
     "systems": [{"name": "fp32", "label": "FP32 base", "decode_dir": "exp/p4q/decode/fp32",
                  "model_files": ["exp/asr/valid.acc.ave.pth"], "speaker_dir": null}, ...]}

``data_dir`` defaults to "data", ``speakers`` ("eval" or "tune") to "eval", ``label`` to the name;
``speaker_dir`` may be left out (no per-speaker files). Keys starting with '_' are comments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from espnet_p4q.report.json_fields import ReportError, field, load_json, need_object, reject_unknown
from espnet_p4q.report.speakers import LIST_FILES

TOP_KEYS = ("data_dir", "speakers", "reference_system", "nf4_system", "systems")
SYSTEM_KEYS = ("name", "label", "decode_dir", "model_files", "speaker_dir")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # safe in file names and table cells


@dataclass(frozen=True)
class SystemSpec:
    """One row of the report."""

    name: str
    label: str
    decode_dir: Path
    model_files: Tuple[Path, ...]
    speaker_dir: Optional[Path]


@dataclass(frozen=True)
class Manifest:
    path: Path
    data_dir: Path
    speakers: str
    reference_system: str
    nf4_system: str
    systems: Tuple[SystemSpec, ...]

    def system(self, name: str) -> SystemSpec:
        return next(s for s in self.systems if s.name == name)


def resolve(root: Path, raw: str) -> Path:
    """``raw`` as given when absolute, else under ``root``."""
    return Path(raw) if os.path.isabs(raw) else root / raw


def _system(obj, where: str, root: Path) -> SystemSpec:
    need_object(obj, where)
    reject_unknown(obj, SYSTEM_KEYS, where)
    name = field(obj, "name", "str", where)
    if not NAME_RE.match(name):
        raise ReportError(f"{where}: system name '{name}' must be letters, digits and _.+- "
                          "(it names table columns)")
    label = field(obj, "label", "str", where, default=name) or name
    decode_dir = field(obj, "decode_dir", "str", where)
    files = field(obj, "model_files", "list", where)
    speaker_dir = field(obj, "speaker_dir", "str", where, default=None, nullable=True)
    # a system made only of per-speaker models (full fine-tuning) needs no shared file
    if (not files and not speaker_dir) or not all(isinstance(f, str) and f for f in files):
        raise ReportError(f"{where}: 'model_files' must be a list of paths, non-empty unless "
                          "the system has a speaker_dir")
    return SystemSpec(name, label, resolve(root, decode_dir),
                      tuple(resolve(root, f) for f in files),
                      resolve(root, speaker_dir) if speaker_dir else None)


def load_manifest(path: os.PathLike, root: os.PathLike = "") -> Manifest:
    """Read and check systems.json; relative paths in it are resolved against ``root``."""
    path, root = Path(path), Path(root)
    obj = need_object(load_json(path, "systems manifest"), str(path))
    where = str(path)
    reject_unknown(obj, TOP_KEYS, where)
    speakers = field(obj, "speakers", "str", where, default="eval")
    if speakers not in LIST_FILES:
        raise ReportError(f"{where}: 'speakers' must be one of {sorted(LIST_FILES)}, "
                          f"got '{speakers}'")
    raw = field(obj, "systems", "list", where)
    if not raw:
        raise ReportError(f"{where}: 'systems' is empty")
    systems = tuple(_system(s, f"{where}: systems[{i}]", root) for i, s in enumerate(raw))
    names = [s.name for s in systems]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ReportError(f"{where}: system name(s) {', '.join(dup)} used more than once")
    baselines = {}
    for key in ("reference_system", "nf4_system"):
        baselines[key] = field(obj, key, "str", where)
        if baselines[key] not in names:
            raise ReportError(f"{where}: '{key}' is '{baselines[key]}', which is not among the "
                              f"systems ({', '.join(names)})")
    data_dir = resolve(root, field(obj, "data_dir", "str", where, default="data"))
    return Manifest(path, data_dir,
                    speakers, baselines["reference_system"], baselines["nf4_system"], systems)
