"""The synth_sa corpus builder: the CI-size corpus end to end, and the default plan without audio.

Needs the Debian tools the recipe needs (sox, flite, festival with the ked voice, wordnet-base);
skipped where they are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "egs2" / "synth_sa" / "asr1"
sys.path.insert(0, str(RECIPE / "local"))

from espnet_p4q.data.kaldi_dir import read_data_dir  # noqa: E402
from espnet_p4q.data.validate import check_data_dir  # noqa: E402

NEEDED = ["sox", "flite", "festival"]
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in NEEDED) or not Path("/usr/share/wordnet/data.noun").exists()
    or not Path("/usr/share/festival/voices/english/ked_diphone").exists(),
    reason="needs sox, flite, festival (ked_diphone) and wordnet-base",
)
SPK_RE = re.compile(r"^[a-z0-9_]+$")


def data_sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(RECIPE / "local" / "data.sh"), "--config",
                           str(RECIPE / "conf" / "data_ci.yaml"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def ci_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_sa_ci")
    data_sh(root, "--nj", "2", "--log", "logs/data.log")
    return root


def _dirs(data: Path):
    return sorted(p for p in data.iterdir() if (p / "wav.scp").exists())


def test_layout_and_lists(ci_corpus):
    data = ci_corpus / "data"
    tune = (data / "sa_tune.list").read_text().split()
    evals = (data / "sa_eval.list").read_text().split()
    assert len(tune) == 2 and len(evals) == 1 and not set(tune) & set(evals)
    names = {p.name for p in _dirs(data)}
    assert names == {"train", "dev"} | {f"{s}_{k}" for s in tune + evals for k in ("adapt", "test")}
    assert len(read_data_dir(data / "train")) == 4 * 12
    for s in tune + evals:
        assert len(read_data_dir(data / f"{s}_adapt")) == 4
        assert len(read_data_dir(data / f"{s}_test")) == 3
    stats = json.loads((data / "corpus_stats.json").read_text())
    assert stats["groups"]["train"]["speakers"] == 4 and stats["total"]["utterances"] == 4 * 14 + 3 * 7
    assert stats["groups"]["train"]["hours"] > 0 and stats["groups"]["train"]["vocabulary"] > 0
    log = (ci_corpus / "logs" / "data.log").read_text()
    assert "[synth] 7/7" in log and "[validate] 8 data dirs OK" in log


def test_data_dirs_valid_sorted_and_ids(ci_corpus):
    for d in _dirs(ci_corpus / "data"):
        check_data_dir(d, sample_rate=16000, audio_root=ci_corpus)  # paths relative to the recipe dir
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            keys = [line.split()[0].encode() for line in (d / name).read_text().splitlines()]
            assert keys == sorted(keys), f"{d}/{name} not in C order"
        for u in read_data_dir(d):
            assert SPK_RE.match(u.spk_id)
            assert re.fullmatch(re.escape(u.spk_id) + r"-\d{6}", u.utt_id)
            info = soundfile.info(ci_corpus / u.wav)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", u.text)


def test_sentences_disjoint(ci_corpus):
    data = ci_corpus / "data"
    train_dev = {u.text for n in ("train", "dev") for u in read_data_dir(data / n)}
    seen = set()
    for d in _dirs(data):
        if d.name in ("train", "dev"):
            continue
        texts = [u.text for u in read_data_dir(d)]
        assert not set(texts) & train_dev, d
        assert not set(texts) & seen, d  # adapt vs test, and across held-out speakers
        seen |= set(texts)
    train = [u.text for u in read_data_dir(data / "train")]
    assert len(set(train)) == len(train)


def test_same_seed_same_plan_other_seed_differs(ci_corpus, tmp_path):
    data = ci_corpus / "data"
    built = sorted((u.utt_id, u.spk_id, u.text) for d in _dirs(data) for u in read_data_dir(d))
    data_sh(tmp_path, "--plan_only", "true", "--data_dir", "same")
    plan = sorted((u, s, t) for u, s, _, t in json.loads((tmp_path / "same/local/plan.json").read_text()))
    assert plan == built
    data_sh(tmp_path, "--plan_only", "true", "--data_dir", "other", "--seed", "2")
    other = sorted((u, s, t) for u, s, _, t in json.loads((tmp_path / "other/local/plan.json").read_text()))
    assert [x[:2] for x in other] == [x[:2] for x in built] and other != built


def test_rerun_resumes_and_audio_is_deterministic(ci_corpus):
    audio = Path((ci_corpus / "data" / "local" / "audio_dir").read_text().strip())
    if not audio.is_absolute():
        audio = ci_corpus / audio
    victim = sorted(audio.glob("sa_*/*.wav"))[0]
    before = victim.read_bytes()
    victim.unlink()
    (victim.parent / ".tmp-999-leftover.wav").write_bytes(b"half")  # as a killed run leaves
    proc = data_sh(ci_corpus, "--nj", "1")
    assert "77 utterances, 1 synthesised now" in proc.stdout
    assert victim.read_bytes() == before
    assert not list(audio.glob("*/.tmp-*"))


def test_default_config_plan():
    """The main-job corpus plan (no audio): sizes, held-out design, closed vocabulary."""
    from corpus_plan import ADAPT, TEST, TRAIN, load_config, make_plan

    cfg = load_config(str(RECIPE / "conf" / "data.yaml"))
    plan = make_plan(cfg)
    held = [s for s in plan.speakers if s.role != "train"]
    assert len(held) >= 6 and {s.role for s in held} == {"tune", "eval"}
    train_voices = {s.voice for s in plan.speakers if s.role == "train"}
    box = cfg["train"]["box"]
    for s in held:
        assert s.voice in train_voices and s.variant.outside_box(box)
        s.variant.check_limits()
    for s in plan.speakers:
        if s.role == "train":
            assert not s.variant.outside_box(box)
    by = {}
    for u in plan.utts:
        by.setdefault((u.spk_id, u.split), []).append(u.text)
    for s in held:
        assert len(by[(s.spk_id, ADAPT)]) == 50 and len(by[(s.spk_id, TEST)]) == 40
    train_text = [t for (spk, split), ts in by.items() if split == TRAIN for t in ts]
    assert 2000 <= len(train_text) == len(set(train_text))
    vocab = {w for t in train_text for w in t.split()}
    others = [t for (spk, split), ts in by.items() if split != TRAIN for t in ts]
    assert len(others) == len(set(others)) and not set(others) & set(train_text)
    assert all(w in vocab for t in others for w in t.split())


def test_training_variants_stratified():
    from corpus_voices import AXES, training_variants

    box = {"speed": [0.95, 1.08], "pitch": [-300, 250], "bass": [-4, 4], "treble": [-4, 4]}
    vs = training_variants("awb", 6, box, seed=1)
    assert vs == training_variants("awb", 6, box, seed=1) != training_variants("rms", 6, box, seed=1)
    for axis in AXES:
        lo, hi = box[axis]
        vals = sorted(getattr(v, axis) for v in vs)
        strata = sorted(int((x - lo) / (hi - lo) * 6 - 1e-9) for x in vals)
        assert all(lo <= x <= hi for x in vals) and len(set(strata)) >= 5  # one per stratum (rounding)


def test_data_sh_help_and_bad_option(tmp_path):
    script = str(RECIPE / "local" / "data.sh")
    ok = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "--n_adapt_pool" in ok.stdout and "--config" in ok.stdout
    bad = subprocess.run(["bash", script, "--no_such_option", "1"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
    assert not (tmp_path / "data").exists()


def test_voice_stats_pitch_tracker():
    import numpy as np
    from voice_stats import f0_yin, frames

    t = np.arange(16000) / 16000
    for f0 in (80.0, 130.0, 210.0):
        x = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.3  # harmonic-rich, like a voice
        est = np.nanmedian(f0_yin(frames(x, 1024, 320)))
        assert abs(est - f0) / f0 < 0.03
    noise = np.random.default_rng(0).standard_normal(16000) * 0.1
    assert np.isnan(f0_yin(frames(noise, 1024, 320))).mean() > 0.8


def test_wav_paths_are_relative_to_the_recipe_holding_the_data_dir(ci_corpus):
    """Audio shared with another recipe (synth_sa_whisper lists synth_sa's downloads) must be
    found from the recipe whose data/ lists it, wherever the builder ran."""
    other = ci_corpus / "other_recipe"
    data_sh(ci_corpus, "--nj", "2", "--data_dir", "other_recipe/data")  # the audio exists: no synthesis
    scp = (other / "data" / "sa_ked_e_test" / "wav.scp").read_text().split()
    assert Path(scp[1]).is_absolute() and Path(scp[1]).is_relative_to(ci_corpus / "downloads")
    for d in _dirs(other / "data"):
        check_data_dir(d, sample_rate=16000, audio_root=other)
    own = (ci_corpus / "data" / "sa_ked_e_test" / "wav.scp").read_text().split()
    assert own[1].startswith("downloads/")  # below its own recipe: relative, the tree stays portable
