"""egs2/librispeech_sa/asr1 as a recipe: run.sh --help, its configs, and stages 1-2 offline.

Fast checks of what the paper-scale run needs before it meets the corpus and a GPU: run.sh reaches
p4q.sh with this corpus's options, every config it names exists and loads (the base AED builds
with espnet2 at full size, the adaptation YAMLs load into TrainConfig), and p4q.sh's stages 1-2
run on a tiny LibriSpeech tree through the recipe's own run.sh (in a temporary copy shaped like
the repository, so nothing is written into egs2/).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recipe_checks import (ADAPT_CONFIGS, REPO, check_adaptation_config, check_decode_config,  # noqa: E402
                           check_help, check_layout, copy_recipe, env, load_module, option, run_help)

RECIPE = REPO / "egs2/librispeech_sa/asr1"
NBPE = 5000
tiny = load_module(Path(__file__).with_name("tiny_librispeech.py"))


@pytest.fixture(scope="module")
def help_text():
    return run_help(RECIPE)


def test_recipe_layout():
    check_layout(RECIPE)


def test_help_lists_stages_and_recipe_defaults(help_text):
    expected = {
        "nbpe": str(NBPE), "token_type": "bpe", "bpemode": "unigram", "train_set": "train", "valid_set": "dev",
        "train_config": "conf/train.yaml", "inference_config": "conf/decode.yaml", "n_adapt": "0",
        "systems": "fp32 nf4 lora_pretrain_nf4 p4q lora_scratch_nf4 fft_nf4 fft_fp32",
        "lora_pretrain_config": "conf/lora_pretrain.yaml", "adapt_lora_config": "conf/adapt_lora.yaml",
        "adapt_scratch_config": "conf/adapt_lora_scratch.yaml", "adapt_fft_config": "conf/adapt_fft.yaml",
        "pretrained_model": "",
    }
    check_help(RECIPE, help_text, expected)


def test_local_data_opts_are_accepted_by_data_sh(help_text, tmp_path):
    opts = shlex.split(option(help_text, "local_data_opts"))
    assert opts[opts.index("--audio") + 1] == "path"  # espnet2's sound reader cannot run pipes
    assert opts[opts.index("--sa_partition") + 1] == "paper" and "--n_adapt" not in opts  # whole train split
    smallest = min(Counter(r for r, s, _ in tiny.partition_rows() if s == "train").values())
    assert smallest == 58 and max(int(n) for n in option(help_text, "sweep_n_adapt").split()) <= smallest
    # stage 99: the options are parsed and checked, nothing runs
    proc = subprocess.run(["bash", str(RECIPE / "local/data.sh"), *opts, "--stage", "99"], cwd=tmp_path,
                          env=env(PYTHON=sys.executable), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_train_config_builds_full_size_model(tmp_path):
    """conf/train.yaml through espnet2's own parser and ASRTask.build_model (random weights)."""
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import count_parameters, inject_lora
    from espnet_p4q.tasks.asr_model import build_asr_model, espnet_config_from_train_yaml

    train = yaml.safe_load((RECIPE / "conf/train.yaml").read_text())
    assert train["encoder"] == "conformer" and train["decoder"] == "transformer"
    assert train["batch_type"] == "numel" and train["use_amp"] is True and train["use_tensorboard"] is False
    assert train["specaug"] == "specaug" and train["model_conf"]["ctc_weight"] == 0.3
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(NBPE - 3)] + ["<sos/eos>"]
    config = espnet_config_from_train_yaml(RECIPE / "conf/train.yaml", tokens, tmp_path / "config.yaml",
                                           {"normalize": "utterance_mvn", "normalize_conf": {}})
    model, args = build_asr_model(config)
    assert args.max_epoch == train["max_epoch"] and args.batch_bins == train["batch_bins"]
    assert len(model.encoder.encoders) == 12 and len(model.decoder.decoders) == 6
    assert model.decoder.output_layer.out_features == NBPE
    n = sum(p.numel() for p in model.parameters())
    assert 30e6 < n < 40e6, n  # 34.2 M
    # NF4 blocks of 64 along the input: bitsandbytes' fast 4-bit CPU kernel needs in_features % 64 == 0
    linears = {name: m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears and all(k % 64 == 0 for k in linears.values()), linears
    # the rank-4 speaker LoRA stays well under 1% of the base
    inject_lora(model, LoRAConfig.from_yaml(REPO / "conf/lora/rank4.yaml"))
    assert 0 < count_parameters(model)["adapter_share"] < 0.01


@pytest.mark.parametrize("name", ADAPT_CONFIGS)
def test_adaptation_configs_load(name):
    check_adaptation_config(RECIPE, name)


def test_decode_config():
    check_decode_config(RECIPE)


def test_stages_1_2_on_tiny_corpus(tmp_path, monkeypatch):
    """./run.sh --stage 1 --stop_stage 2 with the recipe's data options on a tiny extracted copy."""
    from espnet2.fileio.sound_scp import SoundScpReader

    recipe = copy_recipe(RECIPE, tmp_path / "repo")
    corpus = tiny.make_librispeech(tmp_path / "corpus")
    # the recipe's own data options (the authors' partition), no download
    local_opts = option(run_help(recipe), "local_data_opts") + " --mirrors file:///nowhere"
    proc = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "2", "--local_data_opts", local_opts],
                          cwd=recipe, env=env(LIBRISPEECH=str(corpus)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = recipe / "data"
    assert (data / ".validate.done").is_file()
    assert (data / "sa_tune.list").read_text().split() == ["ls115", "ls829"]
    monkeypatch.chdir(recipe)  # wav.scp paths may be relative to the recipe dir, where p4q.sh runs
    for d in ("train", "dev", "ls115_adapt", "ls210_test"):  # plain flac paths espnet2 can open
        reader = SoundScpReader(str(data / d / "wav.scp"))
        for key in reader.keys():
            rate, wav = reader[key]
            assert rate == 16000 and wav.ndim == 1 and len(wav) > 0
    assert len((data / "ls115_adapt/wav.scp").read_text().splitlines()) == 59
    assert not (data / "ls115_dev").exists()
