"""Decode with an edge package: packed NF4 base + one speaker's LoRA adapter, on CPU.

Why this shape: a device loads the package once and decodes many files, so loading is one call
(:func:`load_recognizer`) and decoding one call per file (:func:`transcribe`). The model is an
espnet2 ``Speech2Text`` (ESPnet's own beam search and front end) whose weights are the package's
packed base, with the adapter injected and loaded through the project's adapter files, so the
device decodes exactly as ``espnet_p4q.bin.decode`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.config_check import read_yaml_mapping
from espnet_p4q.decoding import speech2text
from espnet_p4q.fileio import InputError

MANIFEST = "manifest.json"
DECODE_CONFIG = "decode.yaml"
ADAPTER = "adapter.pth"


def read_manifest(package: Path) -> Dict:
    path = Path(package) / MANIFEST
    if not path.is_file():
        raise InputError("not an edge package (no manifest.json)", path)
    return json.loads(path.read_text(encoding="utf-8"))


def load_recognizer(package: Path, threads: Optional[int] = 1):
    """The package's Speech2Text on CPU: packed base loaded, adapter (if any) swapped in."""
    import torch

    from espnet_p4q.lora.adapter_io import load_adapter, read_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.models.asr_model import CONFIG_NAME, load_quantized_asr_model

    package = Path(package)
    read_manifest(package)
    if threads:
        torch.set_num_threads(threads)
    s2t = speech2text(package / CONFIG_NAME, read_yaml_mapping(package / DECODE_CONFIG))
    _, _, fingerprint = load_quantized_asr_model(package, into=s2t.asr_model)
    if (package / ADAPTER).is_file():
        inject_lora(s2t.asr_model, LoRAConfig(**read_adapter(package / ADAPTER)["lora_config"]))
        load_adapter(s2t.asr_model, package / ADAPTER, fingerprint)
    s2t.asr_model.eval()
    return s2t


def read_audio(path: Path):
    """(float32 samples in [-1, 1], sample rate) of a mono WAV/FLAC file."""
    import numpy as np
    import soundfile

    wav, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if wav.shape[1] != 1:
        raise InputError(f"expected mono audio, got {wav.shape[1]} channels", path)
    return np.ascontiguousarray(wav[:, 0]), rate


def transcribe(s2t, speech) -> str:
    """The best hypothesis for one utterance (batch 1)."""
    import torch

    with torch.inference_mode():
        results = s2t(speech)
    return results[0][0].strip() if results else ""


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="decode.py", description="Decode audio files with an edge package; "
                       "prints '<file> <hypothesis>' per file.")
    p.add_argument("--package", type=Path, required=True, help="the edge package directory")
    p.add_argument("audio", type=Path, nargs="+", help="16 kHz mono WAV/FLAC files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stats", type=Path, default=None,
                   help="write JSON: load and decode seconds, RTF, peak RSS, where the code came from")
    p.add_argument("--log_level", default="WARNING")
    return p


@guarded("decode.py")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    import logging
    import warnings

    logging.basicConfig(level=args.log_level)
    warnings.filterwarnings("ignore")
    for a in args.audio:
        if not a.is_file():
            raise InputError("no such audio file", a)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # ESPnet prints import notes; stdout is for hypotheses
        s2t = load_recognizer(args.package, args.threads)
    load_s = time.perf_counter() - t0
    audio_s = wall = cpu = 0.0
    for a in args.audio:
        speech, rate = read_audio(a)
        if rate != 16000:
            raise InputError(f"expected 16 kHz audio, got {rate} Hz", a)
        audio_s += len(speech) / rate
        w0, c0 = time.perf_counter(), time.thread_time()
        hyp = transcribe(s2t, speech)
        cpu += time.thread_time() - c0
        wall += time.perf_counter() - w0
        print(f"{a} {hyp}".rstrip(), flush=True)
    if args.stats:
        import espnet_p4q

        stats = {
            "files": len(args.audio), "audio_seconds": audio_s, "load_seconds": load_s,
            "decode_wall_seconds": wall, "decode_cpu_seconds": cpu, "rtf_wall": wall / max(audio_s, 1e-9),
            "rtf_cpu": cpu / max(audio_s, 1e-9), "threads": args.threads,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "espnet_p4q_from": str(Path(espnet_p4q.__file__).parent),
        }
        args.stats.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
