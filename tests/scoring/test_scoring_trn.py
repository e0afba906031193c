"""Kaldi text -> trn conversion, reading trn back, and rejection of bad input."""

from __future__ import annotations

import pytest

from espnet_p4q.scoring.trn import (TranscriptError, format_trn_line, kaldi_text_to_trn,
                                    read_kaldi_text, read_trn, speaker_of, write_trn)


def test_trn_round_trip(tmp_path):
    text = tmp_path / "text"
    text.write_text("spk1-utt1 HELLO  WORLD\n"
                    "spk2-a-b\tÉCOLE (laughter) it's\n"
                    "\n"
                    "spk1-utt2\n", encoding="utf-8")
    trn = tmp_path / "out" / "ref.trn"
    written = kaldi_text_to_trn(text, trn)
    assert written == {"spk1-utt1": ["HELLO", "WORLD"],
                       "spk2-a-b": ["ÉCOLE", "(laughter)", "it's"], "spk1-utt2": []}
    assert trn.read_text(encoding="utf-8") == ("HELLO WORLD (spk1-utt1)\n"
                                               "ÉCOLE (laughter) it's (spk2-a-b)\n"
                                               "(spk1-utt2)\n")
    assert read_trn(trn) == written
    assert list(read_trn(trn)) == ["spk1-utt1", "spk2-a-b", "spk1-utt2"]  # order kept


def test_write_trn_is_atomic_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "hyp.trn"
    write_trn(out, {"a-1": ["x"]})
    write_trn(out, {"a-1": ["y"], "b-2": []})
    assert out.read_text() == "y (a-1)\n(b-2)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hyp.trn"]


def test_format_and_speaker():
    assert format_trn_line("s-1", ["A", "B"]) == "A B (s-1)"
    assert format_trn_line("s-1", []) == "(s-1)"
    assert speaker_of("spk_7-2024-01") == "spk_7"


def test_hyp_may_be_empty_and_must_be_in_ref(tmp_path):
    ref = tmp_path / "ref"
    ref.write_text("s-1 A B\ns-2 C\n")
    hyp = tmp_path / "hyp"
    hyp.write_text("s-1\ns-3 C\n")
    with pytest.raises(TranscriptError, match=r"hyp:2: .*'s-3'.*reference"):
        read_kaldi_text(hyp, ref_ids=read_kaldi_text(ref))
    hyp.write_text("s-1\n")
    assert read_kaldi_text(hyp, ref_ids=read_kaldi_text(ref)) == {"s-1": []}


@pytest.mark.parametrize("line, message", [
    ("spk1utt1 A B\n", r"text:2: utterance id 'spk1utt1' is not '<speaker>-<rest>'"),
    ("-utt1 A\n", r"text:2: utterance id '-utt1'"),
    ("s-1 A\n", r"text:2: duplicate utterance id 's-1'"),
    ("s(1)-2 A\n", r"text:2: .*parenthesis"),
    ("S-1 A\n", r"text:2: duplicate utterance id 'S-1' \(sclite ignores the case of ids: same "
                r"as 's-1'\)"),
])
def test_bad_kaldi_text(tmp_path, line, message):
    text = tmp_path / "text"
    text.write_text("s-1 A\n" + line)
    with pytest.raises(TranscriptError, match=message):
        read_kaldi_text(text)


def test_bad_trn(tmp_path):
    trn = tmp_path / "x.trn"
    trn.write_text("A B (s-1)\nC D\n")
    with pytest.raises(TranscriptError, match=r"x.trn:2: no '\(uttid\)'"):
        read_trn(trn)
    trn.write_text("A (s1)\n")
    with pytest.raises(TranscriptError, match=r"x.trn:1: utterance id 's1'"):
        read_trn(trn)
    with pytest.raises(TranscriptError, match="'nodash'"):
        write_trn(tmp_path / "y.trn", {"nodash": ["A"]})
