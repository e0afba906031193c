"""Word alignment: hand-worked cases (sclite's weights and tie order) and sclite itself."""

from __future__ import annotations

import jiwer
import pytest
from scoring_helpers import needs_sclite, random_corpus, run_sclite_pralign_ops

from espnet_p4q.scoring.align import Edit, align
from espnet_p4q.scoring.trn import fold_case, write_trn


def ops(ref: str, hyp: str, method: str = "sclite") -> str:
    return "".join(e.op for e in align(ref.split(), hyp.split(), method))


@pytest.mark.parametrize("ref, hyp, expected", [
    ("a b c", "a b c", "CCC"),
    ("a b c", "", "DDD"),
    ("", "x y", "II"),
    ("", "", ""),
    ("a b c d e", "d e x y z", "DDDCCIII"),  # 3*(3+3) = 18 < 5 substitutions * 4 = 20
    ("a b", "b c", "DCI"),                   # 3 + 3 < 4 + 4
    ("a b c", "c x y", "SSS"),              # tie 12 = 12: the diagonal wins
    ("a b", "b a", "DCI"),                   # tie deletion/insertion: insertion kept last
    ("a b c d", "b c d a", "DCCCI"),
    ("the cat sat on the mat", "the cat sat in mat", "CCCDSC"),
])
def test_sclite_alignment_hand_cases(ref, hyp, expected):
    assert ops(ref, hyp) == expected


def test_jiwer_method_is_plain_levenshtein():
    assert ops("a b c d e", "d e x y z", "jiwer") == "SSSSS"
    out = jiwer.process_words("a b c d e f", "a x c e f g")
    got = ops("a b c d e f", "a x c e f g", "jiwer")
    assert (got.count("C"), got.count("S"), got.count("D"), got.count("I")) == \
        (out.hits, out.substitutions, out.deletions, out.insertions)


def test_ascii_case_folding_only():
    assert fold_case("HeLLo École") == "hello École"
    assert ops("Hello École", "hello école") == "CS"  # sclite leaves non-ASCII case alone


def test_edits_keep_original_words():
    assert align(["A", "b"], ["a", "c", "d"]) == [
        Edit("C", "A", "a"), Edit("I", None, "c"), Edit("S", "b", "d")]


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown alignment method"):
        align(["a"], ["b"], "kaldi")


@needs_sclite
@pytest.mark.parametrize("seed", [1, 2])
def test_alignment_equals_sclite(tmp_path, seed):
    ref, (hyp,) = random_corpus(seed, max_utts=40, max_len=10, p_empty_ref=0.05)
    write_trn(tmp_path / "ref.trn", ref)
    write_trn(tmp_path / "hyp.trn", hyp)
    theirs = run_sclite_pralign_ops(tmp_path, "ref.trn", "hyp.trn")
    mine = {fold_case(u): [e.op for e in align(ref[u], hyp[u])] for u in hyp}  # ids lower-cased
    assert mine == theirs
