"""sclite's sum report: hand-checked examples (always run) and byte equality with sclite."""

from __future__ import annotations

import math
import random

import pytest
from scoring_helpers import needs_sclite, random_corpus, run_sclite_sum

from espnet_p4q.scoring.sclite_report import (Counts, _fround, _stats, score_utterances,
                                              sum_report, total, wer_by_speaker)
from espnet_p4q.scoring.sclite_table import Row, _spread, render
from espnet_p4q.scoring.trn import TranscriptError, write_trn

HEADER = "\n\n\n" + " " * 21 + "SYSTEM SUMMARY PERCENTAGES by SPEAKER" + " " * 22 + "\n\n"

REF = {"spk1-u1": "the cat sat on the mat".split(), "spk1-u2": "hello world".split(),
       "spk2-u1": "a b c d e".split()}
HYP = {"spk1-u1": "the cat sat in mat".split(), "spk1-u2": "hello big world".split(),
       "spk2-u1": []}
# sclite -r ref.trn trn -h hyp.trn trn -i rm -o sum stdout (SCTK 2.4.10)
EXPECTED = [
    "       ,----------------------------------------------------------------.",
    "       |                            hyp.trn                             |",
    "       |----------------------------------------------------------------|",
    "       | SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |",
    "       |--------+-------------+-----------------------------------------|",
    "       | spk1   |    2      8 | 75.0   12.5   12.5   12.5   37.5  100.0 |",
    "       |--------+-------------+-----------------------------------------|",
    "       | spk2   |    1      5 |  0.0    0.0  100.0    0.0  100.0  100.0 |",
    "       |================================================================|",
    "       | Sum/Avg|    3     13 | 46.2    7.7   46.2    7.7   61.5  100.0 |",
    "       |================================================================|",
    "       |  Mean  |  1.5    6.5 | 37.5    6.3   56.3    6.3   68.8  100.0 |",
    "       |  S.D.  |  0.7    2.1 | 53.0    8.8   61.9    8.8   44.2    0.0 |",
    "       | Median |  1.5    6.5 | 37.5    6.3   56.3    6.3   68.8  100.0 |",
    "       `----------------------------------------------------------------'",
]


def test_sum_report_hand_example():
    per_spk = score_utterances(REF, HYP)
    assert per_spk["spk1"].as_dict() == {"n_snt": 2, "n_wrd": 8, "corr": 6, "sub": 1, "del": 1,
                                         "ins": 1, "err": 3, "snt_err": 2}
    assert sum_report(per_spk, "hyp.trn") == HEADER + "\n".join(EXPECTED) + "\n"


def test_sum_report_wide_title_spreads_columns():
    title = "averyveryverylongfilenamethatisreallylong_hypothesis_file_name_xx.trn"
    lines = sum_report(score_utterances(REF, HYP), title).splitlines()[5:]
    assert lines == [
        "    ,---------------------------------------------------------------------.",
        "    |averyveryverylongfilenamethatisreallylong_hypothesis_file_name_xx.trn|",
        "    |---------------------------------------------------------------------|",
        "    | SPKR    | # Snt # Wrd  | Corr    Sub     Del    Ins     Err  S.Err  |",
        "    |---------+--------------+--------------------------------------------|",
        "    | spk1    |    2      8  | 75.0   12.5    12.5   12.5    37.5  100.0  |",
        "    |---------+--------------+--------------------------------------------|",
        "    | spk2    |    1      5  |  0.0    0.0   100.0    0.0   100.0  100.0  |",
        "    |=====================================================================|",
        "    | Sum/Avg |    3     13  | 46.2    7.7    46.2    7.7    61.5  100.0  |",
        "    |=====================================================================|",
        "    |  Mean   |  1.5    6.5  | 37.5    6.3    56.3    6.3    68.8  100.0  |",
        "    |  S.D.   |  0.7    2.1  | 53.0    8.8    61.9    8.8    44.2    0.0  |",
        "    | Median  |  1.5    6.5  | 37.5    6.3    56.3    6.3    68.8  100.0  |",
        "    `---------------------------------------------------------------------'",
    ]


def test_speakers_without_reference_words():
    ref = {"s1-u1": ["a", "b"], "s2-u1": [], "s3-u1": [], "s4-u1": ["x", "y", "z"], "s5-u1": []}
    hyp = {"s1-u1": [], "s2-u1": ["q", "r"], "s3-u1": [], "s4-u1": ["x", "y"], "s5-u1": ["k"]}
    report = sum_report(score_utterances(ref, hyp), "hz.trn")
    rows = [l.strip() for l in report.splitlines() if l.strip().startswith("| ")]
    assert rows[2:] == [
        "| s1     |    1      2 |  0.0    0.0  100.0    0.0  100.0  100.0 |",
        "| s2     |    1      0 |    0*     0*     0*     2*     2* 100.0 |",
        "| s3     |    1      0 |    0*     0*     0*     0*     0*   0.0 |",
        "| s4     |    1      3 | 66.7    0.0   33.3    0.0   33.3  100.0 |",
        "| s5     |    1      0 |    0*     0*     0*     1*     1* 100.0 |",
        "| Sum/Avg|    5      5 | 40.0    0.0   60.0   60.0  120.0   80.0 |",
        # sclite's shift drops s4 instead of s3 here: Del mean 50, not 66.7
        "|  Mean  |  1.0    1.0 |  0.0+   0.0+  50.0+   0.0+  50.0+  80.0 |",
        "|  S.D.  |  0.0    1.4 |  0.0+   0.0+  70.7+   0.0+  70.7+  44.7 |",
        "| Median |  1.0    0.0 |  0.0+   0.0+  50.0+   0.0+  50.0+ 100.0 |",
    ]
    assert report.endswith("`----------------------------------------------------------------'\n"
                           "\n* No Reference words for this/these speaker(s).  Word counts "
                           "supplied\n  rather than percents.\n# No Reference words for "
                           "this/these speaker(s).  NCE not computable.\n+ Speaker(s) with no "
                           "reference data is ignored\n")


