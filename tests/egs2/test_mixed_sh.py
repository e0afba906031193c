"""egs2/TEMPLATE/asr1/mixed.sh (the mixed-precision search): option checks, and stages 1-9 on the CI
corpus with the tiny model (untrained; the numbers mean nothing, the files and their links do).
The run takes a few minutes on 2 shared cores (about 25 Python processes)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "egs2" / "TEMPLATE" / "asr1" / "mixed.sh"
RECIPE = REPO / "egs2" / "synth_sa" / "asr1"


def run(args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(SCRIPT), "--python", sys.executable, *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.parametrize("recipe", [RECIPE, RECIPE.parents[1] / "synth_sa_whisper" / "asr1"])
def test_recipe_link_and_help(recipe):
    assert (recipe / "mixed.sh").resolve() == SCRIPT
    r = subprocess.run([str(recipe / "mixed.sh"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--budgets" in r.stdout and "Stages" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--budgets", "3.5 x"], "--budgets: 'x' is not a number of bits per parameter"),
    (["--uniform_bits", "5"], "bit widths are 2, 3, 4 or 8, got '5'"),
    (["--stage", "5", "--stop_stage", "2"], "stages run from 1 to 9"),
    (["--eval_mixed", "some"], "--eval_mixed is chosen, all or names mixed_<budget> of --budgets"),
    (["--eval_uniform_bits", "3", "--uniform_bits", "2 4"], "--eval_uniform_bits: 3 is not among --uniform_bits"),
    (["--nj", "0"], "--nj must be at least 1"),
    (["--kbit_dequant", "sometimes"], "--kbit_dequant is once or per_call, got 'sometimes'"),
    (["--data_dir", "nowhere"], "missing nowhere/sa_tune.list"),
    (["--no_such_option", "1"], "unknown option --no_such_option"),
])
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    r = run(["--out_dir", "out", *args], tmp_path, check=False)
    assert r.returncode != 0 and message in r.stderr
    assert not (tmp_path / "out" / "log").exists() or not any((tmp_path / "out" / "log").iterdir())


def test_stages_1_to_9_on_the_ci_corpus(ci_corpus, tiny_char_model_files, tmp_path):
    config, model = tiny_char_model_files
    (tmp_path / "asr").mkdir()
    shutil.copy(config, tmp_path / "asr" / "config.yaml")
    shutil.copy(model, tmp_path / "asr" / "base.pth")
    train = tmp_path / "train.yaml"
    train.write_text(yaml.safe_dump({"epochs": 1, "batch_size": 8, "lr": 0.005, "seed": 0}))
    args = ["--asr_exp", "asr", "--data_dir", str(ci_corpus), "--out_dir", "out",
            "--inference_config", str(RECIPE / "conf" / "decode_ci.yaml"), "--n_sens_utts", "2",
            "--sens_bits", "2 4 8", "--budgets", "7.0 9.0", "--uniform_bits", "2 8", "--nj", "2",
            "--lora_pretrain_config", str(train), "--adapt_lora_config", str(train), "--n_adapt", "2",
            "--train_threads", "1", "--stop_stage", "9"]
    r = run(args, tmp_path)
    out = tmp_path / "out"
    for stage in range(1, 10):
        assert f"Stage {stage} (" in r.stderr and "done in" in r.stderr
    assert "most sensitive at 2 bits" in r.stderr
    rows = list(csv.DictReader(open(out / "sensitivity.csv")))
    assert {r["bits"] for r in rows} == {"2", "4", "8"} and len(rows) % 3 == 0
    for b in ("7.0", "9.0"):
        size = json.loads((out / "models" / f"mixed_{b}" / "size.json").read_text())
        assert size["bits_per_param"] <= float(b)
    assert yaml.safe_load((out / "conf" / "nf2.yaml").read_text())["bits"] == 2
    tune = {r["system"] for r in csv.DictReader(open(out / "tune.csv"))}
    assert tune == {"fp32", "nf2", "nf8", "mixed_7.0", "mixed_9.0"}
    chosen = (out / "chosen").read_text().strip()
    assert chosen in ("mixed_7.0", "mixed_9.0")
    assert {r["system"] for r in csv.DictReader(open(out / "eval.csv"))} == {"fp32", "nf2", "nf8", chosen}
    for f in ("tune.png", "eval.png"):
        assert (out / f).read_bytes()[:4] == b"\x89PNG"
    md = (out / "eval_p4q.md").read_text()
    assert "| p4q_mixed |" in md and "| lora_pretrain_mixed |" in md and f"p vs {chosen}" in md
    eval_spk = (ci_corpus / "sa_eval.list").read_text().split()
    assert all((out / "p4q" / "adapt" / s / "adapter.pth").is_file() for s in eval_spk)
    # a second run keeps every finished output
    stamp = (out / "sensitivity.csv").stat().st_mtime_ns
    r = run([*args, "--stop_stage", "3"], tmp_path)
    assert "KL table exists" in r.stderr and (out / "sensitivity.csv").stat().st_mtime_ns == stamp
