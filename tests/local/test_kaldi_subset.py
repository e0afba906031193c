"""local/kaldi_subset.py: dirs with and without segments, subsets, wav.scp paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "local"))

from kaldi_subset import read_dir, subset_dir, wav_path  # noqa: E402

from espnet_p4q.data.kaldi_dir import Utterance  # noqa: E402
from espnet_p4q.data.kaldi_dir import write_data_dir as write_dir  # noqa: E402
from espnet_p4q.fileio import InputError  # noqa: E402

UTTS = [Utterance(f"r{r}-{i}", f"r{r}", "", f"WORDS {r} {i}") for r in (1, 2) for i in (3, 1, 2)]
CUTS = {u.utt_id: (u.spk_id, f"{u.utt_id[-1]}.0", f"{u.utt_id[-1]}.5") for u in UTTS}
RECS = {"r1": "sox /a/r1.sph -t wav - |", "r2": "sox /a/r2.sph -t wav - |"}


def test_segmented_dir_round_trip_and_subset(tmp_path):
    src = write_dir(tmp_path / "src", UTTS, CUTS, RECS)
    assert (src / "wav.scp").read_text() == "r1 sox /a/r1.sph -t wav - |\nr2 sox /a/r2.sph -t wav - |\n"
    assert (src / "segments").read_text().splitlines()[0] == "r1-1 r1 1.0 1.5"
    utts, segments, wav = read_dir(src)
    assert sorted(utts) == sorted(u.utt_id for u in UTTS) and segments == CUTS and wav == RECS
    sub = subset_dir(src, tmp_path / "sub", ["r2-3", "r2-1"])
    assert (sub / "segments").read_text() == "r2-1 r2 1.0 1.5\nr2-3 r2 3.0 3.5\n"
    assert (sub / "wav.scp").read_text() == "r2 sox /a/r2.sph -t wav - |\n"  # only recordings in use
    assert (sub / "spk2utt").read_text() == "r2 r2-1 r2-3\n"
    assert not list(tmp_path.glob(".*"))  # no temporary dir left behind


def test_plain_subset_and_errors(tmp_path):
    plain = [Utterance(u.utt_id, u.spk_id, f"/a/{u.utt_id}.wav", u.text) for u in UTTS]
    src = write_dir(tmp_path / "src", plain)
    sub = subset_dir(src, tmp_path / "sub", ["r1-2"])
    assert (sub / "wav.scp").read_text() == "r1-2 /a/r1-2.wav\n" and not (sub / "segments").exists()
    with pytest.raises(InputError, match="not in this dir: nope"):
        subset_dir(src, tmp_path / "sub", ["r1-2", "nope"])
    assert (sub / "wav.scp").read_text() == "r1-2 /a/r1-2.wav\n"  # the earlier dir is untouched


def test_wav_path(tmp_path):
    assert wav_path(tmp_path / "x.flac") == str((tmp_path / "x.flac").resolve())
    with pytest.raises(InputError, match="whitespace"):
        wav_path(tmp_path / "a b.flac")
