"""espnet_p4q.data.tedlium on a tiny generated TED-LIUM 3 tree (no corpus, no network)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_p4q.data import tedlium as ted
from espnet_p4q.data.kaldi_dir import read_table
from espnet_p4q.data.librispeech import read_id_list

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs2/tedlium3_sa/asr1/conf"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


tiny = _load("tiny_tedlium", REPO / "tests/egs2/tedlium3_sa/tiny_tedlium.py")


def prepare(corpus, out, **kw):
    talks = read_id_list(CONF / "sa_talks.txt")
    split = ted.read_sa_split(CONF / "sa_split.yaml", talks)
    kw.setdefault("n_adapt", 3)
    kw.setdefault("n_dev", 1)
    return ted.prepare(corpus, out, talks, split, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny.make_tedlium(tmp_path_factory.mktemp("ted"))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return out, prepare(corpus, out, include_test=True)


def table(d: Path, name: str) -> dict:
    return read_table(d / name)


def run_pipe(cmd: str) -> np.ndarray:
    out = subprocess.run(cmd.rstrip("|"), shell=True, capture_output=True, check=True)
    assert not out.stderr, out.stderr
    audio, sr = sf.read(io.BytesIO(out.stdout), dtype="int16")
    assert sr == 16000 and audio.ndim == 1
    return audio


def test_normalise():
    assert ted.normalise("it 's <unk> time(2)".split()) == "IT'S <unk> TIME"
    assert ted.normalise("{NOISE} we 're here <sil> [laughter]".split()) == "WE'RE HERE"
    assert ted.normalise("<unk> 's fine".split()) == "<unk> 'S FINE"  # nothing to join a clitic to
    assert ted.normalise("a <unk> b".split(), unk="drop") == "A B"
    assert ted.normalise("hello (AlGore_2009)".split()) == "HELLO"
    assert ted.normalise("{BREATH} <sil>".split()) == ""
    assert ted.normalise("<UNK> <laugh> ok".split()) == "<unk> OK"
    with pytest.raises(ValueError):
        ted.normalise(["a"], unk="maybe")


def test_parse_stm_skips_ignored_and_empty(tmp_path):
    stm = tmp_path / "T.stm"
    stm.write_text("".join(tiny.stm_lines("T")))
    segs, ignored, empty = ted.parse_stm(stm)
    assert (len(segs), ignored, empty) == (tiny.N_SCORED, 1, 1)
    assert {s.text for s in segs} == {tiny.expected_text(i) for i in range(tiny.N_SCORED)}
    stm.write_text("T 1 T 0.00 1.00 <F0_M> labelled the old way\nT 1 T 1.00 2.00 <unk> no label\n")
    assert [s.text for s in ted.parse_stm(stm)[0]] == ["LABELLED THE OLD WAY", "<unk> NO LABEL"]
    stm.write_text("T 1 T 2.00 1.00 <o,f0,male> backwards\n")
    with pytest.raises(ValueError, match="ends before"):
        ted.parse_stm(stm)


def test_ids():
    assert ted.speaker_id("Jean-Luc_2011") == "Jean_Luc_2011"
    assert ted.speaker_id("A.B C") == "A_B_C"
    seg = ted.Segment("Jean-Luc_2011", "12.345", "1000.5", "X")
    assert ted.segment_id(seg) == "Jean_Luc_2011-0001235-0100050"


def test_conf_lists_are_the_papers():
    talks = read_id_list(CONF / "sa_talks.txt")
    assert talks == tiny.SA_TALKS
    tune, evals = ted.read_sa_split(CONF / "sa_split.yaml", talks)
    assert tune == sorted(talks)[::4] and sorted(tune + evals) == sorted(talks)


def test_sets_hold_the_right_talks(prepared):
    out, counts = prepared
    assert set(table(out / "train", "wav.scp")) == {ted.speaker_id(t) for t in tiny.TRAIN_TALKS}
    assert set(table(out / "dev", "wav.scp")) == set(tiny.DEV_TALKS)
    assert set(table(out / "test", "wav.scp")) == set(tiny.TEST_TALKS)
    assert counts == {t: (3, 1, 2) for t in tiny.SA_TALKS}
    assert (out / "sa_tune.list").read_text().split() == sorted(tiny.SA_TALKS)[::4]
    assert len((out / "sa_eval.list").read_text().split()) == 12
    # the talk that only the speaker-adaptation/test dir holds is found there
    assert "speaker-adaptation/test/sph" in table(out / f"{tiny.ONLY_IN_SA_DIR}_test", "wav.scp")[tiny.ONLY_IN_SA_DIR]


def test_sa_split_is_time_order(prepared):
    out, _ = prepared
    for talk in tiny.SA_TALKS:
        ids = {s: sorted(table(out / f"{talk}_{s}", "text")) for s in ("adapt", "dev", "test")}
        want = [ted.segment_id(ted.Segment(talk, *tiny.segment_times(i), "")) for i in range(tiny.N_SCORED)]
        assert ids["adapt"] == want[:3] and ids["dev"] == want[3:4] and ids["test"] == want[4:]
        text = table(out / f"{talk}_adapt", "text")
        assert [text[u] for u in want[:3]] == [tiny.expected_text(i) for i in range(3)]


def test_segmented_dirs_are_consistent(prepared):
    out, _ = prepared
    dirs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(dirs) == 3 + 3 * 16
    for d in dirs:
        assert ted.check_segmented_dir(d) == [], d
        segs = [line.split() for line in (d / "segments").read_text().splitlines()]
        u2s = table(d, "utt2spk")
        for utt, rec, start, end in segs:
            spk = u2s[utt]
            assert "-" not in spk and utt.startswith(spk + "-") and rec == spk
        spk2utt = table(d, "spk2utt")
        assert sorted(spk2utt) == sorted(set(u2s.values()))


def test_segment_audio_matches_source(prepared, corpus):
    out, _ = prepared
    d = out / "AmandaBurden_2014_test"
    rec_cmd = table(d, "wav.scp")["AmandaBurden_2014"]
    whole = run_pipe(rec_cmd)
    src = tiny.talk_audio("AmandaBurden_2014")
    assert np.array_equal(whole, src)
    for utt, rec, start, end in (line.split() for line in (d / "segments").read_text().splitlines()):
        assert rec == "AmandaBurden_2014" and 0 <= float(start) < float(end) <= len(whole) / 16000


def test_per_utterance_pipes_without_segments(corpus, tmp_path):
    prepare(corpus, tmp_path, segments=False)
    d = tmp_path / "LizColeman_2009_adapt"
    assert not (d / "segments").exists()
    wav = table(d, "wav.scp")
    assert set(wav) == set(table(d, "text"))
    src = tiny.talk_audio("LizColeman_2009")
    for i in range(3):
        start, end = tiny.segment_times(i)
        seg = ted.Segment("LizColeman_2009", start, end, "")
        audio = run_pipe(wav[ted.segment_id(seg)])
        a, b = round(float(start) * 16000), round(float(end) * 16000)
        assert np.array_equal(audio, src[a:b])
    # a later run with n_dev 0 leaves no stale dev dir
    prepare(corpus, tmp_path, segments=False, n_dev=0)
    assert not (tmp_path / "LizColeman_2009_dev").exists()


def test_unk_drop(corpus, tmp_path):
    prepare(corpus, tmp_path, unk="drop")
    texts = table(tmp_path / "train", "text").values()
    assert texts and not any("<unk>" in t for t in texts)
    assert "IT'S TIME" in texts


def test_check_segmented_dir_finds_problems(prepared, tmp_path):
    import shutil

    out, _ = prepared
    d = tmp_path / "bad"
    shutil.copytree(out / "dev", d)
    lines = (d / "segments").read_text().splitlines()
    utt, rec, start, end = lines[0].split()
    lines[0] = f"{utt} NoSuchTalk {end} {start}"
    (d / "segments").write_text("\n".join(lines) + "\n")
    problems = ted.check_segmented_dir(d)
    assert any("bad line" in p for p in problems)


def test_missing_sa_talk_and_dev_are_errors(tmp_path):
    root = tmp_path / "c" / "TEDLIUM_release-3"
    tiny.write_talk(root / "data", "AlGore_2009")
    with pytest.raises(FileNotFoundError, match="SA talks not found"):
        prepare(tmp_path / "c", tmp_path / "out")
    talks, split = ["AlGore_2009"], (["AlGore_2009"], [])
    with pytest.raises(FileNotFoundError, match="legacy/dev"):
        ted.prepare(tmp_path / "c", tmp_path / "out", talks, split, n_adapt=3, n_dev=1)


def test_cli(corpus, tmp_path):
    rc = ted.main(["prepare", "--corpus", str(corpus / "TEDLIUM_release-3"), "--datadir", str(tmp_path),
                   "--sa_talks", str(CONF / "sa_talks.txt"), "--sa_split", str(CONF / "sa_split.yaml"),
                   "--n_adapt", "2", "--n_dev", "0"])
    assert rc == 0 and not (tmp_path / "JannaLevin_2011_dev").exists()
    assert len(table(tmp_path / "JannaLevin_2011_test", "text")) == 4
    assert ted.main(["check", str(tmp_path / "train"), str(tmp_path / "JannaLevin_2011_test")]) == 0
