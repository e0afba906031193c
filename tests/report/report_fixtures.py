"""A tiny comparison run on disk: data dir, decodings, model files, speaker files, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFS = {
    "spkA": {"spkA-u1": "THE CAT SAT ON THE MAT", "spkA-u2": "HELLO WORLD"},
    "spkB": {"spkB-u1": "A B C D E", "spkB-u2": "ONE TWO THREE FOUR"},
    "spkT": {"spkT-u1": "YES NO"},
}
# errors per system (eval speakers): fp32 2, nf4 8, p4q 1, fft 2 of 17 reference words
HYPS = {
    "fp32": {"spkA-u1": "THE CAT SAT IN THE MAT", "spkA-u2": "HELLO WORLD",
             "spkB-u1": "A B C E", "spkB-u2": "ONE TWO THREE FOUR"},
    "nf4": {"spkA-u1": "THE CAT SAT IN A MAT", "spkA-u2": "HELLO BIG WORLD",
            "spkB-u1": "A B C E", "spkB-u2": ""},
    "p4q": {"spkA-u1": "THE CAT SAT ON THE MAT", "spkA-u2": "HELLO WORLD",
            "spkB-u1": "A B C D E", "spkB-u2": "ONE TWO THREE"},
}
HYPS["fft"] = dict(HYPS["fp32"])
for h in HYPS.values():
    h["spkT-u1"] = "YES NO"


def write_kaldi_text(path: Path, utts: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {w}".rstrip() + "\n" for u, w in utts.items()),
                    encoding="utf-8")


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def write_bytes(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * n)


def train_json(wall: float, params: int, share: float, base: int = 100000) -> dict:
    return {"wall_seconds": wall, "adapter_params": params, "adapter_share": share,
            "base_params": base, "steps": 20, "utterances": 5, "first_loss": 3.0}


MANIFEST = {
    "data_dir": "data", "speakers": "eval", "reference_system": "fp32", "nf4_system": "nf4",
    "systems": [
        {"name": "fp32", "label": "FP32 base, no adaptation", "decode_dir": "exp/decode/fp32",
         "model_files": ["exp/asr/valid.acc.ave.pth"], "speaker_dir": None},
        {"name": "nf4", "label": "NF4 base, no adaptation", "decode_dir": "exp/decode/nf4",
         "model_files": ["exp/nf4/model.pth"]},
        {"name": "p4q", "label": "LoRA-pretrain-NF4 + adaptation (P4Q)",
         "decode_dir": "exp/decode/p4q", "model_files": ["exp/nf4/model.pth", "exp/nf4/pre.pth"],
         "speaker_dir": "exp/adapt/p4q"},
        {"name": "fft", "label": "FP32 full fine-tuning", "decode_dir": "exp/decode/fft",
         "model_files": ["exp/asr/valid.acc.ave.pth"], "speaker_dir": "exp/adapt/fft"},
    ],
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """The files a finished run leaves; relative manifest paths are under the returned dir."""
    data = tmp_path / "data"
    for spk, utts in REFS.items():
        write_kaldi_text(data / f"{spk}_test" / "text", utts)
    (data / "sa_eval.list").write_text("spkA\nspkB\n")
    (data / "sa_tune.list").write_text("spkT\n")
    for system, hyps in HYPS.items():
        for spk in REFS:
            write_kaldi_text(tmp_path / "exp/decode" / system / f"{spk}_test" / "text",
                             {u: w for u, w in hyps.items() if u.startswith(spk + "-")})
    dec = tmp_path / "exp/decode"
    write_json(dec / "fp32/spkA_test/decode.json", {"rtf": 0.1, "audio_seconds": 10.0,
                                                    "decode_seconds": 1.0})
    write_json(dec / "fp32/spkB_test/decode.json", {"rtf": 0.2, "audio_seconds": 30.0,
                                                    "decode_seconds": 6.0})
    write_json(dec / "nf4/spkA_test/decode.json", {"rtf": 0.3})
    write_json(dec / "nf4/spkB_test/decode.json", {"rtf": 0.5})
    write_json(dec / "p4q/spkA_test/decode.json", {"rtf": 0.3})  # spkB's is missing
    write_json(dec / "fft/spkA_test/decode.json", {"rtf": 0.2})
    write_json(dec / "fft/spkB_test/decode.json", {"rtf": 0.2})
    write_bytes(tmp_path / "exp/asr/valid.acc.ave.pth", 4000)
    write_bytes(tmp_path / "exp/nf4/model.pth", 1000)
    write_bytes(tmp_path / "exp/nf4/pre.pth", 50)
    adapt = tmp_path / "exp/adapt"
    for spk, n, wall in (("spkA", 100, 10.0), ("spkB", 300, 20.0), ("spkT", 999, 99.0)):
        write_bytes(adapt / "p4q" / spk / "adapter.pth", n)
        write_json(adapt / "p4q" / spk / "train.json", train_json(wall, 500, 0.005))
        write_bytes(adapt / "fft" / spk / "model.pth", 4000)
        write_json(adapt / "fft" / spk / "train.json", train_json(2 * wall, 100000, 1.0))
    write_json(tmp_path / "exp/systems.json", MANIFEST)
    return tmp_path