def test_rounding_and_statistics_follow_sclite():
    assert _fround(6.25, 1) == 6.3  # half up, where Python's round() gives 6.2
    assert _fround(0.05, 1) == 0.1
    assert _fround(100.0 / 3, 1) == 33.3
    assert _fround(2.0, 0) == 2.0 and _fround(0.0, 1) == 0.0
    mean, sd, median = _stats([1.0, 2.0, 4.0, 10.0])
    assert (mean, median) == (4.25, 3.0) and math.isclose(sd, 4.0311288741492746)
    assert _stats([5.0]) == (5.0, 0.0, 5.0)
    assert _stats([]) == (0.0, 0.0, 0.0)


def test_column_spread():
    assert _spread(0, 9) == [0] * 9
    assert _spread(1, 9) == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert _spread(5, 9) == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert _spread(7, 1) == [7]


def test_render_small_table():
    lines = render([Row("c", ["T"]), Row("l|c", ["ab", "1"], "-"), Row("l|c", ["c", "22"], "-")])
    assert lines == [" " * 36 + line for line in
                     (",-----.", "|  T  |", "|-----|", "|ab|1 |", "|--+--|", "|c |22|", "`-----'")]


def test_wer_and_speaker_order():
    per_spk = score_utterances(REF, {u: HYP[u] for u in ("spk2-u1", "spk1-u1", "spk1-u2")})
    assert list(per_spk) == ["spk2", "spk1"]  # first appearance in the hypotheses
    overall, by_spk = wer_by_speaker(per_spk)
    assert overall == pytest.approx(100 * 8 / 13)
    assert by_spk == {"spk2": 100.0, "spk1": 37.5}
    assert total(per_spk).err == 8
    assert wer_by_speaker({"x": Counts(n_snt=1, ins=2)}) == (None, {"x": None})


def test_speaker_names_are_case_folded_like_sclite():
    per_spk = score_utterances({"A03-1": ["a"], "a03-2": ["b"]}, {"A03-1": ["a"], "a03-2": []})
    assert list(per_spk) == ["a03"] and per_spk["a03"].n_snt == 2


def test_hypothesis_without_reference_is_rejected():
    with pytest.raises(TranscriptError, match="'spk9-u1'"):
        score_utterances(REF, {"spk9-u1": ["a"]})
    with pytest.raises(ValueError, match="no hypothesised utterances"):
        sum_report({}, "hyp.trn")


# -- cross-checks with sclite -----------------------------------------------------------------

def _check_against_sclite(tmp_path, ref, hyp, hyp_name):
    write_trn(tmp_path / "ref.trn", ref)
    write_trn(tmp_path / hyp_name, hyp)
    expected = run_sclite_sum(tmp_path, "ref.trn", hyp_name)
    assert sum_report(score_utterances(ref, hyp), hyp_name) == expected


@needs_sclite
@pytest.mark.parametrize("seed, speakers, hyp_name", [
    (0, ("s1", "spk_two", "A03"), "hyp.trn"),
    (1, ("a", "b", "c", "d", "e", "f", "g"), "score_wer/hyp.trn"),
    (2, ("speaker_with_a_rather_long_name_0001", "s2"), "hyp.trn"),
    (3, ("x",), "exp/asr_train_conformer_raw_en_bpe5000/decode_asr/test_clean/hyp.trn"),
    (4, ("m01", "f02", "m03"), "exp/asr_train_conformer/decode_asr_model_valid.acc/hyp.trn"),
    (5, ("p1", "p2", "p3", "p4"), "h" * 64 + ".trn"),
])
def test_sum_report_equals_sclite(tmp_path, seed, speakers, hyp_name):
    (tmp_path / hyp_name).parent.mkdir(parents=True, exist_ok=True)
    ref, (hyp,) = random_corpus(seed, speakers=speakers, p_empty_ref=0.05 * (seed % 2))
    _check_against_sclite(tmp_path, ref, hyp, hyp_name)


@needs_sclite
def test_sum_report_equals_sclite_with_speakers_without_reference(tmp_path):
    rng = random.Random(7)
    ref, hyp = {}, {}
    for spk, n_words in [("z1", 0), ("a", 4), ("z2", 0), ("z3", 0), ("b", 6), ("z4", 0)]:
        for u in range(3):
            ref[f"{spk}-{u}"] = [f"w{rng.randint(0, 5)}" for _ in range(n_words)]
            hyp[f"{spk}-{u}"] = [f"w{rng.randint(0, 5)}" for _ in range(rng.randint(0, 5))]
    _check_against_sclite(tmp_path, ref, hyp, "hyp.trn")


@needs_sclite
def test_sum_report_equals_sclite_for_large_counts(tmp_path):
    rng = random.Random(3)
    ref = {f"spk{u % 2}-{u}": [f"w{rng.randint(0, 50)}" for _ in range(50)] for u in range(2100)}
    hyp = dict(ref)  # identical or empty hypotheses align without a dynamic programme
    hyp["spk1-1"] = []
    ref["spk0-x"], hyp["spk0-x"] = ["a", "b", "c"], ["a", "x", "c", "d"]
    _check_against_sclite(tmp_path, ref, hyp, "hyp.trn")
