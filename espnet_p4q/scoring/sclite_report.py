"""Per-speaker word error counts and sclite's ``sum`` report (ESPnet's ``score_wer/result.txt``).

``sum_report`` reproduces, character for character, what
``sclite -r ref.trn trn -h hyp.trn trn -i rm -o sum stdout`` prints (SCTK 2.4 / sclite 2.10):
speakers in order of first appearance in the hypothesis file, only hypothesised utterances scored
(sclite ignores reference utterances without a hypothesis), percentages of the reference words
rounded half up to one decimal, sample (n-1) standard deviations, the medians and means sclite
prints, and its handling of speakers without reference words (raw counts marked ``*``; the
``Mean``/``S.D.``/``Median`` of the word columns marked ``+`` and, as sclite does, computed after
a shift that drops the wrong speakers' data when more than one such speaker exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from espnet_p4q.scoring.align import CORRECT, DELETION, INSERTION, SUBSTITUTION, Edit, align
from espnet_p4q.scoring.sclite_table import PAGE_WIDTH, Row, center, render
from espnet_p4q.scoring.trn import Transcripts, TranscriptError, speaker_of

TITLE = "SYSTEM SUMMARY PERCENTAGES by SPEAKER"
HEADER = (" SPKR", " # Snt", "# Wrd", "Corr", " Sub", " Del", " Ins", " Err", "S.Err")
NO_REF_NOTE = ("\n* No Reference words for this/these speaker(s).  Word counts supplied\n"
               "  rather than percents.\n"
               "# No Reference words for this/these speaker(s).  NCE not computable.\n"
               "+ Speaker(s) with no reference data is ignored\n")


@dataclass
class Counts:
    """Word and sentence error counts of a set of utterances."""

    n_snt: int = 0
    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    snt_err: int = 0

    @property
    def n_wrd(self) -> int:
        return self.corr + self.sub + self.dele

    @property
    def err(self) -> int:
        return self.sub + self.dele + self.ins

    def add(self, edits: Iterable[Edit]) -> None:
        """Count one aligned utterance."""
        ops = [e.op for e in edits]
        self.n_snt += 1
        self.corr += ops.count(CORRECT)
        self.sub += ops.count(SUBSTITUTION)
        self.dele += ops.count(DELETION)
        self.ins += ops.count(INSERTION)
        self.snt_err += any(op != CORRECT for op in ops)

    def merge(self, other: "Counts") -> None:
        for f in ("n_snt", "corr", "sub", "dele", "ins", "snt_err"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def as_dict(self) -> Dict[str, int]:
        return {"n_snt": self.n_snt, "n_wrd": self.n_wrd, "corr": self.corr, "sub": self.sub,
                "del": self.dele, "ins": self.ins, "err": self.err, "snt_err": self.snt_err}


def missing_hypotheses(ref: Transcripts, hyp: Transcripts) -> List[str]:
    """Reference utterance ids without a hypothesis (sclite leaves them out of the scores)."""
    return [u for u in ref if u not in hyp]


def score_utterances(ref: Transcripts, hyp: Transcripts,
                     method: str = "sclite") -> Dict[str, Counts]:
    """Counts per speaker, speakers in order of first appearance in ``hyp``."""
    per_speaker: Dict[str, Counts] = {}
    for utt, words in hyp.items():
        if utt not in ref:
            raise TranscriptError(f"hypothesis for '{utt}', which the reference does not have")
        per_speaker.setdefault(speaker_of(utt), Counts()).add(align(ref[utt], words, method))
    return per_speaker


def total(per_speaker: Dict[str, Counts]) -> Counts:
    out = Counts()
    for c in per_speaker.values():
        out.merge(c)
    return out


def _wer(c: Counts) -> Optional[float]:
    return 100.0 * c.err / c.n_wrd if c.n_wrd else None


def wer_by_speaker(
        per_speaker: Dict[str, Counts]) -> Tuple[Optional[float], Dict[str, Optional[float]]]:
    """Overall WER and WER per speaker, in percent, unrounded; None where there are no ref words."""
    return _wer(total(per_speaker)), {s: _wer(c) for s, c in per_speaker.items()}


# -- numbers as sclite computes and prints them ------------------------------------------------

def _pct(num: float, den: float) -> float:
    return 0.0 if den == 0 else num / den * 100.0


def _fround(x: float, digits: int) -> float:
    """sclite's F_ROUND: half away from zero, truncating after adding 0.5."""
    scale = 10.0 ** digits
    return math.trunc(x * scale + (0.5 if x > 0.0 else -0.5)) / scale


