"""espnet_p4q.data.librispeech on a tiny generated LibriSpeech tree (no corpus, no network)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from espnet_p4q.data import librispeech as ls
from espnet_p4q.data.kaldi_dir import read_data_dir

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs2/librispeech_sa/asr1/conf"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


tiny = _load("tiny_librispeech", REPO / "tests/egs2/librispeech_sa/tiny_librispeech.py")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny.make_librispeech(tmp_path_factory.mktemp("ls"))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    speakers = ls.read_id_list(CONF / "sa_speakers.txt")
    counts = ls.prepare(corpus, data, speakers, ls.read_sa_split(CONF / "sa_split.yaml", speakers),
                        n_adapt=3, n_dev=1, test_parts=["test-clean"])
    return data, counts


def test_split_in_order_rule():
    assert ls.split_in_order(list(range(7)), 3, 1) == ([0, 1, 2], [3], [4, 5, 6])
    assert ls.split_in_order(list(range(5)), 4, 0) == ([0, 1, 2, 3], [], [4])
    with pytest.raises(ValueError, match="no test set"):
        ls.split_in_order(list(range(4)), 3, 1)
    with pytest.raises(ValueError):
        ls.split_in_order(list(range(9)), 0, 1)


def test_conf_lists_are_the_papers():
    speakers = ls.read_id_list(CONF / "sa_speakers.txt")
    assert speakers == ["115", "210", "479", "492", "525", "829", "2368", "3389", "3615", "6553"]
    tune, evals = ls.read_sa_split(CONF / "sa_split.yaml", speakers)
    assert sorted(tune + evals, key=int) == speakers and not set(tune) & set(evals)


def test_read_sa_split_rejects_bad_partitions(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("tune: [1]\neval: [1, 2]\n")
    with pytest.raises(ValueError, match="both"):
        ls.read_sa_split(y, ["1", "2"])
    y.write_text("tune: [1]\neval: [3]\n")
    with pytest.raises(ValueError, match="missing"):
        ls.read_sa_split(y, ["1", "2"])


def test_utterance_ids_sort_in_reading_order(corpus):
    utts = ls.scan_part(corpus / "LibriSpeech/train-clean-360", ["115"])
    ids = [ls.to_utterance(u).utt_id for u in sorted(utts, key=lambda u: u.order)]
    assert ids == sorted(ids)  # zero-padded chapters: id order is reading order
    assert ids[0] == "ls115-000099_0000" and ids[-1] == "ls115-000100_0003"


def test_audio_commands(tmp_path):
    f = tmp_path / "a.flac"
    assert ls.audio_command(f, "sox") == f"sox {f.resolve()} -t wav - |"
    assert ls.audio_command(f, "flac") == f"flac -c -d -s {f.resolve()} |"
    assert ls.audio_command(f, "path") == str(f.resolve())
    with pytest.raises(ValueError):
        ls.audio_command(tmp_path / "with space.flac")


def test_train_dev_test_dirs(prepared):
    data, _ = prepared
    for name, part in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test_clean", "test-clean")):
        utts = read_data_dir(data / name)
        n = sum(sum(ch.values()) for ch in tiny.LAYOUT[part].values())
        assert len(utts) == n
        assert {u.spk_id for u in utts} == {f"ls{r}" for r in tiny.LAYOUT[part]}
    texts = {u.utt_id: u.text for u in read_data_dir(data / "train")}
    assert texts["ls19-000198_0001"] == tiny.text_of("19", "198", 1)


def test_sa_dirs_follow_the_rule(prepared):
    data, counts = prepared
    assert counts == {f"ls{r}": (3, 1, 3) for r in tiny.SA_READERS}
    for r in tiny.SA_READERS:
        spk = f"ls{r}"
        sets = {s: [u.utt_id for u in read_data_dir(data / f"{spk}_{s}")] for s in ("adapt", "dev", "test")}
        assert sets["adapt"] == [f"{spk}-000099_{i:04d}" for i in range(3)]  # chapter 99 before 100
        assert sets["dev"] == [f"{spk}-000100_0000"]
        assert sets["test"] == [f"{spk}-000100_{i:04d}" for i in range(1, 4)]
    assert not list(data.glob("ls100_*"))  # reader 100 of train-clean-360 is not an SA reader
    assert (data / "sa_tune.list").read_text() == "ls115\nls829\n"
    assert len((data / "sa_eval.list").read_text().split()) == 8


def test_kaldi_files_sorted_and_consistent(prepared):
    data, _ = prepared
    for d in sorted(p for p in data.iterdir() if p.is_dir()):
        tables = {}
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            lines = (d / name).read_text().splitlines()
            keys = [line.split()[0] for line in lines]
            assert keys == sorted(keys) and len(set(keys)) == len(keys), f"{d}/{name}"
            tables[name] = dict(line.split(" ", 1) for line in lines)
        assert tables["wav.scp"].keys() == tables["text"].keys() == tables["utt2spk"].keys()
        for utt, spk in tables["utt2spk"].items():
            assert "-" not in spk and utt.startswith(spk + "-")
        for spk, utts in tables["spk2utt"].items():
            assert all(tables["utt2spk"][u] == spk for u in utts.split())


def test_pipes_decode_the_right_file(prepared, corpus):
    data, _ = prepared
    for u in read_data_dir(data / "ls2368_test") + read_data_dir(data / "dev")[:2]:
        out = subprocess.run(u.wav.rstrip("|"), shell=True, capture_output=True, check=True)
        assert not out.stderr, out.stderr
        audio, sr = sf.read(io.BytesIO(out.stdout), dtype="int16")
        reader = u.spk_id[2:]
        chapter, index = u.utt_id.split("-")[1].split("_")
        assert sr == 16000 and audio.ndim == 1
        assert len(audio) == tiny.n_samples(reader, str(int(chapter)), int(index))


def test_n_dev_zero_removes_stale_dev_dirs(corpus, tmp_path):
    speakers = ls.read_id_list(CONF / "sa_speakers.txt")
    split = ls.read_sa_split(CONF / "sa_split.yaml", speakers)
    ls.prepare(corpus, tmp_path, speakers, split, n_adapt=3, n_dev=1)
    assert (tmp_path / "ls115_dev").is_dir()
    counts = ls.prepare(corpus, tmp_path, speakers, split, n_adapt=2, n_dev=0)
    assert counts["ls115"] == (2, 0, 5) and not (tmp_path / "ls115_dev").exists()


def test_too_few_utterances_is_an_error(corpus, tmp_path):
    speakers = ls.read_id_list(CONF / "sa_speakers.txt")
    split = ls.read_sa_split(CONF / "sa_split.yaml", speakers)
    with pytest.raises(ValueError, match="SA speaker 115"):
        ls.prepare(corpus, tmp_path, speakers, split, n_adapt=30)


def test_missing_flac_and_missing_reader(tmp_path):
    layout = {"p": {"7": {"1": 2}}}
    tiny.make_librispeech(tmp_path, layout)
    with pytest.raises(FileNotFoundError, match="readers"):
        ls.scan_part(tmp_path / "LibriSpeech/p", ["8"])
    (tmp_path / "LibriSpeech/p/7/1/7-1-0001.flac").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        ls.scan_part(tmp_path / "LibriSpeech/p")


def test_cli_main(corpus, tmp_path):
    rc = ls.main(["--corpus", str(corpus), "--datadir", str(tmp_path), "--sa_speakers", str(CONF / "sa_speakers.txt"),
                  "--sa_split", str(CONF / "sa_split.yaml"), "--n_adapt", "4", "--n_dev", "0", "--audio", "path"])
    assert rc == 0
    wav = read_data_dir(tmp_path / "ls115_adapt")[0].wav
    assert wav.endswith(".flac") and Path(wav).is_file()
