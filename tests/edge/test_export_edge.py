"""Edge package of a tiny packed model + adapter: contents, offline decoding from the directory
alone (the plugin modules it carries), the same model as in-process, refusals."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from espnet_p4q.bin import export_edge, quantize
from espnet_p4q.edge.runtime import load_recognizer, transcribe
from espnet_p4q.lora.adapter_io import read_adapter, save_adapter
from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.inject import inject_lora
from espnet_p4q.models.base import BaseSpec, load_base


@pytest.fixture(scope="module")
def packed(tiny_char_model_files, tmp_path_factory):
    """(packed base dir, adapter of that base, adapter of another base, decode config)."""
    config, model = tiny_char_model_files
    tmp = tmp_path_factory.mktemp("edge_src")
    nf4 = tmp / "nf4"
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                          "--quant_conf", "conf/quant/nf4.yaml", "--output_dir", str(nf4)]) == 0
    loaded = load_base(BaseSpec.parse(f"nf4:{nf4}"))
    cfg = LoRAConfig.from_yaml("conf/lora/rank4.yaml")
    inject_lora(loaded.model, cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in loaded.model.named_parameters():
            if n.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    adapter = tmp / "adapter.pth"
    save_adapter(loaded.model, adapter, loaded.fingerprint, cfg)
    foreign = tmp / "foreign.pth"
    save_adapter(loaded.model, foreign, "0" * 64, cfg)
    decode_conf = tmp / "decode.yaml"
    decode_conf.write_text("beam_size: 3\nctc_weight: 0.3\nlm_weight: 0.0\nnbest: 1\n")
    return nf4, adapter, foreign, decode_conf


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("edge_wav")
    rng = np.random.default_rng(0)
    out = []
    for i, n in enumerate((16000, 9000)):
        p = d / f"u{i}.wav"
        soundfile.write(p, (rng.standard_normal(n) * 0.1).astype(np.float32), 16000, subtype="PCM_16")
        out.append(p)
    return out


def _export(packed, out, adapter=True):
    nf4, ad, _, conf = packed
    argv = ["--base_dir", str(nf4), "--decode_config", str(conf), "--output_dir", str(out)]
    return export_edge.main(argv + (["--adapter", str(ad)] if adapter else []))


def test_package_is_complete_and_decodes_offline_from_itself(packed, wavs, tmp_path):
    out = tmp_path / "edge"
    assert _export(packed, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    names = set(manifest["files"])
    assert {"model.pth", "adapter.pth", "config.yaml", "decode.yaml", "decode.py", "requirements.txt",
            "lib/espnet_p4q/edge/runtime.py", "lib/espnet_p4q/quant/layers.py"} <= names
    assert not any(n.startswith("lib/espnet_p4q/bin/") for n in names)  # only what the runtime imports
    assert manifest["files"]["model.pth"]["bytes"] == (packed[0] / "model.pth").stat().st_size
    assert "torch" in (out / "requirements.txt").read_text()

    # a fresh process in another directory, with only the package on its path
    stats = tmp_path / "stats.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, str(out / "decode.py"), *map(str, wavs), "--stats", str(stats)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == [str(w) for w in wavs]
    s = json.loads(stats.read_text())
    assert s["espnet_p4q_from"] == str(out / "lib" / "espnet_p4q")  # not the development tree
    assert s["files"] == 2 and s["audio_seconds"] == pytest.approx(25000 / 16000)
    assert s["peak_rss_bytes"] > 0 and s["rtf_cpu"] > 0

    # the same hypotheses in-process, from a recogniser that really carries base and adapter
    s2t = load_recognizer(out)
    adapter = read_adapter(out / "adapter.pth")["tensors"]
    params = dict(s2t.asr_model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in adapter.items())
    expected = [f"{w} {transcribe(s2t, soundfile.read(str(w), dtype='float32')[0])}".rstrip() for w in wavs]
    assert lines == expected


def test_package_without_adapter_decodes_the_base(packed, wavs, tmp_path):
    out = tmp_path / "edge_base"
    assert _export(packed, out, adapter=False) == 0
    assert not (out / "adapter.pth").exists()
    s2t = load_recognizer(out)
    assert not any("lora_" in n for n, _ in s2t.asr_model.named_parameters())
    transcribe(s2t, soundfile.read(str(wavs[0]), dtype="float32")[0])


def test_refuses_foreign_adapter_and_nonempty_output(packed, tmp_path, capsys):
    nf4, _, foreign, conf = packed
    out = tmp_path / "edge"
    assert export_edge.main(["--base_dir", str(nf4), "--adapter", str(foreign), "--decode_config", str(conf),
                             "--output_dir", str(out)]) == 1
    assert "not on this base" in capsys.readouterr().err and not out.exists()
    assert not list(tmp_path.glob(".edge.*"))  # no half-written directory left
    out.mkdir()
    (out / "x").write_text("x")
    assert _export(packed, out) == 1
    assert "not empty" in capsys.readouterr().err


def test_runtime_rejects_a_directory_without_manifest(tmp_path, capsys):
    from espnet_p4q.edge import runtime

    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    assert runtime.main(["--package", str(tmp_path), str(wav)]) == 1
    assert "not an edge package" in capsys.readouterr().err
