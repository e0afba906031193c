"""python -m espnet_p4q.bin.quantize on espnet2-layout models, and the default config's ratio."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from espnet_p4q.bin import quantize
from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.inject import count_parameters, inject_lora
from espnet_p4q.models.asr_model import build_asr_model, espnet_config_from_train_yaml, load_quantized_asr_model
from espnet_p4q.quant.layers import is_packed

DEFAULT_TRAIN_CONFIG = "egs2/synth_sa/asr1/conf/train.yaml"
SIZE_KEYS = {"fp32_bytes", "quantized_bytes", "ratio", "bits_per_param", "fp32_modules", "quantized_modules"}


def test_cli_writes_loadable_dir_and_size_json(tiny_model_files, tmp_path, speech_batch):
    config, model_file = tiny_model_files
    out = tmp_path / "nf4"
    assert quantize.main([
        "--asr_train_config", str(config), "--asr_model_file", str(model_file),
        "--quant_conf", "conf/quant/nf4.yaml", "--output_dir", str(out),
    ]) == 0
    size = json.loads((out / "size.json").read_text())
    assert SIZE_KEYS <= size.keys()
    assert size["quantized_bytes"] == (out / "model.pth").stat().st_size
    assert size["fp32_bytes"] == model_file.stat().st_size
    assert "encoder.encoders.0.conv_module.depthwise_conv" in size["fp32_modules"]
    model, qcfg, fingerprint = load_quantized_asr_model(out)
    assert fingerprint == size["fingerprint"] and qcfg.blocksize == 64
    assert sum(is_packed(m) for m in model.modules()) == len(size["quantized_modules"])
    # reloading twice gives identical models (bit-identical packed weights)
    again, _, _ = load_quantized_asr_model(out)
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_help_and_missing_file(tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "espnet_p4q.bin.quantize", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--quant_conf" in r.stdout
    assert quantize.main(["--asr_train_config", str(tmp_path / "x.yaml"), "--asr_model_file", "y",
                          "--quant_conf", "conf/quant/nf4.yaml", "--output_dir", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == f"quantize: error: no such file ({tmp_path / 'x.yaml'})\n"


def test_default_conformer_file_ratio_at_least_6_5(tmp_path):
    """The recipe's default Conformer AED, quantised with conf/quant/nf4.yaml, shrinks >= 6.5x;
    the rank-4 LoRA of conf/lora/rank4.yaml on it is at most 1% of the base's parameters."""
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(155)] + ["<sos/eos>"]  # --nbpe 158
    train = yaml.safe_load(open(DEFAULT_TRAIN_CONFIG))
    config = espnet_config_from_train_yaml(
        DEFAULT_TRAIN_CONFIG, tokens, tmp_path / "config.yaml",
        {"normalize": "utterance_mvn", "normalize_conf": {}} if train.get("normalize") == "global_mvn" else {},
    )
    torch.manual_seed(0)
    model, _ = build_asr_model(config)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    out = tmp_path / "nf4"
    quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(tmp_path / "model.pth"),
                   "--quant_conf", "conf/quant/nf4.yaml", "--output_dir", str(out)])
    size = json.loads((out / "size.json").read_text())
    assert size["ratio"] >= 6.5, size["ratio"]
    assert size["weights_memory_ratio"] >= 6.0
    packed, _, _ = load_quantized_asr_model(out)
    inject_lora(packed, LoRAConfig.from_yaml("conf/lora/rank4.yaml"))
    share = count_parameters(packed)["adapter_share"]
    assert 0 < share <= 0.01, share
