"""The Slurm job backend (cmd.sh with cmd_backend=slurm -> utils/run_slurm.sh) against a real
single-node Slurm started by the ``slurm_cluster`` fixture (tests/egs2/slurm_cluster.py).

Every job goes through the recipe's own cmd.sh, as p4q.sh runs it; outputs and logs must land where
utils/run_local.sh puts them, failures must name the failed task's log and exit non-zero, and
a run that is stopped must leave no task running. Last, p4q.sh itself runs LoRA pretraining, P4Q
adaptation and decoding as Slurm jobs on the CI corpus (test_pipeline.py's ``ci_recipe``), starting
from the base model the default recipe ships.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)
from test_pipeline import ci_recipe  # noqa: F401  (the fixture)
from test_pipeline import pipeline_env, read_ids, stage_times

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "asr1"


def recipe_like(d: Path) -> Path:
    """D shaped like a recipe: cmd.sh and utils/ of the template (as in egs2/*/asr1)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "cmd.sh").symlink_to(TEMPLATE / "cmd.sh")
    (d / "utils").symlink_to(TEMPLATE / "utils")
    return d


@pytest.fixture
def recipe_dir(tmp_path) -> Path:
    return recipe_like(tmp_path)


def through_cmd_sh(recipe: Path, backend: str, env: dict, line: str, timeout: float = 120):
    """Source the recipe's cmd.sh with BACKEND and run LINE (which uses $train_cmd etc.) there."""
    script = f"set -u; cmd_backend={backend}; . ./cmd.sh; {line}"
    return subprocess.run(["bash", "-c", script], cwd=recipe, env=env, capture_output=True,
                           text=True, timeout=timeout)


def normalised_log(path: Path) -> list:
    """A job log without what differs between runs (times, hosts, job ids)."""
    return [line.split(" at ")[0] for line in path.read_text().splitlines()
            if not line.startswith(("# Started at", "# Accounting:"))]


def squeue(cluster) -> str:
    return cluster.client("squeue", "-h", "-o", "%i %T").stdout.strip()


@pytest.mark.parametrize("cmd", ["decode_cmd", "train_cmd", "cuda_cmd --gpu 0"])
def test_job_array_lands_where_run_local_puts_it(slurm_cluster, recipe_dir, cmd):  # noqa: F811
    line = (f'${cmd} JOB=1:3 exp/log/step.JOB.log echo task JOB "a b" ">" exp/out.JOB '
            """"&&" echo 'cpus=${SLURM_CPUS_PER_TASK:-none}' 'threads=$OMP_NUM_THREADS' ">" exp/cpus.JOB """
            '"&&" echo done JOB')
    expected_cpus = {"decode_cmd": 1, "train_cmd": 2, "cuda_cmd --gpu 0": 4}
    env = slurm_cluster.env
    env["OMP_NUM_THREADS"] = "64"  # more than any task's CPUs: lowered to them in the task
    res = through_cmd_sh(recipe_dir, "slurm", env, line)
    assert res.returncode == 0, res.stdout + res.stderr + slurm_cluster.log_tails()
    assert res.stderr == ""
    local = recipe_like(recipe_dir / "local_run")
    res = through_cmd_sh(local, "local", slurm_cluster.env, line)
    assert res.returncode == 0, res.stderr
    for j in (1, 2, 3):
        out = recipe_dir / f"exp/out.{j}"
        assert out.read_text() == f"task {j} a b\n" == (local / f"exp/out.{j}").read_text()
        log = recipe_dir / f"exp/log/step.{j}.log"
        assert normalised_log(log) == normalised_log(local / f"exp/log/step.{j}.log")
        text = log.read_text()
        assert f"done {j}\n# Accounting" in text and "# Ended (code 0)" in text
        assert text.splitlines()[1].endswith(f"_{j})")  # '(Slurm job ID_j)': it ran as array task j
        # Slurm gave the task cmd.sh's --num_threads as --cpus-per-task
        n = expected_cpus[cmd]
        assert (recipe_dir / f"exp/cpus.{j}").read_text() == f"cpus={n} threads={n}\n"
    q = recipe_dir / "exp/log/q"
    assert (q / "step.sh").is_file() and (q / "step.sbatch.out").read_text().startswith("Submitted batch job")
    assert squeue(slurm_cluster) == ""


def test_failing_job_is_reported_with_its_log(slurm_cluster, recipe_dir):  # noqa: F811
    line = ('$decode_cmd JOB=1:4 exp/log/bad.JOB.log echo working on JOB ";" '
            '"[" JOB != 3 "]" "||" "{" echo task JOB fails ">&2" ";" exit 7 ";" "}"')
    res = through_cmd_sh(recipe_dir, "slurm", slurm_cluster.env, line)
    assert res.returncode == 1, res.stdout + res.stderr
    failed_log = recipe_dir / "exp/log/bad.3.log"
    assert "1 / 4 failed (jobs: 3;" in res.stderr
    assert "log is in exp/log/bad.3.log" in res.stderr
    assert "task 3 fails" in res.stderr  # the tail of the failed log is shown
    assert "task 3 fails" in failed_log.read_text() and "# Ended (code 7)" in failed_log.read_text()
    for j in (1, 2, 4):
        assert "# Ended (code 0)" in (recipe_dir / f"exp/log/bad.{j}.log").read_text()


@pytest.mark.parametrize("opts,site_opts,message", [
    ("--mem 100T", "", "Memory specification can not be satisfied"),
    ("", "--partition=nosuch", "invalid partition specified"),  # $P4Q_SBATCH_OPTS reaches sbatch
])
def test_refused_submission_shows_sbatch_message(slurm_cluster, recipe_dir, opts, site_opts,  # noqa: F811
                                                 message):
    env = slurm_cluster.env
    env["P4Q_SBATCH_OPTS"] = site_opts
    res = through_cmd_sh(recipe_dir, "slurm", env, f"$train_cmd {opts} JOB=1:2 exp/log/big.JOB.log true")
    assert res.returncode == 1
    assert "sbatch refused the job" in res.stderr and message in res.stderr, res.stderr
    assert not (recipe_dir / "exp/log/big.1.log").exists()


def test_site_options_and_max_jobs_run(slurm_cluster, recipe_dir):  # noqa: F811
    """$P4Q_SBATCH_OPTS are passed on, and --max_jobs_run 1 runs the tasks one after another."""
    env = slurm_cluster.env
    env["P4Q_SBATCH_OPTS"] = f"--partition={slurm_cluster.partition}"
    line = ("$decode_cmd --max_jobs_run 1 JOB=1:3 exp/log/t.JOB.log date +%s.%N '>' exp/start.JOB ';' "
            "sleep 1 ';' date +%s.%N '>' exp/end.JOB")
    res = through_cmd_sh(recipe_dir, "slurm", env, line)
    assert res.returncode == 0, res.stderr
    spans = sorted((float((recipe_dir / f"exp/start.{j}").read_text()),
                    float((recipe_dir / f"exp/end.{j}").read_text())) for j in (1, 2, 3))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans  # no two tasks at once


def test_stopped_run_cancels_its_tasks(slurm_cluster, recipe_dir):  # noqa: F811
    """SIGTERM to the runner (a Ctrl-C or a killed pipeline) cancels the array; the tasks' logs say
    that Slurm stopped them and nothing is left queued or running."""
    script = "cmd_backend=slurm; . ./cmd.sh; exec $decode_cmd JOB=1:2 exp/log/long.JOB.log sleep 120"
    proc = subprocess.Popen(["bash", "-c", script], cwd=recipe_dir, env=slurm_cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        logs = [recipe_dir / f"exp/log/long.{j}.log" for j in (1, 2)]
        deadline = time.time() + 30
        while time.time() < deadline and not all(log.exists() for log in logs):  # both started
            time.sleep(0.3)
        assert squeue(slurm_cluster).count("RUNNING") == 2, squeue(slurm_cluster)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "cancelled" in err, err
    deadline = time.time() + 20
    while time.time() < deadline and squeue(slurm_cluster):
        time.sleep(0.3)
    assert squeue(slurm_cluster) == ""
    for log in logs:
        assert "# Ended (code 143: stopped by Slurm" in log.read_text(), log.read_text()


SHIPPED_BASE = REPO / "egs2" / "synth_sa" / "asr1" / "pretrained" / "synth_sa_base"


def test_p4q_adaptation_and_decoding_as_slurm_jobs(slurm_cluster, ci_recipe, tmp_path):  # noqa: F811
    """Stages 1-9 with --cmd_backend slurm: NF4 base, LoRA pretraining (one job), P4Q adaptation of
    the held-out speakers (an array of 2) and their decoding (an array of 2), all through sbatch."""
    recipe = ci_recipe.recipe
    (tmp_path / "adapt.yaml").write_text("epochs: 2\nbatch_size: 8\nlr: 0.001\nwarmup_steps: 0\n"
                                         "grad_clip: 5.0\nseed: 0\n")
    env = pipeline_env()
    env["SLURM_CONF"] = slurm_cluster.env["SLURM_CONF"]
    res = subprocess.run(
        ["./run.sh", *ci_recipe.ci_options(), "--expdir", "exp_slurm", "--cmd_backend", "slurm",
         "--pretrained_model", str(SHIPPED_BASE), "--stage", "1", "--stop_stage", "9",
         "--adapt_systems", "p4q", "--systems", "p4q", "--n_adapt", "2",
         "--adapt_lora_config", str(tmp_path / "adapt.yaml"), "--adapt_nj", "2", "--inference_nj", "2"],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:] + slurm_cluster.log_tails()
    assert "backend: slurm" in out
    print("\nstage times with the Slurm backend (s):", stage_times(out))
    exp = recipe / "exp_slurm" / "asr_pretrained_synth_sa_base"
    spks = read_ids(recipe / "data" / "sa_tune.list") + read_ids(recipe / "data" / "sa_eval.list")
    assert len(spks) >= 2
    adapt, decode = exp / "adapt_p4q", exp / "decode_p4q"
    logs = [exp / "lora_pretrain.log"] + [adapt / f"logdir/adapt.{j}.log" for j in (1, 2)] + \
        [decode / f"logdir/decode.{j}.log" for j in (1, 2)]
    for log in logs:
        text = log.read_text()
        assert "(Slurm job " in text.splitlines()[1] and "# Ended (code 0)" in text, log
    for spk in spks:
        assert (adapt / spk / "adapter.pth").is_file()
        assert json.loads((adapt / spk / "train.json").read_text())["steps"] > 0
        hyp = decode / f"{spk}_test" / "text"
        assert read_ids(hyp) == read_ids(recipe / "data" / f"{spk}_test" / "text")
    assert (adapt / "logdir/q/adapt.sh").is_file() and (decode / "logdir/q/decode.sh").is_file()
    assert squeue(slurm_cluster) == ""


def test_rerun_cancels_tasks_left_by_a_killed_run(slurm_cluster, recipe_dir):  # noqa: F811
    """A run killed with SIGKILL cannot cancel its array; the next run of the step does, before its
    own tasks write to the same logs."""
    script = "cmd_backend=slurm; . ./cmd.sh; exec $decode_cmd JOB=1:2 exp/log/step.JOB.log sleep 300"
    proc = subprocess.Popen(["bash", "-c", script], cwd=recipe_dir, env=slurm_cluster.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    logs = [recipe_dir / f"exp/log/step.{j}.log" for j in (1, 2)]
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not all(log.exists() for log in logs):
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert squeue(slurm_cluster).count("RUNNING") == 2, squeue(slurm_cluster)
    res = through_cmd_sh(recipe_dir, "slurm", slurm_cluster.env,
                         "$decode_cmd JOB=1:2 exp/log/step.JOB.log echo again JOB")
    assert res.returncode == 0, res.stderr
    assert "cancelling Slurm job" in res.stderr
    for j, log in enumerate(logs, 1):
        text = log.read_text()
        assert f"again {j}\n" in text and "# Ended (code 0)" in text and "stopped by Slurm" not in text
    assert squeue(slurm_cluster) == ""
