"""Word alignment of one reference/hypothesis pair, as NIST sclite aligns it.

sclite (SCTK 2.4, transcript mode) does not minimise the Levenshtein distance that jiwer does: it
minimises ``3*(deletions + insertions) + 4*substitutions`` (correct words cost 0), compares words
ignoring the case of ASCII letters only, and where costs tie it keeps, cell by cell, the diagonal
move (correct or substituted word) over an insertion, and an insertion over a deletion. The two
criteria differ in more than how errors are split: for ref ``a b c d e`` / hyp ``d e x y z``
jiwer finds 5 substitutions (Err 5) while sclite reports 2 correct, 3 deleted and 3 inserted
words (Err 6). So ``method="sclite"`` (the default) reproduces sclite, and ``method="jiwer"``
(some 30x faster, minimal error count) is there for when that does not matter.

The sclite dynamic programme is NLTK's ``edit_distance_align`` with the same cost ratio
(substitution = 4/3 of an insertion or deletion, as an exact ``Fraction`` so that ties stay ties)
and its documented tie order (diagonal, skip s1, skip s2); passing the hypothesis as s1 makes
"skip s1" an insertion, which is sclite's order. It needs an NLTK whose backtrace weighs the step
costs (3.10 and later); ``_check_nltk`` refuses older ones rather than align wrongly. NLTK
refuses utterances of more than ``nltk.metrics.distance.MAX_DISTANCE_INPUT_LEN`` (2000) words.
"""

from __future__ import annotations

from fractions import Fraction
from typing import List, NamedTuple, Optional, Sequence

import jiwer

from espnet_p4q.scoring.trn import fold_case

CORRECT, SUBSTITUTION, DELETION, INSERTION = "C", "S", "D", "I"
METHODS = ("sclite", "jiwer")

_SUB_COST = Fraction(4, 3)  # sclite's substitution weight 4 over its insertion/deletion weight 3
_nltk_align = None


class Edit(NamedTuple):
    """One aligned position: ``op`` is C, S, D or I; ``ref``/``hyp`` is None where absent."""

    op: str
    ref: Optional[str]
    hyp: Optional[str]


def _check_nltk():
    """Return NLTK's ``edit_distance_align`` after checking it honours the substitution cost."""
    global _nltk_align
    if _nltk_align is None:
        from nltk.metrics.distance import edit_distance_align as align  # slow import: lazy

        # a substitution dearer than a deletion plus an insertion must not be taken
        if align("a", "b", substitution_cost=3) == [(0, 0), (1, 1)]:
            raise RuntimeError("nltk's edit_distance_align ignores substitution_cost in its "
                               "backtrace; scoring needs nltk >= 3.10")
        _nltk_align = align
    return _nltk_align


def _sclite_ops(ref: Sequence[str], hyp: Sequence[str]) -> List[str]:
    # A common suffix is always aligned word to word: where the last words match, the diagonal
    # costs no more than a deletion or insertion, and sclite prefers it on ties. (Not so for a
    # common prefix, whose alignment depends on what follows.)
    k = 0
    while k < min(len(ref), len(hyp)) and ref[-1 - k] == hyp[-1 - k]:
        k += 1
    ref, hyp = ref[:len(ref) - k], hyp[:len(hyp) - k]
    if not ref or not hyp:
        return [DELETION] * len(ref) + [INSERTION] * len(hyp) + [CORRECT] * k
    path = _check_nltk()(list(hyp), list(ref), substitution_cost=_SUB_COST)
    ops = []
    for (i0, j0), (i1, j1) in zip(path, path[1:]):
        if i1 > i0 and j1 > j0:
            ops.append(CORRECT if hyp[i0] == ref[j0] else SUBSTITUTION)
        elif i1 > i0:
            ops.append(INSERTION)
        else:
            ops.append(DELETION)
    return ops + [CORRECT] * k


_JIWER_OPS = {"equal": CORRECT, "substitute": SUBSTITUTION, "delete": DELETION,
              "insert": INSERTION}


def _jiwer_ops(ref: Sequence[str], hyp: Sequence[str]) -> List[str]:
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    ops = []
    for chunk in out.alignments[0]:
        n = max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)
        ops.extend(_JIWER_OPS[chunk.type] * n)
    return ops


def align(ref: Sequence[str], hyp: Sequence[str], method: str = "sclite") -> List[Edit]:
    """Align two word sequences; words compare as sclite compares them (ASCII case folded)."""
    if method not in METHODS:
        raise ValueError(f"unknown alignment method '{method}', expected one of {METHODS}")
    r = [fold_case(w) for w in ref]
    h = [fold_case(w) for w in hyp]
    if r == h:
        ops = [CORRECT] * len(r)
    elif not r or not h:
        ops = [DELETION] * len(r) + [INSERTION] * len(h)
    else:
        ops = (_sclite_ops if method == "sclite" else _jiwer_ops)(r, h)
    edits, i, j = [], 0, 0
    for op in ops:
        rw = ref[i] if op != INSERTION else None
        hw = hyp[j] if op != DELETION else None
        i += op != INSERTION
        j += op != DELETION
        edits.append(Edit(op, rw, hw))
    assert i == len(ref) and j == len(hyp), "alignment does not cover both sequences"
    return edits
