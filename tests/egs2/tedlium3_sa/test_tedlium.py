"""egs2/tedlium3_sa/asr1/local/tedlium.py + local/sa_dirs.py on generated TED-LIUM 3 trees whose SA
talks hold exactly the segments the shipped partition indexes (no corpus, no network)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "egs2/tedlium3_sa/asr1"
CONF = RECIPE / "conf"
for p in (RECIPE / "local", REPO / "local", Path(__file__).parent):
    sys.path.insert(0, str(p))

import sa_dirs  # noqa: E402
import tedlium as ted  # noqa: E402
import tiny_tedlium as tiny  # noqa: E402

from espnet_p4q.fileio import InputError, read_id_list, read_kaldi_table  # noqa: E402

PARTITION, EXCLUDED = CONF / "sa_partition.tsv", CONF / "sa_partition_excluded.txt"


def prepare(corpus, out, rule="paper", n_adapt=0, n_dev=0, **kw):
    index = dict(partition=PARTITION, excluded=EXCLUDED) if rule == "paper" else {}
    ted.prepare(corpus, out, read_id_list(CONF / "sa_talks.txt"), **index, **kw)
    return sa_dirs.make_sa_dirs(out / ted.POOL, out, rule, PARTITION, n_adapt, n_dev, CONF / "sa_split.yaml")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return out, prepare(corpus, out, include_test=True)


def table(d: Path, name: str) -> dict:
    return read_kaldi_table(d / name)


def run_pipe(cmd: str) -> np.ndarray:
    out = subprocess.run(cmd.rstrip("|"), shell=True, capture_output=True, check=True)
    assert not out.stderr, out.stderr
    audio, sr = sf.read(io.BytesIO(out.stdout), dtype="int16")
    assert sr == 16000 and audio.ndim == 1
    return audio


def authors_ids(out: Path, d: str) -> list:
    to_corpus = table(out / ted.POOL, "utt2corpus")
    return sorted(to_corpus[u] for u in table(out / d, "text"))


def test_paper_splits_equal_the_partition(prepared):
    out, sizes = prepared
    for talk in tiny.SA_TALKS:
        for suffix, split in (("adapt", "train"), ("test", "test")):
            want = sorted(u for t, s, u in tiny.partition_rows() if t == talk and s == split)
            assert authors_ids(out, f"{talk}_{suffix}") == want, (talk, suffix)
        assert not (out / f"{talk}_dev").exists()
        assert sizes[talk] == tuple(sum(1 for t, s, _ in tiny.partition_rows() if t == talk and s == split)
                                    for split in ("train", "dev", "test"))
    assert sum(a for a, _, _ in sizes.values()) == 1033 and sum(t for _, _, t in sizes.values()) == 1031
    assert sum(d for _, d, _ in sizes.values()) == 516
    assert (out / "sa_tune.list").read_text().split() == sorted(tiny.SA_TALKS)[::4]
    assert len((out / "sa_eval.list").read_text().split()) == 12


def test_authors_index_skips_unk_gaps_and_empty_segments(prepared):
    out, _ = prepared
    to_corpus = table(out / ted.POOL, "utt2corpus")
    text = table(out / ted.POOL, "text")
    for talk in ("AmandaBurden_2014", "DavidChristian_2011"):
        for start, end, raw, k in tiny.sa_plan(talk):
            utt = ted.segment_id(ted.Segment(talk, start, end, ""))
            if k is None:
                assert utt not in to_corpus
            else:
                assert to_corpus[utt] == f"{talk}_{k}" and text[utt] == f"WE'RE AT LINE {k}"
    # the <unk> segments stay in the pool (the ordered rule may use them) but in no paper split
    planned = sum("<unk>" in raw for t in tiny.SA_TALKS for _, _, raw, _ in tiny.sa_plan(t))
    assert planned > 100 and sum("<unk>" in t for t in text.values()) == planned


def test_excluded_segments_are_in_no_split(prepared):
    out, _ = prepared
    for e in tiny.excluded_ids():
        talk = e.rsplit("_", 1)[0]
        assert e not in authors_ids(out, f"{talk}_adapt") + authors_ids(out, f"{talk}_test")
        assert e in table(out / ted.POOL, "utt2corpus").values()


def test_ambiguous_index_stops_naming_the_talks(corpus, tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(corpus, copy)
    stm = copy / "TEDLIUM_release-3/data/stm/GregLynn_2005.stm"
    lines = stm.read_text().splitlines(keepends=True)
    stm.write_text("".join(lines[:-1]))  # one indexed segment fewer
    with pytest.raises(InputError, match=r"cannot be derived unambiguously .*GregLynn_2005: 146 segments without "
                                         r"<unk> in the STM, 147 listed"):
        prepare(copy, tmp_path / "out")
    stm.write_text("".join(lines[:1] + [lines[2], lines[1]] + lines[3:]))  # two segments out of time order
    with pytest.raises(InputError, match="not in time order"):
        prepare(copy, tmp_path / "out")
    # the ordered rule needs no index
    sizes = prepare(copy, tmp_path / "out2", rule="ordered", n_adapt=30, n_dev=10)
    assert sizes["GregLynn_2005"][:2] == (30, 10)


def test_ordered_rule_is_time_order(corpus, tmp_path):
    sizes = prepare(corpus, tmp_path, rule="ordered", n_adapt=3, n_dev=1, unk="drop")
    talk = "LizColeman_2009"
    plan = [p for p in tiny.sa_plan(talk) if not p[2].startswith("ignore") and p[2] != "{BREATH} <sil>"]
    want = [ted.segment_id(ted.Segment(talk, s, e, "")) for s, e, _, _ in plan]
    assert sorted(table(tmp_path / f"{talk}_adapt", "text")) == want[:3]
    assert sorted(table(tmp_path / f"{talk}_test", "text")) == want[4:]
    assert sizes[talk] == (3, 1, len(plan) - 4)
    assert not any("<unk>" in t for t in table(tmp_path / f"{talk}_test", "text").values())


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
    assert talks == tiny.SA_TALKS == sorted({t for t, _, _ in tiny.partition_rows()})
    tune, evals = sa_dirs.read_sa_split(CONF / "sa_split.yaml", talks)
    assert tune == sorted(talks)[::4] and sorted(tune + evals) == sorted(talks)


def test_sets_hold_the_right_talks(prepared):
    out, _ = prepared
    assert set(table(out / "train", "wav.scp")) == {ted.speaker_id(t) for t in tiny.TRAIN_TALKS}
    assert set(table(out / "dev", "wav.scp")) == set(tiny.DEV_TALKS)
    assert set(table(out / "test", "wav.scp")) == set(tiny.TEST_TALKS)
    # the talk that only the speaker-adaptation/test dir holds is found there
    assert "speaker-adaptation/test/sph" in table(out / f"{tiny.ONLY_IN_SA_DIR}_test", "wav.scp")[tiny.ONLY_IN_SA_DIR]


def test_segmented_dirs_are_consistent(prepared):
    out, _ = prepared
    dirs = sorted(p for p in out.iterdir() if (p / "wav.scp").is_file())
    assert len(dirs) == 3 + 2 * 16
    for d in dirs:
        assert ted.check_segmented_dir(d) == [], d
        u2s = table(d, "utt2spk")
        for utt, rest in table(d, "segments").items():
            rec = rest.split()[0]
            assert "-" not in u2s[utt] and utt.startswith(u2s[utt] + "-") and rec == u2s[utt]
        assert sorted(table(d, "spk2utt")) == sorted(set(u2s.values()))


def test_segment_audio_matches_source(prepared):
    out, _ = prepared
    d = out / "AmandaBurden_2014_test"
    whole = run_pipe(table(d, "wav.scp")["AmandaBurden_2014"])
    assert np.array_equal(whole, tiny.talk_audio("AmandaBurden_2014"))
    for rest in table(d, "segments").values():
        rec, start, end = rest.split()
        assert rec == "AmandaBurden_2014" and 0 <= float(start) < float(end) <= len(whole) / 16000


def test_per_utterance_pipes_without_segments(corpus, tmp_path):
    prepare(corpus, tmp_path, segments=False)
    d = tmp_path / "LizColeman_2009_adapt"
    assert not (d / "segments").exists()
    wav = table(d, "wav.scp")
    assert set(wav) == set(table(d, "text"))
    src = tiny.talk_audio("LizColeman_2009")
    for utt in sorted(wav)[:3]:
        _, start, end = utt.rsplit("-", 2)
        assert np.array_equal(run_pipe(wav[utt]), src[int(start) * 160:int(end) * 160])


def test_unk_drop(corpus, tmp_path):
    prepare(corpus, tmp_path, rule="ordered", n_adapt=3, unk="drop")
    texts = table(tmp_path / "train", "text").values()
    assert texts and not any("<unk>" in t for t in texts)
    assert "IT'S TIME" in texts


def test_check_segmented_dir_finds_problems(prepared, tmp_path):
    out, _ = prepared
    d = tmp_path / "bad"
    shutil.copytree(out / "dev", d)
    lines = (d / "segments").read_text().splitlines()
    utt, rec, start, end = lines[0].split()
    lines[0] = f"{utt} NoSuchTalk {end} {start}"
    (d / "segments").write_text("\n".join(lines) + "\n")
    assert any("bad line" in p for p in ted.check_segmented_dir(d))


def test_missing_sa_talk_and_dev_are_errors(tmp_path):
    root = tmp_path / "c" / "TEDLIUM_release-3"
    tiny.write_talk(root / "data", "AlGore_2009")
    with pytest.raises(FileNotFoundError, match="SA talks not found"):
        ted.prepare(tmp_path / "c", tmp_path / "out", read_id_list(CONF / "sa_talks.txt"))
    with pytest.raises(FileNotFoundError, match="legacy/dev"):
        ted.prepare(tmp_path / "c", tmp_path / "out", ["AlGore_2009"])


def test_cli(corpus, tmp_path):
    rc = ted.main(["prepare", "--corpus", str(corpus / "TEDLIUM_release-3"), "--datadir", str(tmp_path),
                   "--sa_talks", str(CONF / "sa_talks.txt"), "--partition", str(PARTITION),
                   "--excluded", str(EXCLUDED)])
    assert rc == 0 and (tmp_path / ted.POOL / "utt2corpus").is_file()
    assert ted.main(["check", str(tmp_path / "train"), str(tmp_path / ted.POOL)]) == 0