def _stats(values: Sequence[float]) -> Tuple[float, float, float]:
    """Mean, sample standard deviation (0 when all values agree) and median, summed in order."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    acc = 0.0
    for v in values:
        acc += v
    mean = acc / n
    s = sorted(values)
    median = s[n // 2] if n % 2 else (s[n // 2] + s[n // 2 - 1]) / 2
    acc = 0.0
    for v in values:
        acc += (v - mean) * (v - mean)
    sd = math.sqrt(acc / (n - 1)) if acc != 0.0 else 0.0
    return mean, sd, median


def _p(x: float) -> str:
    return f"{_fround(x, 1):5.1f} "


def _word_columns(c: Counts) -> List[float]:
    """Corr, Sub, Del, Ins, Err as percentages of the reference words (raw counts if none)."""
    raw = [c.corr, c.sub, c.dele, c.ins, c.err]
    return [float(v) for v in raw] if c.n_wrd == 0 else [_pct(v, c.n_wrd) for v in raw]


SUM_AVG_FIELDS = ("Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")


def sum_avg(t: Counts) -> Dict[str, float]:
    """The numbers of result.txt's Sum/Avg row, rounded as sclite prints them."""
    pcts = [_fround(_pct(v, t.n_wrd), 1) for v in (t.corr, t.sub, t.dele, t.ins, t.err)]
    return dict(zip(SUM_AVG_FIELDS, [t.n_snt, t.n_wrd, *pcts, _fround(_pct(t.snt_err, t.n_snt), 1)]))


def counts_from_dict(d: Dict[str, int]) -> Counts:
    """The inverse of :meth:`Counts.as_dict` (wer.json's "counts")."""
    return Counts(n_snt=d["n_snt"], corr=d["corr"], sub=d["sub"], dele=d["del"], ins=d["ins"],
                  snt_err=d["snt_err"])


def _rows(per_speaker: Dict[str, Counts], title: str) -> List[Row]:
    fmt, stat_fmt = "l|cc|cccccc", "c|cc|cccccc"
    rows = [Row("c", [title]), Row(fmt, HEADER, "-")]
    word_cols, snt_err_pct = [], []
    for spk, c in per_speaker.items():
        cols = _word_columns(c)
        word_cols.append(cols)
        snt_err_pct.append(_pct(c.snt_err, c.n_snt))
        shown = [_p(v) for v in cols] if c.n_wrd else [f"{_fround(v, 0):5.0f}*" for v in cols]
        rows.append(Row(fmt, [f" {spk} ", f"{c.n_snt:5d}", f"{c.n_wrd:5d}", *shown,
                              _p(snt_err_pct[-1])], "-"))
    t = total(per_speaker)
    rows.append(Row(fmt, [" Sum/Avg", f"{t.n_snt:5d}", f"{t.n_wrd:5d}",
                          *[_p(_pct(v, t.n_wrd)) for v in (t.corr, t.sub, t.dele, t.ins, t.err)],
                          _p(_pct(t.snt_err, t.n_snt))], "="))

    # sclite drops speakers without reference words from the word-column statistics by shifting
    # the later speakers up one place per such speaker, indexed by the unshifted list; with two
    # or more of them it drops other speakers' numbers. Reproduced as is.
    no_ref = [c.n_wrd == 0 for c in per_speaker.values()]
    n = len(word_cols)
    for s in range(n):
        if no_ref[s]:
            word_cols[s:n - 1] = word_cols[s + 1:n]
            word_cols[n - 1] = [-1000.0] * 5
    kept = word_cols[:n - sum(no_ref)]
    mark = "+" if any(no_ref) else " "

    stats = [_stats([float(c.n_snt) for c in per_speaker.values()]),
             _stats([float(c.n_wrd) for c in per_speaker.values()])]
    stats += [_stats([cols[k] for cols in kept]) for k in range(5)]
    stats.append(_stats(snt_err_pct))
    for i, name in enumerate((" Mean ", " S.D. ", "Median")):
        vals = [s[i] for s in stats]
        cells = [_p(vals[0]), _p(vals[1])]
        cells += [f"{_fround(v, 1):5.1f}{mark}" for v in vals[2:7]]
        cells.append(_p(vals[7]))
        rows.append(Row(stat_fmt, [name, *cells], "=" if i == 0 else ""))
    return rows


def sum_report(per_speaker: Dict[str, Counts], title: str) -> str:
    """The text of ``sclite ... -o sum stdout``; ``title`` is the hyp file path sclite was given."""
    if not per_speaker:
        raise ValueError("nothing to report: no hypothesised utterances")
    lines = render(_rows(per_speaker, title))
    note = NO_REF_NOTE if any(c.n_wrd == 0 for c in per_speaker.values()) else ""
    return "\n\n\n" + center(TITLE, PAGE_WIDTH) + "\n\n" + "\n".join(lines) + "\n" + note
