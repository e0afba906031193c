"""Shell entry points check their option values before doing anything (issue 11).

``run.sh`` (top level), the recipe's ``run.sh`` and ``p4q.sh`` end a bad value with one line
``<script>: error: ...`` and a non-zero exit; nothing is written under exp/.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs2" / "synth_sa" / "asr1"


def run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "--stage takes a non-negative integer, not 'abc'"),
    (["--stage", "9", "--stop_stage", "3"], "--stage 9 is after --stop_stage 3: nothing would run"),
    (["--stop_stage", "99"], "--stop_stage must be a stage number 1-13, not '99'"),
    (["--nj", "0"], "--nj must be at least 1, not '0'"),
    (["--inference_nj", "two"], "--inference_nj takes a non-negative integer, not 'two'"),
    (["--sweep_ranks", "1 x"], "--sweep_ranks takes positive integers, not 'x'"),
    (["--cmd_backend", "sge"], "--cmd_backend takes local or slurm, not 'sge'"),
    (["--skip_done", "yes"], "--skip_done takes true or false, not 'yes'"),
    (["--sa_eval_list", ""], "--sa_eval_list needs a file name"),
    (["--stage"], "option --stage needs a value"),
])
def test_recipe_refuses_bad_option_values(args, message, tmp_path):
    res = run(["./run.sh", "--expdir", str(tmp_path / "exp"), *args], RECIPE)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("./p4q.sh: error: ") and message in lines[0], res.stderr
    assert "Successfully finished" not in res.stderr + res.stdout
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("args, message", [
    (["--install"], "option --install needs a value (true or false)"),
    (["--install", "maybe"], "--install takes true or false, not 'maybe'"),
])
def test_top_level_run_sh_checks_install(args, message):
    res = run([str(REPO / "run.sh"), *args], REPO)
    assert res.returncode == 2 and res.stderr.strip() == f"{REPO / 'run.sh'}: error: {message}"


def test_top_level_run_sh_checks_recipe_options_before_installing():
    res = run([str(REPO / "run.sh"), "--stage", "abc"], REPO)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == ["./p4q.sh: error: --stage takes a non-negative integer, not 'abc' "
                                               "(see ./p4q.sh --help)"]
    assert "[install" not in res.stderr


@pytest.mark.parametrize("cmd, message", [
    ([str(REPO / "tools/install.sh"), "--venv"], "option --venv needs a value"),
    ([str(REPO / "tools/install.sh"), "--with-system-packages", "maybe"],
     "--with-system-packages takes true or false, not 'maybe'"),
    ([str(REPO / "egs2/TEMPLATE/asr1/utils/run_local.sh"), "--max_jobs_run", "x", "log", "true"],
     "--max_jobs_run takes a non-negative integer, not 'x'"),
    (["bash", "local/data.sh", "--nj", "abc"], "argument --nj: invalid int value: 'abc'"),
    (["bash", "local/data.sh", "--config"], "--config needs a value"),
])
def test_other_entry_points_refuse_bad_values(cmd, message, tmp_path):
    res = run(cmd, RECIPE)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
