"""Facts about a system besides its WER: size on disk, per-speaker fine-tuning, decoding speed.

Why read the files the pipeline left rather than recompute: the size is what a deployment
stores (the files themselves), and adaptation time and RTF were measured when the work was done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from espnet_p4q.report.json_fields import ReportError, field, load_json, need_object
from espnet_p4q.report.manifest import SystemSpec
from espnet_p4q.report.speakers import set_name

SPEAKER_FILES = ("adapter.pth", "model.pth")
"""What a speaker keeps, looked for in this order: a LoRA adapter, else a fine-tuned model."""


def path_bytes(path: Path, what: str) -> int:
    """Size of a file, or of all files under a directory (a packed model directory)."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    raise ReportError(f"{path}: no such {what}")


@dataclass(frozen=True)
class Size:
    model_bytes: int
    speaker_file: Optional[str]
    """File name a speaker keeps under speaker_dir/<spk>/ (None: nothing per speaker)."""
    speaker_bytes_mean: float

    @property
    def total_bytes(self) -> float:
        return self.model_bytes + self.speaker_bytes_mean


def size_on_disk(spec: SystemSpec, speakers: List[str]) -> Size:
    """The model files plus the mean per-speaker file over ``speakers``."""
    model = sum(path_bytes(f, f"model file (system '{spec.name}')") for f in spec.model_files)
    if spec.speaker_dir is None:
        return Size(model, None, 0.0)
    kinds, sizes = set(), []
    for spk in speakers:
        d = spec.speaker_dir / spk
        name = next((n for n in SPEAKER_FILES if (d / n).exists()), None)
        if name is None:
            raise ReportError(f"{d}: neither {' nor '.join(SPEAKER_FILES)} (system '{spec.name}', "
                              f"speaker '{spk}')")
        kinds.add(name)
        sizes.append(path_bytes(d / name, "speaker file"))
    if len(kinds) > 1:
        raise ReportError(f"{spec.speaker_dir}: speakers keep different files "
                          f"({', '.join(sorted(kinds))}); one system, one kind of speaker file")
    return Size(model, kinds.pop(), sum(sizes) / len(sizes))


@dataclass(frozen=True)
class Adaptation:
    """Means over the speakers of what their train.json says."""

    params: float
    share: float
    base_params: float
    wall_seconds: float
    steps: Optional[float]
    utterances: Optional[float]


def _mean(values: List[float]) -> float:
    return sum(values) / len(values)


def adaptation(spec: SystemSpec, speakers: List[str]) -> Optional[Adaptation]:
    """Per-speaker fine-tuning facts, None for a system without a speaker_dir."""
    if spec.speaker_dir is None:
        return None
    rows = []
    for spk in speakers:
        path = spec.speaker_dir / spk / "train.json"
        obj = need_object(load_json(path, "fine-tuning summary"), str(path))
        row = {k: field(obj, k, kind, str(path)) for k, kind in (
            ("wall_seconds", "number"), ("adapter_params", "int"), ("adapter_share", "number"),
            ("base_params", "int"))}
        for k in ("steps", "utterances"):
            row[k] = field(obj, k, "int", str(path), default=None, nullable=True)
        if row["wall_seconds"] < 0 or row["adapter_params"] < 0 or row["base_params"] <= 0 \
                or not 0 <= row["adapter_share"] <= 1:
            raise ReportError(f"{path}: impossible values (wall_seconds {row['wall_seconds']}, "
                              f"adapter_params {row['adapter_params']}, adapter_share "
                              f"{row['adapter_share']}, base_params {row['base_params']})")
        rows.append(row)

    def opt_mean(k: str) -> Optional[float]:
        vals = [r[k] for r in rows]
        return None if any(v is None for v in vals) else _mean(vals)

    return Adaptation(params=_mean([r["adapter_params"] for r in rows]),
                      share=_mean([r["adapter_share"] for r in rows]),
                      base_params=_mean([r["base_params"] for r in rows]),
                      wall_seconds=_mean([r["wall_seconds"] for r in rows]),
                      steps=opt_mean("steps"), utterances=opt_mean("utterances"))


def decoding_rtf(decode_dir: Path, speakers: List[str]) -> Tuple[Optional[float], List[Path]]:
    """(RTF over the speakers' sets, decode.json files that are missing).

    Audio-weighted (total decoding seconds / total audio seconds) when every decode.json has both
    numbers, else the mean of their ``rtf``; None when any is missing.
    """
    missing, rtfs, dec, audio = [], [], [], []
    for spk in speakers:
        path = decode_dir / set_name(spk) / "decode.json"
        if not path.is_file():
            missing.append(path)
            continue
        obj = need_object(load_json(path, "decoding summary"), str(path))
        rtf = field(obj, "rtf", "number", str(path))
        if rtf < 0:
            raise ReportError(f"{path}: negative rtf {rtf}")
        rtfs.append(rtf)
        dec.append(field(obj, "decode_seconds", "number", str(path), default=None, nullable=True))
        audio.append(field(obj, "audio_seconds", "number", str(path), default=None, nullable=True))
    if missing:
        return None, missing
    if all(v is not None for v in dec + audio) and sum(audio) > 0:
        return sum(dec) / sum(audio), []
    return _mean(rtfs), []
