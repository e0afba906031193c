"""End to end: the shared pipeline (egs2/TEMPLATE/asr1/p4q.sh) on a CI-size corpus.

One run of stages 1-10 through the default recipe's run.sh with the CI configs, killed (SIGKILL to
its whole process group) while stage 5 trains and restarted; then the outputs of every stage are
checked, a third run must skip everything and rewrite nothing, runs killed at a random moment of
LoRA pretraining, adaptation and decoding must resume to the same results, and a pretrained-model import and a
Slurm-backend decode (with a stand-in sbatch) reuse the trained model. A few minutes on 2 cores.

The recipe is copied into a temporary tree shaped like the repository (``<root>/path.sh`` and
``<root>/egs2/TEMPLATE`` are symlinks into the repository, ``<root>/egs2/synth_sa/asr1`` a copy), so
data/, exp/ and RESULTS.md are written only there. The corpus comes from the recipe's own
``local/data.sh --config conf/data_ci.yaml`` when that works here, otherwise from a stand-in
``local/data.sh`` synthesising ~30 espeak-ng utterances in the same layout (data/train, data/dev,
data/<spk>_adapt, data/<spk>_test, data/sa_tune.list, data/sa_eval.list; 16 kHz wav);
P4Q_TEST_FAKE_CORPUS=1 forces the stand-in.

(No conftest.py here: the repository's tests import helpers with ``from conftest import ...``,
which a second conftest module would shadow.)
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest
import yaml

from espnet_p4q.lora.adapter_io import read_adapter
from test_pipeline_utils import FAKE_SBATCH  # noqa: E402 - beside this file (tests are no package)

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs2" / "synth_sa" / "asr1"

# Stand-in corpus: 2 training voices (8 train + 2 dev utterances each) and 2 held-out speakers
# (3 adapt + 3 test each), espeak-ng voices, resampled to 16 kHz.
FAKE_DATA_SH = textwrap.dedent(r'''
    #!/usr/bin/env bash
    # Test stand-in for local/data.sh: ~30 espeak-ng utterances, 4 speakers. Options are ignored.
    set -euo pipefail
    python3 - <<'PY'
    import os, subprocess
    sentences = [
        "THE CAT SAT ON THE MAT", "A DOG RAN IN THE PARK", "SHE READS A GOOD BOOK",
        "WE WALK TO THE STORE", "THE SUN IS VERY BRIGHT", "HE PLAYS THE OLD PIANO",
        "THEY EAT BREAD AND CHEESE", "MY FRIEND LIKES GREEN TEA", "THE BIRD SINGS AT DAWN",
        "IT RAINS IN THE CITY", "THE CHILD DRAWS A HOUSE", "OPEN THE WINDOW PLEASE",
        "THE TRAIN LEAVES AT NOON", "A COLD WIND BLOWS TODAY",
    ]
    speakers = {  # id: (espeak-ng voice, role)
        "trm3": ("en-us+m3", "train"), "trf2": ("en+f2", "train"),
        "sa_m7": ("en-us+m7", "tune"), "sa_f4": ("en+f4", "eval"),
    }
    wavdir = os.path.abspath("downloads/fake_corpus")
    os.makedirs(wavdir, exist_ok=True)
    sets = {}
    for spk, (voice, role) in speakers.items():
        if role == "train":
            parts = [("train", sentences[:8]), ("dev", sentences[8:10])]
        else:
            parts = [(spk + "_adapt", sentences[10:13]), (spk + "_test", sentences[:3])]
        for name, texts in parts:
            for i, text in enumerate(texts):
                utt = f"{spk}-{name.split('_')[-1]}{i:02d}"
                wav = os.path.join(wavdir, utt + ".wav")
                if not os.path.exists(wav):
                    raw = wav + ".22k.wav"
                    subprocess.run(["espeak-ng", "-v", voice, "-w", raw, text.lower()], check=True)
                    subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", wav], check=True)
                    os.remove(raw)
                sets.setdefault(name, []).append((utt, spk, wav, text))
    for name, utts in sets.items():
        d = os.path.join("data", name)
        os.makedirs(d, exist_ok=True)
        utts.sort()
        with open(f"{d}/wav.scp", "w") as f:
            f.writelines(f"{u} {w}\n" for u, _, w, _ in utts)
        with open(f"{d}/text", "w") as f:
            f.writelines(f"{u} {t}\n" for u, _, _, t in utts)
        with open(f"{d}/utt2spk", "w") as f:
            f.writelines(f"{u} {s}\n" for u, s, _, _ in utts)
        spk2utt = {}
        for u, s, _, _ in utts:
            spk2utt.setdefault(s, []).append(u)
        with open(f"{d}/spk2utt", "w") as f:
            f.writelines(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items()))
    with open("data/sa_tune.list", "w") as f:
        f.write("sa_m7\n")
    with open("data/sa_eval.list", "w") as f:
        f.write("sa_f4\n")
    PY
''').lstrip()


def sys_python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


def pipeline_env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("P4Q_CMD_BACKEND", None)
    return env


@dataclass
class CiRecipe:
    root: Path          # temporary repository root
    recipe: Path        # <root>/egs2/synth_sa/asr1 (a copy)
    data_opts: str      # --local_data_opts for the CI corpus
    real_corpus: bool   # True: the recipe's own local/data.sh; False: the espeak-ng stand-in

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """./run.sh with the CI options and then ARGS, in the recipe copy; output captured."""
        return subprocess.run(["./run.sh", *self.ci_options(), *args], cwd=self.recipe,
                              env=pipeline_env(), capture_output=True, text=True, timeout=timeout)

    def ci_options(self) -> List[str]:
        return ["--local_data_opts", self.data_opts,
                "--train_config", "conf/train_ci.yaml", "--inference_config", "conf/decode_ci.yaml",
                "--nbpe", "50", "--nj", "2", "--inference_nj", "2", "--num_workers", "0",
                "--ngpu", "0", "--n_adapt", "0", "--pretrained_model", ""]


def make_tree(root: Path) -> Path:
    """A repository-shaped tree with a copy of the default recipe; returns the recipe dir."""
    (root / "egs2" / "synth_sa").mkdir(parents=True)
    (root / "path.sh").symlink_to(REPO / "path.sh")
    (root / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    recipe = root / "egs2" / "synth_sa" / "asr1"
    shutil.copytree(RECIPE, recipe, symlinks=True,
                    ignore=shutil.ignore_patterns("data", "exp", "dump", "downloads", "RESULTS.md",
                                                  "RESULTS.tmp*", "__pycache__"))
    return recipe


@pytest.fixture(scope="session")
def ci_recipe(tmp_path_factory) -> CiRecipe:
    root = tmp_path_factory.mktemp("p4q_recipe")
    recipe = make_tree(root)
    real_data = recipe / "local" / "data.sh"
    force_fake = os.environ.get("P4Q_TEST_FAKE_CORPUS") == "1"
    if not force_fake and real_data.exists() and (recipe / "conf" / "data_ci.yaml").exists():
        probe = subprocess.run(["bash", "local/data.sh", "--config", "conf/data_ci.yaml"],
                               cwd=recipe, env=pipeline_env(), capture_output=True, text=True,
                               timeout=600)
        if probe.returncode == 0 and (recipe / "data" / "train" / "wav.scp").exists():
            # Keep the synthesised audio (stage 1 finds it and only rewrites the data dirs).
            shutil.rmtree(recipe / "data")
            return CiRecipe(root, recipe, "--config conf/data_ci.yaml", True)
        print(f"local/data.sh --config conf/data_ci.yaml failed here (exit {probe.returncode}); "
              f"using the espeak-ng stand-in corpus\n{probe.stderr[-2000:]}")
    shutil.rmtree(recipe / "local", ignore_errors=True)
    (recipe / "local").mkdir()
    real_data.write_text(FAKE_DATA_SH)
    real_data.chmod(0o755)
    shutil.rmtree(recipe / "data", ignore_errors=True)
    shutil.rmtree(recipe / "downloads", ignore_errors=True)
    return CiRecipe(root, recipe, "", False)


EXP_NAME = "asr_train_ci_bpe_unigram50"
STATS_NAME = "asr_stats_train_ci_bpe_unigram50"


def stage_times(output: str) -> dict:
    return {f"{m.group(1)} {m.group(2)}": int(m.group(3))
            for m in re.finditer(r"Stage (\d+) \((\w+)\) finished in (\d+) s", output)}


def read_ids(path: Path) -> list:
    return [line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()]


def speakers(path: Path) -> list:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def snapshot(paths) -> dict:
    return {str(p): os.stat(p).st_mtime_ns for p in paths}


def read_or_empty(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def decoding_results(exp: Path) -> dict:
    """Every hypothesis file and sclite report of every system (what RESULTS.md is made from)."""
    return {str(p.relative_to(exp)): p.read_text() for pattern in ("decode_*/*/text", "decode_*/*/score_wer/result.txt")
            for p in sorted(exp.glob(pattern))}


def run_and_kill(r: "CiRecipe", under_way, delay: float, log: Path) -> bool:
    """Run the recipe; once ``under_way()`` holds, wait ``delay`` seconds and SIGKILL its whole
    process group (a crash or a lost node). Returns whether the kill came before the run ended."""
    with open(log, "w") as f:
        proc = subprocess.Popen(["./run.sh", *r.ci_options()], cwd=r.recipe, env=pipeline_env(),
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and not under_way() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        for _ in range(200):  # the group's processes exit (and free the lock) a moment later
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    if not killed:
        assert proc.returncode == 0, log.read_text()[-3000:]
    return killed


def test_ci_pipeline_end_to_end(ci_recipe, tmp_path):
    r = ci_recipe
    recipe = r.recipe
    exp = recipe / "exp" / EXP_NAME

    # 1. First run, killed hard while stage 5 trains (as a crash or a lost node would).
    t0 = time.time()
    with open(tmp_path / "run1.log", "w") as log1:
        proc = subprocess.Popen(["./run.sh", *r.ci_options()], cwd=recipe, env=pipeline_env(),
                                stdout=log1, stderr=subprocess.STDOUT, start_new_session=True)
        killed = False
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            if (exp / "1epoch.pth").exists():
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
        if proc.poll() is None and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the first run took more than 600 s")
        proc.wait(timeout=60)
        # SIGKILL is delivered at once but the processes of the group exit (and release the
        # recipe's lock) a moment later.
        for _ in range(200):
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    run1 = (tmp_path / "run1.log").read_text()
    t_run1 = time.time() - t0
    if killed:
        assert not (exp / ".done").exists()
        for marker in ("data/.data.done", "data/.validate.done",
                       "data/token_list/bpe_unigram50/.done", f"exp/{STATS_NAME}/.done"):
            assert (recipe / marker).exists(), f"{marker} missing after the kill\n{run1[-3000:]}"
    else:  # training finished before it could be caught; the run must then have succeeded
        assert proc.returncode == 0, run1[-3000:]

    # 2. Restart: finished stages are skipped, training resumes, everything completes.
    t0 = time.time()
    res = r.run()
    t_run2 = time.time() - t0
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    for msg in ("Stage 1: data preparation already done", "Stage 2: data dirs already validated",
                "Stage 3: token list already made", "Stage 4: statistics already collected"):
        assert msg in out, f"'{msg}' not in the restarted run's output\n{out[-4000:]}"
    if killed:
        assert ("resuming the interrupted training" in out or "is unreadable" in out), out[-4000:]
        assert len(list(exp.glob("train.*.log"))) == 1  # the interrupted run's log, kept
    if "resuming the interrupted training" in out:
        assert "The training was resumed" in (exp / "train.log").read_text()
    print(f"\ncorpus: {'local/data.sh + conf/data_ci.yaml' if r.real_corpus else 'espeak-ng stand-in'}"
          f"; first run (killed={killed}) {t_run1:.0f} s, restart {t_run2:.0f} s")
    print("stage times of the first run (s):", stage_times(run1))
    print("stage times of the restart (s):", stage_times(out))

    # 3. Outputs of every stage.
    data = recipe / "data"
    tokens = (data / "token_list" / "bpe_unigram50" / "tokens.txt").read_text().split("\n")
    tokens = [t for t in tokens if t]
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert len(tokens) == len(set(tokens)) and len(tokens) > 10
    assert (data / "token_list" / "bpe_unigram50" / "bpe.model").stat().st_size > 0
    stats = recipe / "exp" / STATS_NAME
    for sub in ("train", "valid"):
        for name in ("feats_stats.npz", "speech_shape", "text_shape.bpe"):
            assert (stats / sub / name).stat().st_size > 0
        first = (stats / sub / "text_shape.bpe").read_text().splitlines()[0]
        assert first.endswith(f",{len(tokens)}")
    assert (exp / "config.yaml").exists()
    base = exp / "base.pth"
    assert base.is_symlink() and base.resolve().is_file()
    assert (exp / ".done").exists()

    tune = speakers(data / "sa_tune.list")
    evals = speakers(data / "sa_eval.list")
    assert tune and evals
    test_sets = ["dev"] + [f"{s}_test" for s in tune + evals]
    dec = exp / "decode_fp32"
    for s in test_sets:
        hyp = dec / s / "text"
        assert read_ids(hyp) == read_ids(data / s / "text"), s
        result = (dec / s / "score_wer" / "result.txt").read_text()
        assert "Sum/Avg" in result
        assert (dec / s / "score_wer" / "hyp.trn").exists()
        assert (dec / s / "score_wer" / "wer.json").exists()
    for group, spks in (("sa_tune", tune), ("sa_eval", evals)):
        result = (dec / f"overall_{group}" / "score_wer" / "result.txt").read_text()
        assert "Sum/Avg" in result
        for spk in spks:
            assert f"| {spk} " in result, (spk, result)
    results_md = (recipe / "RESULTS.md").read_text()
    for s in test_sets + ["overall_sa_tune", "overall_sa_eval"]:
        assert f"|{s}|" in results_md
    assert "decode_fp32" in results_md

    # Stages 6-8 and 11: NF4 base, pretrained LoRA, per-speaker systems, the P4Q comparison.
    size = json.loads((exp / "nf4" / "size.json").read_text())
    assert size["ratio"] > 1 and (exp / "nf4" / "model.pth").stat().st_size == size["quantized_bytes"]
    assert (exp / "lora_pretrain" / "pretrain" / "adapter.pth").is_file()
    for system, part in (("p4q", "adapter.pth"), ("lora_scratch_nf4", "adapter.pth"),
                         ("fft_fp32", "model.pth"), ("fft_nf4", "model.pth")):
        for spk in tune + evals:
            assert (exp / f"adapt_{system}" / spk / part).exists(), (system, spk)
            assert json.loads((exp / f"adapt_{system}" / spk / "train.json").read_text())["steps"] > 0
    per_speaker = ("p4q", "lora_scratch_nf4", "fft_nf4", "fft_fp32")
    for system in ("nf4", "lora_pretrain_nf4") + per_speaker:
        for s in test_sets:
            if system in per_speaker and s == "dev":  # they serve the held-out speakers only
                assert not (exp / f"decode_{system}" / s).exists(), system
                continue
            assert read_ids(exp / f"decode_{system}" / s / "text") == read_ids(data / s / "text"), (system, s)
    assert "MAPSSWE" in results_md and "(P4Q)" in results_md
    numbers = json.loads((exp / "compare" / "RESULTS.json").read_text())
    assert numbers
    assert not list(recipe.glob("RESULTS.tmp*"))
    assert not list((recipe / "exp").rglob("*.tmp")), "temporary outputs left behind"

    # 4. A third run skips every stage and rewrites nothing.
    watched = [data / "token_list" / "bpe_unigram50" / "tokens.txt", stats / "train" / "feats_stats.npz",
               base.resolve(), recipe / "RESULTS.md"]
    watched += [dec / s / "text" for s in test_sets]
    watched += [dec / s / "score_wer" / "result.txt" for s in test_sets]
    before = snapshot(watched)
    t0 = time.time()
    res = r.run()
    t_run3 = time.time() - t0
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert snapshot(watched) == before
    for msg in ("Stage 1: data preparation already done", "Stage 2: data dirs already validated",
                "Stage 3: token list already made", "Stage 4: statistics already collected",
                "Stage 5: base model already trained", "already decoded",
                "every set already scored"):
        assert msg in out, msg
    assert "collect_stats with" not in out and "training the base model" not in out
    print(f"re-run with everything done: {t_run3:.1f} s")

    # 4a. Kills at a random moment of LoRA pretraining, of adaptation and of decoding: every
    # rerun resumes, nothing half-written is accepted, and the results equal the uninterrupted run's.
    reference = decoding_results(exp)
    for d in [exp / "lora_pretrain", exp / "compare", *exp.glob("adapt_*"), *exp.glob("decode_*")]:
        if d.name != "decode_fp32":
            shutil.rmtree(d)
    seed = int(os.environ.get("P4Q_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"fault test seed {seed} (P4Q_FAULT_SEED reproduces it)")
    triggers = [  # (what, condition that the work is under way)
        ("LoRA pretraining", lambda: "utterances (" in read_or_empty(exp / "lora_pretrain.log")),
        ("adaptation", lambda: any(exp.glob("adapt_*/*/adapter.pth"))),
        ("decoding", lambda: any(exp.glob("decode_nf4/logdir/decode.*.log"))),
    ]
    for what, under_way in triggers:
        delay = rng.uniform(0.0, 2.0)
        killed = run_and_kill(r, under_way, delay, tmp_path / f"fault_{what.split()[0]}.log")
        print(f"killed during {what} after {delay:.2f} s: {killed}")
    res = r.run()
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert decoding_results(exp) == reference
    assert not list((recipe / "exp").rglob("*.tmp")), "temporary outputs left behind"

    # 4b. The optional sweeps: new points are adapted and decoded, the point of the main run
    # (rank 4 of conf/lora/rank4.yaml) is reused, RESULTS.md links the plots.
    res = r.run("--stage", "12", "--stop_stage", "13", "--sweep_n_adapt", "2 4",
                "--sweep_utts_systems", "p4q", "--sweep_ranks", "1 4")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    sweep = exp / "sweep"
    for kind, xs in (("utts", {"2", "4"}), ("rank", {"1", "4"})):
        rows = (sweep / f"sweep_{kind}.csv").read_text().splitlines()
        assert rows[0].startswith("system,x,wer") and {row.split(",")[1] for row in rows[1:]} == xs, rows
        assert (sweep / f"sweep_{kind}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"sweep_{kind}.png" in (recipe / "RESULTS.md").read_text()
    for spk in evals:
        assert (sweep / "adapt_p4q_n2" / spk / "adapter.pth").is_file()
        assert (sweep / "adapt_p4q_r1" / spk / "adapter.pth").is_file()
        assert read_ids(exp / "decode_sweep_rank_p4q_r1" / f"{spk}_test" / "text") == \
            read_ids(data / f"{spk}_test" / "text")
    assert read_adapter(sweep / "adapt_p4q_r1" / evals[0] / "adapter.pth")["lora_config"]["rank"] == 1
    assert not (sweep / "adapt_p4q_r4").exists()

    # 4c. Hyperparameters are tuned on the tuning speakers only.
    tune = [sys_python(), str(REPO / "egs2/TEMPLATE/asr1/pyscripts/tune_adapt.py"), "--exp_dir", f"exp/{EXP_NAME}",
            "--system", "p4q", "--train_conf", "conf/adapt_lora.yaml", "--lora_conf", str(REPO / "conf/lora/rank4.yaml"),
            "--grid", "lr=1e-3,3e-3", "epochs=1", "--decode_config", "conf/decode_ci.yaml",
            "--output_dir", "exp/tune_p4q"]
    res = subprocess.run(tune, cwd=recipe, env=pipeline_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    table = (recipe / "exp" / "tune_p4q" / "tune.tsv").read_text().splitlines()
    assert table[0].split("\t")[:3] == ["lr", "epochs", "wer"] and len(table) == 3
    assert sum(row.endswith("*") for row in table) == 1
    bad = subprocess.run(tune + ["--tune_list", "data/sa_eval.list"], cwd=recipe, env=pipeline_env(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "tuning on them is not allowed" in bad.stderr
    tune = [sys_python(), str(REPO / "egs2/TEMPLATE/asr1/pyscripts/tune_decode.py"), "--exp_dir", f"exp/{EXP_NAME}",
            "--decode_config", "conf/decode_ci.yaml", "--grid", "ctc_weight=0.3,0.7", "--output_dir", "exp/tune_dec"]
    res = subprocess.run(tune, cwd=recipe, env=pipeline_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    table = (recipe / "exp" / "tune_dec" / "tune.tsv").read_text().splitlines()
    assert table[0].split("\t")[:2] == ["ctc_weight", "wer"] and len(table) == 3
    assert sum(row.endswith("*") for row in table) == 1
    assert yaml.safe_load((recipe / "exp/tune_dec/ctc_weight0.7/decode.yaml").read_text())["ctc_weight"] == 0.7
    bad = subprocess.run(tune + ["--tune_list", "data/sa_eval.list"], cwd=recipe, env=pipeline_env(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "tuning on them is not allowed" in bad.stderr

    # 5. Export the trained model as the default recipe ships its base (espnet2's pack layout,
    # meta.yaml), import it as a pretrained one (stages 3-4 skipped) and decode with it.
    res = subprocess.run([sys_python(), str(REPO / "egs2/TEMPLATE/asr1/pyscripts/export_base.py"),
                          "--exp_dir", f"exp/{EXP_NAME}", "--output_dir", "shipped/base",
                          "--train_config", "conf/train_ci.yaml", "--command", "./run.sh ..."],
                         cwd=recipe, env=pipeline_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    shipped = recipe / "shipped" / "base"
    assert (shipped / "meta.yaml").is_file() and "epoch results" in (shipped / "train_epochs.log").read_text()
    assert "overall_sa_eval" in (shipped / "scores.txt").read_text()
    assert json.loads((shipped / "provenance.json").read_text())["corpus_sha256"]["train/text"]
    res = r.run("--pretrained_model", "shipped/base", "--asr_tag", "imported",
                "--test_sets", "dev", "--inference_nj", "1", "--stage", "3", "--stop_stage", "10",
                "--systems", "fp32")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "Stage 3: skipped" in out and "Stage 4: skipped" in out
    imported = recipe / "exp" / "asr_imported"
    assert (imported / "base.pth").is_file() and not (imported / "base.pth").is_symlink()
    config = (imported / "config.yaml").read_text()
    assert "bpemodel: exp/asr_imported/pretrained_files/" in config
    assert "stats_file: exp/asr_imported/pretrained_files/" in config
    assert (imported / "decode_fp32" / "dev" / "text").read_text() == (dec / "dev" / "text").read_text()
    assert "asr_imported" in (recipe / "RESULTS.md").read_text()

    # 6. The Slurm backend, through cmd.sh, with a stand-in sbatch: redo one decode.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text(FAKE_SBATCH)
    (fake_bin / "sbatch").chmod(0o755)
    env = pipeline_env()
    env["PATH"] = f"{fake_bin}:{env['PATH']}"
    res = subprocess.run(["./run.sh", *r.ci_options(), "--cmd_backend", "slurm", "--test_sets", "dev",
                          "--inference_nj", "1", "--stage", "9", "--stop_stage", "9",
                          "--skip_done", "false"],
                         cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    q = dec / "logdir" / "q"
    assert (q / "decode.sh").exists()
    assert "Slurm job 77" in (dec / "logdir" / "decode.1.log").read_text()
    assert read_ids(dec / "dev" / "text") == read_ids(data / "dev" / "text")


def test_help(ci_recipe):
    res = subprocess.run(["./run.sh", "--help"], cwd=ci_recipe.recipe, env=pipeline_env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for s in ("--stage=", "--stop_stage=", "--nbpe=158", "--train_config=conf/train.yaml",
              "--pretrained_model=", "--systems=", "data ", "validate", "tokens", "stats",
              "train ", "quantize", "lora_pretrain", "adapt", "decode", "score", "compare"):
        assert s in res.stdout, s
    bad = subprocess.run(["./run.sh", "--no_such_option", "1"], cwd=ci_recipe.recipe,
                         env=pipeline_env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown option --no_such_option" in bad.stderr


def test_top_level_run_sh_help():
    res = subprocess.run([str(REPO / "run.sh"), "--help"], env=pipeline_env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--install" in res.stdout and "--stop_stage=" in res.stdout
