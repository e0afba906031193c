"""Matched Pairs Sentence-Segment Word Error (MAPSSWE) test, as ``sc_stats -t mapsswe`` runs it.

Both systems are aligned to the same reference (sclite's alignment). Each utterance is walked
along its reference words; wherever at least ``min_good`` (2) consecutive reference words are
correct in both systems the utterance is cut, and each stretch between cuts holding an error is a
segment. The statistic is the per-segment difference of error counts (A minus B, insertions
counted), Z = mean / (sd / sqrt(n)) with the sample standard deviation, two-tailed under the
normal distribution. Details kept from SCTK so that the numbers agree with ``sc_stats``:

* a segment spans from the ``min_good - 1`` words before the last doubly-correct word preceding
  its first error to its closing correct words, so its errors are all the path entries between;
* a segment with no error left for either system is dropped;
* with no spread in the differences (all equal, or one segment) Z is 0, not infinite.

``p`` is the exact two-tailed 2 * (1 - Phi(|Z|)); sc_stats prints a p looked up in a table of the
normal distribution, rounded up to the table's next entry (larger by up to ~0.005). It calls a
difference significant when ``|Z| > 1.960``; here that is ``p < alpha``, which differs only for
1.95996 < |Z| <= 1.960. sc_stats crashes when no segment is found; here that gives Z = 0, p = 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_p4q.scoring.align import CORRECT, INSERTION, align
from espnet_p4q.scoring.trn import Transcripts, TranscriptError, speaker_of


@dataclass(frozen=True)
class MapssweResult:
    """Outcome of one MAPSSWE comparison; ``mean_diff`` is errors of A minus errors of B."""

    name_a: str
    name_b: str
    n_sentences: int
    n_segments: int
    errors_a: int
    errors_b: int
    mean_diff: float
    sd: float
    z: float
    p: float
    alpha: float
    significant: bool
    better: Optional[str]
    """Name of the system with fewer segment errors (None on a tie); see ``significant``."""

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def segment_errors(path_a: Sequence[str], path_b: Sequence[str],
                   min_good: int = 2) -> List[Tuple[int, int]]:
    """(errors of A, errors of B) per segment of one utterance, from C/S/D/I alignment paths."""
    n_a, n_b = len(path_a), len(path_b)
    segments: List[Tuple[int, int]] = []

    def cut(beg_a: int, beg_b: int, end_a: int, end_b: int) -> None:
        err_a = sum(op != CORRECT for op in path_a[max(beg_a, 0):end_a + 1])
        err_b = sum(op != CORRECT for op in path_b[max(beg_b, 0):end_b + 1])
        if err_a or err_b:
            segments.append((err_a, err_b))

    i_a = i_b = last_a = last_b = good = 0
    state = "start"  # no error yet since the last cut; "error": in one; "good": leaving one
    while i_a < n_a or i_b < n_b:
        while i_a < n_a and path_a[i_a] == INSERTION:
            i_a, state = i_a + 1, "error"
        while i_b < n_b and path_b[i_b] == INSERTION:
            i_b, state = i_b + 1, "error"
        both = i_a < n_a and path_a[i_a] == CORRECT and i_b < n_b and path_b[i_b] == CORRECT
        if state == "start":
            if both:
                last_a, last_b = i_a, i_b
            else:
                state = "error"
        elif both:
            good = 1 if state == "error" else good + 1
            state = "good"
            if good == min_good:
                cut(last_a - (min_good - 1), last_b - (min_good - 1), i_a, i_b)
                last_a, last_b, state = i_a, i_b, "start"
        else:
            state = "error"
        i_a += i_a < n_a
        i_b += i_b < n_b
    if state != "start":
        cut(last_a - (min_good - 1), last_b - (min_good - 1), i_a - 1, i_b - 1)
    return segments


def _z_test(diffs: Sequence[int]) -> Tuple[float, float, float]:
    """Mean, sample sd and Z of the differences, as SCTK computes them (Z = 0 without spread)."""
    n = len(diffs)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = float(sum(diffs)) / n
    acc = 0.0
    for d in diffs:
        acc += (d - mean) * (d - mean)
    if acc == 0.0:
        return mean, 0.0, 0.0
    sd = math.sqrt(acc / (n - 1))
    return mean, sd, mean / (sd / math.sqrt(n))


def _paired_utterances(hyp_a: Transcripts, hyp_b: Transcripts) -> List[str]:
    """Utterance ids in sc_stats' order: by speaker (first seen in A), then as listed in A."""
    if set(hyp_a) != set(hyp_b):
        only_a = sorted(set(hyp_a) - set(hyp_b))
        only_b = sorted(set(hyp_b) - set(hyp_a))
        raise TranscriptError(f"the systems decoded different utterances: {len(only_a)} only in "
                              f"A (e.g. {only_a[:3]}), {len(only_b)} only in B (e.g. {only_b[:3]})")
    by_speaker: Dict[str, List[str]] = {}
    for utt in hyp_a:
        by_speaker.setdefault(speaker_of(utt), []).append(utt)
    return [u for utts in by_speaker.values() for u in utts]


def mapsswe(ref: Transcripts, hyp_a: Transcripts, hyp_b: Transcripts, name_a: str = "A",
            name_b: str = "B", min_good: int = 2, alpha: float = 0.05,
            method: str = "sclite") -> MapssweResult:
    """Run the MAPSSWE test of system A against system B on the same reference."""
    if min_good < 1:
        raise ValueError("min_good must be at least 1")
    segments: List[Tuple[int, int]] = []
    utts = _paired_utterances(hyp_a, hyp_b)
    for utt in utts:
        if utt not in ref:
            raise TranscriptError(f"hypothesis for '{utt}', which the reference does not have")
        path_a = [e.op for e in align(ref[utt], hyp_a[utt], method)]
        path_b = [e.op for e in align(ref[utt], hyp_b[utt], method)]
        segments += segment_errors(path_a, path_b, min_good)
    mean, sd, z = _z_test([a - b for a, b in segments])
    p = math.erfc(abs(z) / math.sqrt(2.0))
    better = None if mean == 0 else (name_a if mean < 0 else name_b)
    return MapssweResult(name_a=name_a, name_b=name_b, n_sentences=len(utts),
                         n_segments=len(segments), errors_a=sum(a for a, _ in segments),
                         errors_b=sum(b for _, b in segments), mean_diff=mean, sd=sd, z=z, p=p,
                         alpha=alpha, significant=p < alpha, better=better)


def format_result(r: MapssweResult) -> str:
    """A short human-readable report of one comparison."""
    verdict = (f"{r.better} is significantly better (p < {r.alpha:g})" if r.significant
               else f"no significant difference at p < {r.alpha:g}")
    return (f"MAPSSWE test: {r.name_a} vs {r.name_b}\n"
            f"  sentences {r.n_sentences}, segments {r.n_segments}\n"
            f"  errors in segments: {r.name_a} {r.errors_a}, {r.name_b} {r.errors_b}\n"
            f"  mean difference ({r.name_a} - {r.name_b}) {r.mean_diff:.3f}, sd {r.sd:.3f}\n"
            f"  Z {r.z:.3f}, p {r.p:.4g}: {verdict}\n")
