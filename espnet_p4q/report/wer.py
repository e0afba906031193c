"""WER of one decoding directory over a list of speakers, with the scoring package's counts.

Why per speaker first: the report needs both the per-speaker table and the pooled Sum/Avg, and
pooling the counts (not averaging the WERs) is what sclite's Sum/Avg row does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.speakers import set_name
from espnet_p4q.scoring.sclite_report import (Counts, missing_hypotheses, score_utterances,
                                              total)
from espnet_p4q.scoring.trn import Transcripts, fold_case, read_kaldi_text

References = Dict[str, Transcripts]
"""Speaker id -> that speaker's reference transcripts."""


@dataclass
class Decoding:
    """One decoding over the reported speakers: counts per speaker and the pooled hypotheses."""

    counts: Dict[str, Counts]
    hyps: Transcripts

    @property
    def pooled(self) -> Counts:
        return total(self.counts)


def wer(c: Counts) -> Optional[float]:
    """WER in percent (errors over reference words), None without reference words."""
    return 100.0 * c.err / c.n_wrd if c.n_wrd else None


def read_references(data_dir: Path, speakers: List[str]) -> References:
    """``<data_dir>/<spk>_test/text`` of every speaker."""
    refs: References = {}
    for spk in speakers:
        path = data_dir / set_name(spk) / "text"
        if not path.is_file():
            raise ReportError(f"{path}: no such reference text (speaker '{spk}')")
        refs[spk] = read_kaldi_text(path)
        if not refs[spk]:
            raise ReportError(f"{path}: the reference text is empty (speaker '{spk}')")
    return refs


def pool(by_speaker: Dict[str, Transcripts], what: str) -> Transcripts:
    """All speakers' transcripts in one dict; an utterance id in two speakers' sets is an error
    (sclite compares ids ignoring ASCII case, so such ids would be one utterance to it)."""
    out: Transcripts = {}
    owner: Dict[str, str] = {}
    for spk, trans in by_speaker.items():
        for utt, words in trans.items():
            key = fold_case(utt)
            if key in owner:
                raise ReportError(f"{what}: utterance '{utt}' of speaker '{spk}' is also in the "
                                  f"set of speaker '{owner[key]}'; cannot pool them")
            owner[key] = spk
            out[utt] = words
    return out


def score_decoding(decode_dir: Path, refs: References, what: str, method: str = "sclite",
                   allow_missing_hyp: bool = False) -> Decoding:
    """Score ``<decode_dir>/<spk>_test/text`` against each speaker's reference.

    ``what`` names the decoding in errors (e.g. "system 'p4q'"). A reference utterance without a
    hypothesis is an error unless ``allow_missing_hyp`` (then it is left out, as sclite does).
    """
    if not decode_dir.is_dir():
        raise ReportError(f"{decode_dir}: no such decoding directory ({what})")
    counts: Dict[str, Counts] = {}
    hyps: Dict[str, Transcripts] = {}
    for spk, ref in refs.items():
        path = decode_dir / set_name(spk) / "text"
        if not path.is_file():
            raise ReportError(f"{path}: no such hypothesis file ({what} has not decoded speaker "
                              f"'{spk}')")
        hyp = read_kaldi_text(path, ref_ids=ref)
        missing = missing_hypotheses(ref, hyp)
        if missing and (not allow_missing_hyp or not hyp):
            raise ReportError(f"{path}: {len(missing)} of {len(ref)} reference utterances have no "
                              f"hypothesis (e.g. {', '.join(missing[:3])}); an unfinished "
                              "decoding? (--allow_missing_hyp scores the decoded ones)")
        counts[spk] = total(score_utterances(ref, hyp, method))
        hyps[spk] = hyp
    return Decoding(counts, pool(hyps, str(decode_dir)))
