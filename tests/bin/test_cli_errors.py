"""Bad input to the CLIs ends in one line naming the file, and a non-zero exit (issue 11).

Each case runs a CLI's ``main`` in this process (the same ``guarded`` wrapper the command line
runs) and asserts the exit status and the one line on stderr; two cases run a real subprocess to
show that the traceback appears only with ``--log_level DEBUG``. The data are a tiny generated
data dir (noise, 16 kHz) and the tiny character Conformer of tests/conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_p4q.bin import decode, finetune, quantize, score

REPO = Path(__file__).resolve().parents[2]
LORA = REPO / "conf" / "lora" / "rank4.yaml"
QUANT = REPO / "conf" / "quant" / "nf4.yaml"


def make_data_dir(d: Path, rate: int = 16000, channels: int = 1, n: int = 4, sep: str = " ") -> Path:
    """A Kaldi data dir of ``n`` one-second noise utterances of speaker spkA."""
    rng = np.random.default_rng(0)
    (d / "wav").mkdir(parents=True)
    utts = [f"spkA-{i:03d}" for i in range(n)]
    for u in utts:
        shape = (rate,) if channels == 1 else (rate, channels)
        soundfile.write(d / "wav" / f"{u}.wav", (rng.standard_normal(shape) * 0.05).astype(np.float32), rate,
                        subtype="PCM_16")
    (d / "wav.scp").write_text("".join(f"{u}{sep}{d / 'wav' / u}.wav\n" for u in utts))
    (d / "text").write_text("".join(f"{u}{sep}HELLO WORLD\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u}{sep}spkA\n" for u in utts))
    (d / "spk2utt").write_text("spkA " + " ".join(utts) + "\n")
    return d


def write_yaml(path: Path, obj) -> Path:
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def nf4_dir(tiny_char_model_files, tmp_path_factory):
    config, model = tiny_char_model_files
    out = tmp_path_factory.mktemp("nf4") / "nf4"
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                          "--quant_conf", str(QUANT), "--output_dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def data16k(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("d16") / "spkA_adapt")


@pytest.fixture(scope="module")
def train_conf(tmp_path_factory):
    return write_yaml(tmp_path_factory.mktemp("tc") / "adapt.yaml", {"epochs": 1, "batch_size": 2, "lr": 0.001})


@pytest.fixture(scope="module")
def decode_conf(tmp_path_factory):
    return write_yaml(tmp_path_factory.mktemp("dc") / "decode.yaml",
                      {"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.3})


def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    return err[0]


def run_finetune(nf4_dir, data, train_conf, out, *extra):
    return finetune.main(["--base", f"nf4:{nf4_dir}", "--mode", "lora", "--lora_conf", str(extra[0]),
                          "--train_conf", str(train_conf), "--data_dirs", str(data), "--output_dir", str(out),
                          *map(str, extra[1:])])


# --- configs: type and range, unknown keys, each error names the file -------------------------
LORA_BASE = yaml.safe_load(LORA.read_text())
QUANT_BASE = yaml.safe_load(QUANT.read_text())


@pytest.mark.parametrize("change, message", [
    ({"alpha": 0}, "alpha must be > 0"),
    ({"alpha": -8}, "alpha must be > 0"),
    ({"rank": 0}, "rank must be >= 1"),
    ({"targets": "encoder"}, "'targets' must be a list of a string"),
    ({"rank": 2.5}, "'rank' must be an integer"),
    ({"ranks": 4}, "unknown LoRA option(s) ranks; allowed: targets, rank, alpha"),
])
def test_bad_lora_conf(change, message, nf4_dir, data16k, train_conf, tmp_path, capsys):
    conf = write_yaml(tmp_path / "lora.yaml", {**LORA_BASE, **change})
    assert run_finetune(nf4_dir, data16k, train_conf, tmp_path / "out", conf) == 1
    line = one_error_line(capsys, "finetune")
    assert message in line and f"({conf})" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "'epochs' must be >= 1"),
    ({"lr": -1.0}, "'lr' must be a finite number > 0"),
    ({"batch_size": "8"}, "'batch_size' must be an integer"),
    ({"epoch": 3}, "unknown training option(s) epoch; allowed: epochs, batch_size"),
])
def test_bad_train_conf(change, message, nf4_dir, data16k, tmp_path, capsys):
    conf = write_yaml(tmp_path / "adapt.yaml", {"epochs": 1, "batch_size": 2, "lr": 0.001, **change})
    assert run_finetune(nf4_dir, data16k, conf, tmp_path / "out", LORA) == 1
    line = one_error_line(capsys, "finetune")
    assert message in line and f"({conf})" in line


def test_lora_rank_zero_is_refused_not_replaced(nf4_dir, data16k, train_conf, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_finetune(nf4_dir, data16k, train_conf, tmp_path / "out", LORA, "--lora_rank", "0")
    assert e.value.code == 2
    assert "argument --lora_rank: expected an integer >= 1, got 0" in one_error_line(capsys, "python -m espnet_p4q.bin.finetune")


@pytest.mark.parametrize("change, message", [
    ({"quant_type": "nf5"}, "quant_type must be nf4 or fp4"),
    ({"blocksize": 7}, "blocksize must be a power of two"),
    ({"double_quant": "false"}, "'double_quant' must be true/false, got 'false'"),
    ({"targets": ["no_such_module"]}, "no_such_module"),
])
def test_bad_quant_conf(change, message, tiny_char_model_files, tmp_path, capsys):
    config, model = tiny_char_model_files
    conf = write_yaml(tmp_path / "q.yaml", {**QUANT_BASE, **change})
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                          "--quant_conf", str(conf), "--output_dir", str(tmp_path / "o")]) == 1
    line = one_error_line(capsys, "quantize")
    assert message in line and f"({conf})" in line
    assert not (tmp_path / "o" / "size.json").exists()


def test_truncated_model_file_is_named(tiny_char_model_files, tmp_path, capsys):
    config, model = tiny_char_model_files
    cut = tmp_path / "cut.pth"
    cut.write_bytes(model.read_bytes()[:5000])
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(cut),
                          "--quant_conf", str(QUANT), "--output_dir", str(tmp_path / "o")]) == 1
    line = one_error_line(capsys, "quantize")
    assert "corrupt or truncated model file" in line and line.endswith(f"({cut})")


def test_config_and_model_that_do_not_fit(tiny_char_model_files, tmp_path, capsys):
    config, model = tiny_char_model_files
    cfg = yaml.safe_load(config.read_text())
    cfg["encoder_conf"]["output_size"] = 32
    other = write_yaml(tmp_path / "config.yaml", cfg)
    assert quantize.main(["--asr_train_config", str(other), "--asr_model_file", str(model),
                          "--quant_conf", str(QUANT), "--output_dir", str(tmp_path / "o")]) == 1
    line = one_error_line(capsys, "quantize")
    assert f"does not fit the model of {other}" in line and f"({model})" in line


# --- adapters and packed models --------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (b"\x00garbage" * 100, "corrupt or truncated adapter file"),
    (None, "not an espnet_p4q adapter file"),
])
def test_corrupt_or_foreign_adapter(content, message, nf4_dir, data16k, decode_conf, tmp_path, capsys):
    adapter = tmp_path / "adapter.pth"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, adapter)
    else:
        adapter.write_bytes(content)
    assert decode.main(["--base", f"nf4:{nf4_dir}", "--config", str(decode_conf), "--adapter", str(adapter),
                        "--data_dirs", str(data16k), "--output_dir", str(tmp_path / "dec")]) == 1
    line = one_error_line(capsys, "decode")
    assert message in line and str(adapter) in line


def test_diverging_training_is_stopped_and_nothing_is_saved(nf4_dir, data16k, tmp_path, capsys):
    conf = write_yaml(tmp_path / "adapt.yaml", {"epochs": 4, "batch_size": 2, "lr": 1.0e8})
    out = tmp_path / "out"
    assert run_finetune(nf4_dir, data16k, conf, out, LORA) == 1
    line = one_error_line(capsys, "finetune")
    assert "training diverged: loss is" in line and "at step" in line or "NaN/inf" in line, line
    assert not (out / data16k.name / "adapter.pth").exists()
    assert not (out / data16k.name / "train.json").exists()


def test_non_finite_adapter_is_refused_on_save_and_load(nf4_dir, tmp_path):
    from espnet_p4q.lora.adapter_io import AdapterError, load_adapter, save_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.quant.serialize import atomic_torch_save, tensor_fingerprint
    from espnet_p4q.models.asr_model import load_quantized_asr_model

    model, _, fp = load_quantized_asr_model(nf4_dir)
    cfg = LoRAConfig.from_yaml(LORA)
    inject_lora(model, cfg)
    good = tmp_path / "good.pth"
    save_adapter(model, good, fp, cfg)
    name = next(n for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        model.get_parameter(name).fill_(float("nan"))
    with pytest.raises(AdapterError, match="refusing to save an adapter with NaN/inf"):
        save_adapter(model, tmp_path / "bad.pth", fp, cfg)
    assert not (tmp_path / "bad.pth").exists()
    payload = torch.load(good, weights_only=True)  # a file poisoned after it was written
    payload["tensors"][name] = torch.full_like(payload["tensors"][name], float("inf"))
    payload["checksum"] = tensor_fingerprint(payload["tensors"])
    atomic_torch_save(payload, tmp_path / "poisoned.pth")
    with pytest.raises(AdapterError, match="holds NaN/inf"):
        load_adapter(model, tmp_path / "poisoned.pth", fp)


# --- audio: rate, channels, tab-separated tables ---------------------------------------------
@pytest.mark.parametrize("rate, channels, message", [
    (8000, 1, "is 8000 Hz, expected 16000 Hz mono"),
    (16000, 2, "has 2 channels, expected one (mono)"),
])
def test_decoding_and_training_refuse_wrong_audio(rate, channels, message, nf4_dir, decode_conf, train_conf,
                                                  tmp_path, capsys):
    d = make_data_dir(tmp_path / "spkA_test", rate=rate, channels=channels)
    assert decode.main(["--base", f"nf4:{nf4_dir}", "--config", str(decode_conf),
                        "--data_dirs", str(d), "--output_dir", str(tmp_path / "dec")]) == 1
    line = one_error_line(capsys, "decode")
    assert message in line and f"({d / 'wav.scp'})" in line
    assert not (tmp_path / "dec" / d.name / "decode.json").exists()
    assert run_finetune(nf4_dir, d, train_conf, tmp_path / "ft", LORA) == 1
    line = one_error_line(capsys, "finetune")
    assert message in line and f"({d / 'wav.scp'})" in line


def test_tab_separated_dir_trains_and_decodes(nf4_dir, decode_conf, train_conf, tmp_path):
    d = make_data_dir(tmp_path / "spkA_adapt", sep="\t")
    assert run_finetune(nf4_dir, d, train_conf, tmp_path / "ft", LORA, "--names", "spkA") == 0
    assert decode.main(["--base", f"nf4:{nf4_dir}", "--config", str(decode_conf), "--adapter_dir",
                        str(tmp_path / "ft"), "--data_dirs", str(d), "--output_dir", str(tmp_path / "dec")]) == 0
    hyp = (tmp_path / "dec" / d.name / "text").read_text().splitlines()
    assert [line.split()[0] for line in hyp] == [f"spkA-{i:03d}" for i in range(4)]


def test_decode_json_is_the_done_mark(nf4_dir, data16k, decode_conf, tmp_path):
    out = tmp_path / "dec"
    args = ["--base", f"nf4:{nf4_dir}", "--config", str(decode_conf), "--data_dirs", str(data16k),
            "--output_dir", str(out)]
    assert decode.main(args) == 0
    text, info = out / data16k.name / "text", out / data16k.name / "decode.json"
    assert info.stat().st_mtime_ns >= text.stat().st_mtime_ns
    assert json.loads(info.read_text())["utterances"] == 4
    info.unlink()  # as a kill between the two writes leaves it: the set is decoded again
    text.write_text("half\n")
    assert decode.main(args) == 0
    assert info.is_file() and len(text.read_text().splitlines()) == 4


# --- scoring ---------------------------------------------------------------------------------
def test_non_utf8_hypothesis(tmp_path, capsys):
    ref = tmp_path / "ref"
    ref.write_text("spkA-001 HELLO\n")
    hyp = tmp_path / "hyp"
    hyp.write_bytes(b"spkA-001 HELL\xff\n")
    assert score.main(["--ref_text", str(ref), "--hyp_text", str(hyp), "--output_dir", str(tmp_path / "s")]) == 1
    assert f"line is not valid UTF-8 ({hyp}:1)" in one_error_line(capsys, "score")


# --- the traceback only on request -----------------------------------------------------------
def test_traceback_only_with_debug(tiny_char_model_files, tmp_path):
    config, model = tiny_char_model_files
    conf = write_yaml(tmp_path / "q.yaml", {**QUANT_BASE, "blocksize": 7})
    cmd = [sys.executable, "-m", "espnet_p4q.bin.quantize", "--asr_train_config", str(config),
           "--asr_model_file", str(model), "--quant_conf", str(conf), "--output_dir", str(tmp_path / "o")]
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("quantize: error: blocksize must be")
    debug = subprocess.run(cmd + ["--log_level", "DEBUG"], capture_output=True, text=True, cwd=REPO)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
