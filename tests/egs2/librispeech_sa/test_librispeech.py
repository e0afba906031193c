"""egs2/librispeech_sa/asr1/local/librispeech.py + local/sa_dirs.py on generated LibriSpeech trees
whose SA utterances are exactly the ids of the shipped partition (no corpus, no network)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "egs2/librispeech_sa/asr1"
CONF = RECIPE / "conf"
for p in (RECIPE / "local", REPO / "local", Path(__file__).parent):
    sys.path.insert(0, str(p))

import librispeech as ls  # noqa: E402
import sa_dirs  # noqa: E402
import tiny_librispeech as tiny  # noqa: E402

from espnet_p4q.data.kaldi_dir import read_data_dir  # noqa: E402
from espnet_p4q.fileio import InputError, read_id_list  # noqa: E402

PARTITION = CONF / "sa_partition.tsv"


def listed(reader: str, split: str):
    return sorted(u for r, s, u in tiny.partition_rows() if r == reader and s == split)


def make_sa_dirs(data: Path, rule="paper", n_adapt=0, n_dev=0):
    return sa_dirs.make_sa_dirs(data / ls.POOL, data, rule, PARTITION, n_adapt, n_dev, CONF / "sa_split.yaml")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    ls.prepare(corpus, data, read_id_list(CONF / "sa_speakers.txt"), test_parts=["test-clean"])
    return data, make_sa_dirs(data)


def test_ids_map_one_to_one_both_ways():
    ids = [u for _, _, u in tiny.partition_rows()]
    project = [ls.project_utt_id(u) for u in ids]
    assert len(set(project)) == len(ids) == 1580
    assert [ls.corpus_utt_id(p) for p in project] == ids
    assert ls.project_utt_id("3389-13247-0007") == "ls3389-013247_0007"
    assert ls.corpus_utt_id("ls3389-013247_0007") == "3389-13247-0007"
    assert ls.project_utt_id(ls.corpus_utt_id("ls115-121720_0000")) == "ls115-121720_0000"
    for bad in ("3389-013247-0007", "3389-1234567-0001", "ls3389-13247-0007"):
        with pytest.raises(InputError):
            ls.project_utt_id(bad)
    for bad in ("ls3389-13247_0007", "3389-013247_0007", "ls3389-0132470_0007"):
        with pytest.raises(InputError):
            ls.corpus_utt_id(bad)


def test_conf_lists_are_the_papers():
    speakers = read_id_list(CONF / "sa_speakers.txt")
    assert speakers == tiny.SA_READERS
    assert sorted({r for r, _, _ in tiny.partition_rows()}, key=int) == speakers
    tune, evals = sa_dirs.read_sa_split(CONF / "sa_split.yaml", speakers)
    assert sorted(tune + evals, key=int) == speakers and not set(tune) & set(evals)


def test_paper_splits_equal_the_partition(prepared):
    data, sizes = prepared
    for r in tiny.SA_READERS:
        spk = f"ls{r}"
        for suffix, split in (("adapt", "train"), ("test", "test")):
            got = [ls.corpus_utt_id(u.utt_id) for u in read_data_dir(data / f"{spk}_{suffix}")]
            assert sorted(got) == listed(r, split), (spk, suffix)
        assert not (data / f"{spk}_dev").exists()  # the dev split is held out, not written
        assert sizes[spk] == tuple(len(listed(r, s)) for s in ("train", "dev", "test"))
    assert sum(a for a, _, _ in sizes.values()) == 632 and sum(t for _, _, t in sizes.values()) == 632
    assert (data / "sa_tune.list").read_text() == "ls115\nls829\n"
    assert len((data / "sa_eval.list").read_text().split()) == 8
    table = (data / "local/sa_sizes.tsv").read_text().splitlines()
    assert table[0] == "speaker\tadapt\tdev\ttest" and "ls3389\t70\t35\t70" in table


def test_n_adapt_caps_the_train_split_in_id_order(prepared, tmp_path):
    data, _ = prepared
    sizes = sa_dirs.make_sa_dirs(data / ls.POOL, tmp_path, "paper", PARTITION, 5, 0, CONF / "sa_split.yaml")
    assert sizes["ls3389"] == (5, 35, 70)
    adapt = [u.utt_id for u in read_data_dir(tmp_path / "ls3389_adapt")]
    assert adapt == sorted(ls.project_utt_id(u) for u in listed("3389", "train"))[:5]
    with pytest.raises(InputError, match="fewer adaptation utterances"):
        sa_dirs.make_sa_dirs(data / ls.POOL, tmp_path, "paper", PARTITION, 59, 0, CONF / "sa_split.yaml")


def test_ordered_rule_is_reading_order(prepared, tmp_path):
    data, _ = prepared
    (tmp_path / "ls115_dev").mkdir()  # a dev dir of an earlier version is removed
    sizes = sa_dirs.make_sa_dirs(data / ls.POOL, tmp_path, "ordered", PARTITION, 30, 10, CONF / "sa_split.yaml")
    assert sizes["ls3389"] == (30, 10, 175 - 40) and not (tmp_path / "ls115_dev").exists()
    adapt = [u.utt_id for u in read_data_dir(tmp_path / "ls3389_adapt")]
    assert adapt[0] == "ls3389-013247_0000"  # chapter 13247 before 130127, unlike the authors' string order
    assert adapt == [f"ls3389-013247_{i:04d}" for i in range(30)]


def test_train_dev_test_dirs(prepared):
    data, _ = prepared
    for name, part in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test_clean", "test-clean")):
        utts = read_data_dir(data / name)
        assert len(utts) == sum(sum(ch.values()) for ch in tiny.LAYOUT[part].values())
        assert {u.spk_id for u in utts} == {f"ls{r}" for r in tiny.LAYOUT[part]}
    texts = {u.utt_id: u.text for u in read_data_dir(data / "train")}
    assert texts["ls19-000198_0001"] == tiny.text_of("19", "198", 1)
    assert not list(data.glob("ls100_*"))  # reader 100 of train-clean-360 is not an SA reader


def test_kaldi_files_sorted_and_consistent(prepared):
    data, _ = prepared
    for d in sorted(p for p in data.iterdir() if (p / "wav.scp").is_file()):
        tables = {}
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            lines = (d / name).read_text().splitlines()
            keys = [line.split()[0] for line in lines]
            assert keys == sorted(keys) and len(set(keys)) == len(keys), f"{d}/{name}"
            tables[name] = dict(line.split(" ", 1) for line in lines)
        assert tables["wav.scp"].keys() == tables["text"].keys() == tables["utt2spk"].keys()
        for utt, spk in tables["utt2spk"].items():
            assert "-" not in spk and utt.startswith(spk + "-")


def test_pipes_decode_the_right_file(prepared):
    data, _ = prepared
    for u in read_data_dir(data / "ls2368_test")[:5] + read_data_dir(data / "dev")[:2]:
        out = subprocess.run(u.wav.rstrip("|"), shell=True, capture_output=True, check=True)
        assert not out.stderr, out.stderr
        audio, sr = sf.read(io.BytesIO(out.stdout), dtype="int16")
        reader, chapter, index = ls.corpus_utt_id(u.utt_id).split("-")
        assert sr == 16000 and len(audio) == tiny.n_samples(reader, chapter, int(index))


def test_missing_ids_are_refused_in_one_line(tmp_path):
    """A corpus copy without two listed utterances: local/sa_dirs.py names both, in one line."""
    layout = {part: dict(v) for part, v in tiny.LAYOUT.items()}
    sa = {r: dict(ch) for r, ch in layout["train-clean-360"].items()}
    sa["115"]["121720"] -= 1
    sa["6553"]["86683"] -= 1
    layout["train-clean-360"] = sa
    corpus = tiny.make_corpus(tmp_path / "corpus", layout)
    data = tmp_path / "data"
    gone = [f"115-121720-{sa['115']['121720']:04d}", f"6553-86683-{sa['6553']['86683']:04d}"]
    assert all(g in [u for _, _, u in tiny.partition_rows()] for g in gone)
    run = [sys.executable, str(RECIPE / "local/librispeech.py"), "--corpus", str(corpus), "--datadir", str(data),
           "--sa_speakers", str(CONF / "sa_speakers.txt"), "--audio", "path"]
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0
    proc = subprocess.run([sys.executable, str(REPO / "local/sa_dirs.py"), "--pool", str(data / ls.POOL),
                           "--datadir", str(data), "--partition", str(PARTITION),
                           "--sa_split", str(CONF / "sa_split.yaml")], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("local/sa_dirs.py: error: 2 of 1580 ids"), proc.stderr
    assert all(g in lines[0] for g in gone) and str(PARTITION) in lines[0]
    assert not list(data.glob("ls*_adapt"))


def test_audio_commands(tmp_path):
    f = tmp_path / "a.flac"
    assert ls.audio_command(f, "sox") == f"sox {f.resolve()} -t wav - |"
    assert ls.audio_command(f, "flac") == f"flac -c -d -s {f.resolve()} |"
    assert ls.audio_command(f, "path") == str(f.resolve())
    with pytest.raises(InputError):
        ls.audio_command(tmp_path / "with space.flac")


def test_missing_flac_and_missing_reader(tmp_path):
    tiny.make_corpus(tmp_path, {"p": {"7": {"1": 2}}})
    with pytest.raises(FileNotFoundError, match="readers"):
        ls.scan_part(tmp_path / "LibriSpeech/p", ["8"])
    (tmp_path / "LibriSpeech/p/7/1/7-1-0001.flac").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        ls.scan_part(tmp_path / "LibriSpeech/p")


def test_cli_writes_the_pool_with_corpus_ids(corpus, tmp_path):
    rc = ls.main(["--corpus", str(corpus), "--datadir", str(tmp_path), "--sa_speakers", str(CONF / "sa_speakers.txt"),
                  "--audio", "path"])
    assert rc == 0
    pool = tmp_path / ls.POOL
    wav = read_data_dir(pool)[0].wav
    assert wav.endswith(".flac") and Path(wav).is_file()
    pairs = [line.split() for line in (pool / "utt2corpus").read_text().splitlines()]
    assert sorted(c for _, c in pairs) == sorted(u for _, _, u in tiny.partition_rows())
    assert all(ls.project_utt_id(c) == p for p, c in pairs)
    assert (pool / "spk2corpus").read_text().split("\n")[0] == "ls115 115"
