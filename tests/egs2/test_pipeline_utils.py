"""Fast tests of the pipeline's parts: option parsing, job backends, decode job planning, RESULTS.md,
pretrained-model import, and p4q.sh's markers and lock (stages 1-2 on a stand-in corpus)."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "asr1"
UTILS = TEMPLATE / "utils"
PYSCRIPTS = TEMPLATE / "pyscripts"


def sh(cmd, cwd=None, env=None, check=False):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                         shell=isinstance(cmd, str), executable="/bin/bash" if isinstance(cmd, str) else None)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


# ---------------------------------------------------------------------------- parse_options.sh
@pytest.fixture
def opt_script(tmp_path):
    script = tmp_path / "opts.sh"
    script.write_text(textwrap.dedent(f"""\
        stage=1
        flag=true
        name="a b"
        nbpe=150
        usage() {{ echo "usage: stage=$stage"; }}
        . {UTILS}/parse_options.sh
        echo "stage=$stage flag=$flag name=$name nbpe=$nbpe rest=$*"
        """))
    return script


def test_parse_options_sets_known_options(opt_script):
    res = sh(["bash", str(opt_script), "--stage", "3", "--nbpe=300", "--name", "x y", "pos1", "pos2"],
             check=True)
    assert res.stdout.strip() == "stage=3 flag=true name=x y nbpe=300 rest=pos1 pos2"
    res = sh(["bash", str(opt_script), "--flag", "false", "--", "--stage"], check=True)
    assert res.stdout.strip() == "stage=1 flag=false name=a b nbpe=150 rest=--stage"


@pytest.mark.parametrize("args,message", [
    (["--no_such", "1"], "unknown option --no_such"),
    (["--flag", "maybe"], "takes true or false"),
    (["--stage"], "needs a value"),
])
def test_parse_options_rejects(opt_script, args, message):
    res = sh(["bash", str(opt_script), *args])
    assert res.returncode != 0 and message in res.stderr


def test_parse_options_help_sees_earlier_options(opt_script):
    res = sh(["bash", str(opt_script), "--stage", "7", "--help", "--stage", "9"])
    assert res.returncode == 0 and res.stdout.strip() == "usage: stage=7"


def test_parse_options_config_file(opt_script, tmp_path):
    (tmp_path / "c.conf").write_text("nbpe=42\n")
    res = sh(["bash", str(opt_script), "--config", str(tmp_path / "c.conf"), "--stage", "2"], check=True)
    assert "stage=2" in res.stdout and "nbpe=42" in res.stdout


# ---------------------------------------------------------------------------- run_local.sh
def test_run_local_parallel_jobs(tmp_path):
    t0 = time.time()
    res = sh([str(UTILS / "run_local.sh"), "JOB=1:3", str(tmp_path / "log/x.JOB.log"),
              "sleep", "1", "&&", "echo", "job", "JOB", "a b", ">", str(tmp_path / "out.JOB")],
             check=True)
    assert time.time() - t0 < 2.8, "jobs did not run in parallel"
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text() == f"job {j} a b\n"
        log = (tmp_path / f"log/x.{j}.log").read_text()
        assert log.startswith(f"# sleep 1 && echo job {j}") and "# Ended (code 0)" in log
    assert res.stderr == ""


def test_run_local_reports_failures(tmp_path):
    res = sh([str(UTILS / "run_local.sh"), "--max_jobs_run", "2", "--gpu", "1", "JOB=1:4",
              str(tmp_path / "y.JOB.log"), "[", "JOB", "!=", "3", "]"])
    assert res.returncode == 1
    assert "1 / 4 failed" in res.stderr and str(tmp_path / "y.3.log") in res.stderr
    assert "# Ended (code 1)" in (tmp_path / "y.3.log").read_text()


def test_run_local_single_job(tmp_path):
    sh([str(UTILS / "run_local.sh"), str(tmp_path / "one.log"), "echo", "hi"], check=True)
    assert "hi\n" in (tmp_path / "one.log").read_text()


# ---------------------------------------------------------------------------- run_slurm.sh
FAKE_SBATCH = r"""#!/usr/bin/env bash
# Stand-in for Slurm's sbatch --wait --array=A-B[%M] SCRIPT: runs the tasks here, one by one.
echo "$*" >> "${SBATCH_ARGS_LOG:-/dev/null}"
array="" out=""
for a in "$@"; do
  case $a in --array=*) array=${a#--array=} ;; --output=*) out=${a#--output=} ;; esac
  script=$a
done
array=${array%%%*}
echo "Submitted batch job 77"
rc=0
for (( i = ${array%-*}; i <= ${array#*-}; i++ )); do
  SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=77 bash "$script" > "${out//%a/$i}" 2>&1 || rc=1
done
exit $rc
"""


@pytest.fixture
def slurm_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["SBATCH_ARGS_LOG"] = str(tmp_path / "sbatch_args")
    return env


def test_run_slurm_array(tmp_path, slurm_env):
    sh([str(UTILS / "run_slurm.sh"), "--gpu", "1", "--mem", "4G", "--num_threads", "2",
        "--max_jobs_run", "2", "--sbatch_opts", "--partition=p1", "JOB=1:3",
        str(tmp_path / "log/s.JOB.log"), "echo", "task", "JOB", ">", str(tmp_path / "o.JOB")],
       cwd=tmp_path, env=slurm_env, check=True)
    for j in (1, 2, 3):
        assert (tmp_path / f"o.{j}").read_text() == f"task {j}\n"
        assert "# Ended (code 0)" in (tmp_path / f"log/s.{j}.log").read_text()
    args = (tmp_path / "sbatch_args").read_text()
    for a in ("--wait", "--array=1-3%2", "--gres=gpu:1", "--mem=4G", "--cpus-per-task=2",
              "--partition=p1", "--export=ALL"):
        assert a in args
    assert (tmp_path / "log/q/s.sh").exists()


def test_run_slurm_reports_failures(tmp_path, slurm_env):
    res = sh([str(UTILS / "run_slurm.sh"), "JOB=1:2", str(tmp_path / "f.JOB.log"),
              "[", "JOB", "=", "1", "]"], cwd=tmp_path, env=slurm_env)
    assert res.returncode == 1 and "1 / 2 failed" in res.stderr
    assert str(tmp_path / "f.2.log") in res.stderr


# ---------------------------------------------------------------------------- decode_jobs.py
def make_set(root: Path, name: str, spk: str, n: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    utts = [f"{spk}-{name}{i:02d}" for i in range(n)]
    (d / "wav.scp").write_text("".join(f"{u} /w/{u}.wav\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {spk}\n" for u in utts))
    (d / "text").write_text("".join(f"{u} HELLO\n" for u in utts))
    return d


def test_decode_jobs_whole_sets_balanced(tmp_path):
    dirs = [make_set(tmp_path / "data", f"s{i}", f"spk{i}", n) for i, n in enumerate([5, 4, 3, 2])]
    logdir = tmp_path / "logdir"
    res = sh([sys.executable, str(PYSCRIPTS / "decode_jobs.py"), "split", "--nj", "2",
              "--logdir", str(logdir), *map(str, dirs)], check=True)
    assert res.stdout.strip() == "2"
    sets = [(logdir / f"sets.{j}").read_text().split() for j in (1, 2)]
    assert sorted(len(open(logdir / f"wav.{j}.scp").readlines()) for j in (1, 2)) == [7, 7]
    assert sorted(s for job in sets for s in job) == sorted(map(str, dirs))
    # merge: job outputs in espnet2's layout; one hypothesis missing -> empty line
    for j in (1, 2):
        keys = [line.split()[0] for line in open(logdir / f"wav.{j}.scp")]
        out = logdir / f"output.{j}" / "1best_recog"
        out.mkdir(parents=True)
        (out / "text").write_text("".join(f"{k} HYP {k}\n" for k in keys if k != "spk0-s000"))
    sh([sys.executable, str(PYSCRIPTS / "decode_jobs.py"), "merge", "--nj", "2", "--logdir",
        str(logdir), "--output_dir", str(tmp_path / "dec"), *map(str, dirs)], check=True)
    lines = (tmp_path / "dec" / "s0" / "text").read_text().splitlines()
    assert lines[0] == "spk0-s000" and lines[1] == "spk0-s001 HYP spk0-s001" and len(lines) == 5


def test_decode_jobs_chunks_when_fewer_sets_than_jobs(tmp_path):
    d = make_set(tmp_path / "data", "dev", "a", 7)
    logdir = tmp_path / "logdir"
    res = sh([sys.executable, str(PYSCRIPTS / "decode_jobs.py"), "split", "--nj", "3",
              "--logdir", str(logdir), str(d)], check=True)
    assert res.stdout.strip() == "3"
    assert [len(open(logdir / f"wav.{j}.scp").readlines()) for j in (1, 2, 3)] == [3, 2, 2]


def test_decode_jobs_rejects_shared_utterances(tmp_path):
    a = make_set(tmp_path / "d1", "x", "spk", 2)
    b = make_set(tmp_path / "d2", "y", "spk", 2)
    (b / "wav.scp").write_text((a / "wav.scp").read_text())
    res = sh([sys.executable, str(PYSCRIPTS / "decode_jobs.py"), "split", "--nj", "1",
              "--logdir", str(tmp_path / "l"), str(a), str(b)])
    assert res.returncode != 0 and "distinct utterance ids" in res.stderr


# ---------------------------------------------------------------------------- make_results
def test_make_results_reads_the_scorers_counts(tmp_path):
    from espnet_p4q.scoring.score_set import score_set

    (tmp_path / "ref").write_text("spk1-1 A B C D\nspk1-2 E F G H\n")
    (tmp_path / "hyp").write_text("spk1-1 A X C\nspk1-2 E F G H I\n")
    for system, sets in (("fp32", ["dev", "spk1_test", "overall_sa_eval"]), ("nf4", ["spk1_test"])):
        for s in sets:
            score_set(str(tmp_path / "ref"), str(tmp_path / "hyp"),
                      str(tmp_path / "exp" / "asr_x" / f"decode_{system}" / s / "score_wer"))
    out = tmp_path / "RESULTS.md"
    cmd = [sys.executable, "-m", "espnet_p4q.bin.make_results", "--exp_dir", str(tmp_path / "exp"),
           "--output", str(out), "--info", "model: x"]
    sh(cmd, check=True)
    text = out.read_text()
    sum_avg = next(line for line in (tmp_path / "exp/asr_x/decode_fp32/dev/score_wer/result.txt").read_text()
                   .splitlines() if "Sum/Avg" in line)
    assert [float(x) for x in re.findall(r"\d+\.\d+", sum_avg)] == [75.0, 12.5, 12.5, 12.5, 37.5, 100.0]
    assert "|dataset|fp32|nf4|" in text
    assert "|spk1_test|37.5|37.5|" in text and "|dev|37.5|-|" in text
    assert "|spk1_test|2|8|75.0|12.5|12.5|12.5|37.5|100.0|" in text  # the Sum/Avg row of result.txt
    assert text.index("|dev|") < text.index("|spk1_test|") < text.index("|overall_sa_eval|")
    mtime = out.stat().st_mtime_ns
    time.sleep(0.01)
    sh(cmd, check=True)
    assert out.stat().st_mtime_ns == mtime  # unchanged content: the file is left alone


# ---------------------------------------------------------------------------- import_pretrained.py
def test_import_pretrained_packed_layout(tmp_path):
    src = tmp_path / "zoo"
    (src / "exp" / "asr_a").mkdir(parents=True)
    (src / "data" / "tok").mkdir(parents=True)
    (src / "exp" / "stats" / "train").mkdir(parents=True)
    (src / "data" / "tok" / "bpe.model").write_bytes(b"spm")
    (src / "exp" / "stats" / "train" / "feats_stats.npz").write_bytes(b"npz")
    (src / "exp" / "asr_a" / "valid.acc.ave_10best.pth").write_bytes(b"model")
    config = {"token_list": ["<blank>", "A", "<sos/eos>"], "bpemodel": "data/tok/bpe.model",
              "normalize": "global_mvn",
              "normalize_conf": {"stats_file": "exp/stats/train/feats_stats.npz"},
              "train_shape_file": ["exp/stats/train/speech_shape"]}
    (src / "exp" / "asr_a" / "config.yaml").write_text(yaml.safe_dump(config))
    (src / "meta.yaml").write_text(yaml.safe_dump({
        "yaml_files": {"asr_train_config": "exp/asr_a/config.yaml"},
        "files": {"asr_model_file": "exp/asr_a/valid.acc.ave_10best.pth"}}))
    sh([sys.executable, str(PYSCRIPTS / "import_pretrained.py"), "--src", str(src),
        "--output_dir", "exp/asr_p.tmp", "--final_dir", "exp/asr_p"], cwd=tmp_path, check=True)
    out = tmp_path / "exp" / "asr_p.tmp"
    assert (out / "base.pth").read_bytes() == b"model"
    new = yaml.safe_load((out / "config.yaml").read_text())
    assert new["bpemodel"] == "exp/asr_p/pretrained_files/data/tok/bpe.model"
    assert new["normalize_conf"]["stats_file"] == \
        "exp/asr_p/pretrained_files/exp/stats/train/feats_stats.npz"
    assert new["token_list"] == config["token_list"]
    assert new["train_shape_file"] == config["train_shape_file"]
    assert (out / "pretrained_files" / "data" / "tok" / "bpe.model").read_bytes() == b"spm"


def test_import_pretrained_ambiguous_model(tmp_path):
    src = tmp_path / "m"
    src.mkdir()
    (src / "config.yaml").write_text("encoder: conformer\n")
    (src / "a.pth").write_bytes(b"1")
    (src / "b.pth").write_bytes(b"2")
    res = sh([sys.executable, str(PYSCRIPTS / "import_pretrained.py"), "--src", str(src),
              "--output_dir", str(tmp_path / "o")])
    assert res.returncode != 0 and "--pretrained_model_file" in res.stderr
    sh([sys.executable, str(PYSCRIPTS / "import_pretrained.py"), "--src", str(src),
        "--output_dir", str(tmp_path / "o"), "--model_file", "b.pth"], check=True)
    assert (tmp_path / "o" / "base.pth").read_bytes() == b"2"


# ---------------------------------------------------------------------------- p4q.sh itself
STUB_DATA_SH = r"""#!/usr/bin/env bash
# Stand-in corpus: silent 16 kHz wavs, 1 training speaker, 1 held-out speaker.
set -euo pipefail
echo "data.sh called with: $*" >> data_calls.txt
python3 - <<'PY'
import os, wave
os.makedirs("wavs", exist_ok=True)
def mk(name, spk, n):
    d = f"data/{name}"; os.makedirs(d, exist_ok=True)
    utts = [f"{spk}-{name}{i}" for i in range(n)]
    for u in utts:
        with wave.open(f"wavs/{u}.wav", "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(b"\0\0" * 1600)
    open(f"{d}/wav.scp", "w").writelines(f"{u} {os.path.abspath('wavs/' + u + '.wav')}\n" for u in utts)
    open(f"{d}/text", "w").writelines(f"{u} HELLO WORLD\n" for u in utts)
    open(f"{d}/utt2spk", "w").writelines(f"{u} {spk}\n" for u in utts)
    open(f"{d}/spk2utt", "w").write(f"{spk} {' '.join(utts)}\n")
mk("train", "tr1", 3); mk("dev", "tr1", 2); mk("sa1_adapt", "sa1", 2); mk("sa1_test", "sa1", 2)
open("data/sa_tune.list", "w").write("sa1\n"); open("data/sa_eval.list", "w").write("")
PY
"""


@pytest.fixture
def stub_recipe(tmp_path):
    recipe = tmp_path / "egs2" / "stub" / "asr1"
    (recipe / "local").mkdir(parents=True)
    (tmp_path / "path.sh").symlink_to(REPO / "path.sh")
    (tmp_path / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    for f in ("p4q.sh", "cmd.sh", "path.sh", "utils"):
        (recipe / f).symlink_to(f"../../TEMPLATE/asr1/{f}")
    (recipe / "local" / "data.sh").write_text(STUB_DATA_SH)
    (recipe / "local" / "data.sh").chmod(0o755)
    return recipe


def p4q(recipe, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return sh(["./p4q.sh", *args], cwd=recipe, env=env)


def test_p4q_help_runs_anywhere(tmp_path):
    res = sh(["bash", str(TEMPLATE / "p4q.sh"), "--nbpe", "77", "--help"], cwd=tmp_path)
    assert res.returncode == 0 and "--nbpe=77" in res.stdout and " 10  score" in res.stdout
    assert not (tmp_path / "exp").exists()


def test_p4q_markers_skip_and_redo(stub_recipe):
    res = p4q(stub_recipe, "--stop_stage", "2", "--local_data_opts", "--a 1")
    assert res.returncode == 0, res.stderr
    assert "log: exp/data_prep/data.log" in res.stderr and "log: exp/data_prep/validate.log" in res.stderr
    assert (stub_recipe / "data" / ".data.done").exists()
    assert "OK" in (stub_recipe / "exp" / "data_prep" / "validate.log").read_text()
    res = p4q(stub_recipe, "--stop_stage", "2", "--local_data_opts", "--a 1")
    assert res.returncode == 0
    assert "Stage 1: data preparation already done" in res.stderr
    assert "Stage 2: data dirs already validated" in res.stderr
    assert (stub_recipe / "data_calls.txt").read_text().count("\n") == 1
    # Changed options of a cheap stage: redone.
    res = p4q(stub_recipe, "--stop_stage", "1", "--local_data_opts", "--a 2")
    assert res.returncode == 0 and "redoing" in res.stderr
    assert (stub_recipe / "data_calls.txt").read_text().splitlines()[-1].endswith("--a 2")
    # --skip_done false redoes a stage whatever its marker says.
    res = p4q(stub_recipe, "--stage", "2", "--stop_stage", "2", "--skip_done", "false")
    assert res.returncode == 0 and "Stage 2: validating" in res.stderr


def test_p4q_validation_failure_stops(stub_recipe):
    assert p4q(stub_recipe, "--stop_stage", "1").returncode == 0
    with open(stub_recipe / "data" / "dev" / "text", "a") as f:
        f.write("tr1-extra SOMETHING\n")
    res = p4q(stub_recipe, "--stage", "2", "--stop_stage", "2")
    assert res.returncode != 0 and "validate.log" in res.stderr
    assert not (stub_recipe / "data" / ".validate.done").exists()


def test_p4q_lock_refuses_a_second_run(stub_recipe):
    (stub_recipe / "exp").mkdir()
    with open(stub_recipe / "exp" / ".p4q.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = p4q(stub_recipe, "--stop_stage", "1")
    assert res.returncode != 0 and "another p4q.sh" in res.stderr
    assert not (stub_recipe / "data").exists()


def test_setup_sh_creates_a_recipe(tmp_path):
    (tmp_path / "egs2").mkdir()
    (tmp_path / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    (tmp_path / "path.sh").symlink_to(REPO / "path.sh")
    res = sh([str(TEMPLATE / "setup.sh"), "egs2/newcorpus/asr1"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    recipe = tmp_path / "egs2" / "newcorpus" / "asr1"
    for f in ("p4q.sh", "cmd.sh", "path.sh", "db.sh", "utils"):
        assert (recipe / f).is_symlink() and (recipe / f).exists()
    res = sh(["./run.sh", "--help"], cwd=recipe)
    assert res.returncode == 0 and "--train_config=conf/train.yaml" in res.stdout
    assert sh([str(TEMPLATE / "setup.sh"), "egs2/newcorpus/asr1"], cwd=tmp_path).returncode != 0
    assert sh([str(TEMPLATE / "setup.sh"), "elsewhere/x"], cwd=tmp_path).returncode != 0


# ---------------------------------------------------------------------------- check_checkpoint.py
def test_check_checkpoint_repairs_epoch_files_of_a_killed_training(tmp_path):
    import torch

    state = {"w": torch.arange(4.0)}
    torch.save({"model": state, "reporter": {"epoch": 3, "stats": {}}, "optimizers": []},
               tmp_path / "checkpoint.pth")
    torch.save(state, tmp_path / "1epoch.pth")
    (tmp_path / "2epoch.pth").write_bytes(b"PK\x03\x04trunc")   # an older epoch, truncated
    (tmp_path / "3epoch.pth").write_bytes(b"")                  # killed while the trainer wrote it
    res = sh([sys.executable, str(PYSCRIPTS / "check_checkpoint.py"), str(tmp_path / "checkpoint.pth")])
    assert res.returncode == 0, res.stderr
    assert "3epoch.pth: missing or truncated; rewritten" in res.stderr
    assert torch.equal(torch.load(tmp_path / "3epoch.pth")["w"], state["w"])
    assert not (tmp_path / "2epoch.pth").exists() and (tmp_path / "1epoch.pth").exists()
    assert not list(tmp_path.glob("*.tmp"))

    (tmp_path / "checkpoint.pth").write_bytes(b"\x80\x02")      # the checkpoint itself truncated
    res = sh([sys.executable, str(PYSCRIPTS / "check_checkpoint.py"), str(tmp_path / "checkpoint.pth")])
    assert res.returncode == 1 and "cannot be loaded" in res.stderr
