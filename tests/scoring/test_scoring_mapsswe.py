"""MAPSSWE: hand-traced segmentations and statistics (always run), and sc_stats itself."""

from __future__ import annotations

import math

import pytest
from scoring_helpers import HAND_HYP_A, HAND_HYP_B, HAND_REF, needs_sc_stats, random_corpus, run_sc_stats_mapsswe

from espnet_p4q.scoring.mapsswe import _z_test, format_result, mapsswe, segment_errors
from espnet_p4q.scoring.trn import TranscriptError, write_trn


@pytest.mark.parametrize("path_a, path_b, expected", [
    ("CC", "CC", []),
    ("CC", "CCI", [(0, 1)]),        # B's trailing insertion counts (sc_stats 2.4.10 does)
    ("CCI", "CC", [(1, 0)]),
    ("CCCCCC", "CCCSCC", [(0, 1)]),
    ("CCCD", "CCCCI", [(1, 1)]),
    # cut after 2 doubly-correct words; the segments overlap on their bounding correct words
    ("CDCCCCDC", "DSCICCSCCI", [(1, 3), (1, 2)]),
    ("", "", []),
    ("I", "", [(1, 0)]),            # empty reference, one system inserted a word
])
def test_segment_errors_hand_traced(path_a, path_b, expected):
    assert segment_errors(list(path_a), list(path_b)) == expected


def test_segment_errors_min_good_one():
    assert segment_errors(list("CSCC"), list("CCCC"), min_good=1) == [(1, 0)]
    assert segment_errors(list("SCS"), list("CCC"), min_good=1) == [(1, 0), (1, 0)]


def test_z_test():
    assert _z_test([]) == (0.0, 0.0, 0.0)
    assert _z_test([1, 1, 1]) == (1.0, 0.0, 0.0)  # no spread: Z = 0, as sc_stats
    mean, sd, z = _z_test([2, 0, 1])
    assert (mean, sd) == (1.0, 1.0) and math.isclose(z, math.sqrt(3))
    mean, sd, z = _z_test([-2, -1])
    assert mean == -1.5 and math.isclose(sd, math.sqrt(0.5)) and math.isclose(z, -3.0)


REF, HYP_A, HYP_B = HAND_REF, HAND_HYP_A, HAND_HYP_B


def test_mapsswe_hand_example():
    r = mapsswe(REF, HYP_A, HYP_B, "base", "p4q")
    assert (r.n_sentences, r.n_segments, r.errors_a, r.errors_b) == (3, 3, 8, 1)
    assert r.mean_diff == pytest.approx(7 / 3)
    assert r.sd == pytest.approx(math.sqrt(7 / 3))
    assert r.z == pytest.approx((7 / 3) / (math.sqrt(7 / 3) / math.sqrt(3)))
    assert r.p == pytest.approx(math.erfc(abs(r.z) / math.sqrt(2)))
    assert r.significant and r.better == "p4q"
    assert "p4q is significantly better" in format_result(r)
    same = mapsswe(REF, HYP_A, HYP_A)
    assert (same.n_segments, same.mean_diff, same.z, same.p, same.significant, same.better) == \
        (3, 0.0, 0.0, 1.0, False, None)  # segments where both err count, with difference 0
    assert "no significant difference" in format_result(same)


def test_mapsswe_rejects_bad_input():
    with pytest.raises(TranscriptError, match="different utterances"):
        mapsswe(REF, HYP_A, {u: HYP_B[u] for u in ("spk1-u1", "spk1-u2")})
    with pytest.raises(TranscriptError, match="'spk3-u1'"):
        mapsswe(REF, {"spk3-u1": []}, {"spk3-u1": []})
    with pytest.raises(ValueError, match="min_good"):
        mapsswe(REF, HYP_A, HYP_B, min_good=0)


def _check_against_sc_stats(tmp_path, ref, hyp_a, hyp_b):
    for name, t in (("ref.trn", ref), ("a.trn", hyp_a), ("b.trn", hyp_b)):
        write_trn(tmp_path / name, t)
    theirs = run_sc_stats_mapsswe(tmp_path, "ref.trn", "a.trn", "b.trn")
    r = mapsswe(ref, hyp_a, hyp_b, "sysA", "sysB")
    assert r.n_segments == theirs["n_segments"]
    assert (f"{r.mean_diff:5.3f}", f"{r.sd:5.3f}", f"{r.z:5.3f}") == \
        (theirs["mean"], theirs["sd"], theirs["z"])
    assert r.significant == theirs["significant"]
    assert theirs["winner"] == (r.better if r.significant else "~")
    # sc_stats looks p up in a table of the normal distribution and reports the conservative
    # (larger) neighbour, with 3 decimals; here p is exact
    if theirs["p_below"]:
        assert r.p < theirs["p"]
    else:
        assert theirs["p"] - 0.01 <= r.p <= theirs["p"] + 0.0005


@needs_sc_stats
def test_mapsswe_equals_sc_stats_hand_example(tmp_path):
    _check_against_sc_stats(tmp_path, REF, HYP_A, HYP_B)


@needs_sc_stats
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_mapsswe_equals_sc_stats(tmp_path, seed):
    ref, (hyp_a, hyp_b) = random_corpus(seed, n_hyps=2, max_utts=15, p_empty_ref=0.03)
    _check_against_sc_stats(tmp_path, ref, hyp_a, hyp_b)
