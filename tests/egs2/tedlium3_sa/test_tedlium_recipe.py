"""egs2/tedlium3_sa/asr1 as a recipe: run.sh --help, its configs, and stages 1-2 offline.

Fast checks of what the paper-scale run needs before it meets the corpus and a GPU: run.sh reaches
p4q.sh with this corpus's options, every config it names exists and loads (the base AED builds
with espnet2 at full size, the adaptation YAMLs load into TrainConfig), and p4q.sh's stages 1-2
run on a tiny TED-LIUM tree through the recipe's own run.sh (in a temporary copy shaped like the
repository, so nothing is written into egs2/), including local/data.sh's stage 4, which cuts the
segments into the per-utterance files espnet2's sound reader needs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import tiny_tedlium as tiny
from recipe_checks import REPO, check_sa_data_opts, copy_recipe, env, option, run_help

RECIPE = REPO / "egs2/tedlium3_sa/asr1"


def test_local_data_opts_are_accepted_by_data_sh(help_text, tmp_path):
    opts = check_sa_data_opts(RECIPE, help_text, tmp_path, tiny.partition_rows(), smallest_train_split=46)
    assert opts[opts.index("--dump_dir") + 1]  # espnet2's sound reader reads neither segments nor pipes
    assert opts[opts.index("--unk") + 1] == "drop"
    bad = subprocess.run(["bash", str(RECIPE / "local/data.sh"), "--dump_nj", "0"], cwd=tmp_path,
                         env=env(PYTHON=sys.executable), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2


def lines(path: Path):
    return path.read_text().splitlines()


def segment_audio(utt: str) -> np.ndarray:
    """The samples of utterance <talk>-<start cs>-<end cs> in the tiny corpus."""
    spk, start, end = utt.rsplit("-", 2)
    talk = {re.sub(r"[^A-Za-z0-9_]", "_", t): t for t in tiny.all_talks()}[spk]  # ids: '-' -> '_'
    return tiny.talk_audio(talk)[int(start) * 160:int(end) * 160]


def test_stages_1_2_on_tiny_corpus(tmp_path, monkeypatch):
    """./run.sh --stage 1 --stop_stage 2 with the recipe's data options on a tiny extracted copy:
    every utterance becomes its own flac file with exactly the samples of its segment."""
    from espnet2.fileio.sound_scp import SoundScpReader

    recipe = copy_recipe(RECIPE, tmp_path / "repo")
    corpus = tiny.make_corpus(tmp_path / "corpus")
    # the recipe's own data options (the authors' partition), no download
    local_opts = option(run_help(recipe), "local_data_opts") + " --dump_nj 2 --mirrors file:///nowhere"
    cmd = ["./run.sh", "--stage", "1", "--stop_stage", "2", "--local_data_opts", local_opts]
    proc = subprocess.run(cmd, cwd=recipe, env=env(TEDLIUM3=str(corpus)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = recipe / "data"
    assert (data / ".validate.done").is_file()
    assert lines(data / "sa_tune.list") == sorted(tiny.SA_TALKS)[::4]
    monkeypatch.chdir(recipe)  # wav.scp paths are relative to the recipe dir, as p4q.sh runs there
    dirs = [d for d in sorted(data.iterdir()) if (d / "wav.scp").is_file()]
    assert len(dirs) == 2 + 2 * len(tiny.SA_TALKS)
    for d in dirs:
        assert not (d / "segments").exists(), d
        assert "<unk>" not in (d / "text").read_text()  # --unk drop
        reader = SoundScpReader(str(d / "wav.scp"))
        assert list(reader.keys()) == [l.split()[0] for l in lines(d / "text")]
        for utt in reader.keys():
            path = Path(reader.get_path(utt))
            assert not path.is_absolute() and path.parts[:3] == ("dump", "audio", d.name), path
            rate, wav = reader[utt]
            assert rate == 16000 and np.array_equal(np.round(wav * 32768).astype(np.int16), segment_audio(utt)), utt
    assert len(lines(data / "AmandaBurden_2014_adapt/wav.scp")) == 68
    # a re-run skips the marked stages; local/data.sh's stage 4 leaves dumped dirs alone
    again = subprocess.run(cmd, cwd=recipe, env=env(TEDLIUM3=str(corpus)), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already done" in again.stderr
    before = {p: p.stat().st_mtime_ns for p in (recipe / "dump").rglob("*.flac")}
    stage4 = subprocess.run(["bash", "local/data.sh", *shlex.split(local_opts), "--stage", "4"], cwd=recipe,
                            env=env(TEDLIUM3=str(corpus), PYTHON=sys.executable), capture_output=True, text=True,
                            timeout=300)
    assert stage4.returncode == 0, stage4.stderr
    assert stage4.stderr.count("left alone") == len(dirs)
    assert {p: p.stat().st_mtime_ns for p in (recipe / "dump").rglob("*.flac")} == before


def test_dump_audio_from_per_utterance_pipes(tmp_path):
    """local/dump_audio.py also takes the --segments false layout (one sox trim pipe an utterance)."""
    corpus = tiny.make_corpus(tmp_path / "corpus")
    common = ["--mirrors", "file:///nowhere", "--include_test", "true"]
    proc = subprocess.run(["bash", str(RECIPE / "local/data.sh"), *common, "--segments", "false",
                           "--stop_stage", "2"], cwd=tmp_path, env=env(TEDLIUM3=str(corpus), PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "data/test"
    assert "trim" in (d / "wav.scp").read_text()
    proc = subprocess.run([sys.executable, str(RECIPE / "local/dump_audio.py"), "--dump_dir", "dmp", "--nj", "1",
                           "data/test"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for line in lines(d / "wav.scp"):
        utt, path = line.split()
        wav, rate = sf.read(tmp_path / path, dtype="int16")
        assert rate == 16000 and np.array_equal(wav, segment_audio(utt)), utt
