"""Score one decoded set as ESPnet's asr.sh does with sclite: trn files, result.txt, wer.json.

Why a library function: the recipe scores dozens of sets, and every Python process pays its
imports; ``pyscripts/score_sets.py`` calls this for each set in one process, and
``python -m espnet_p4q.bin.score`` for one.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from espnet_p4q.fileio import write_text_atomic
from espnet_p4q.scoring.sclite_report import (missing_hypotheses, score_utterances, sum_report,
                                              total, wer_by_speaker)
from espnet_p4q.scoring.trn import TranscriptError, read_kaldi_text, write_trn


def score_set(ref_text: str, hyp_text: str, output_dir: str, title: Optional[str] = None,
          method: str = "sclite", allow_missing_hyp: bool = False) -> dict:
    """Write the four files; return the content of wer.json."""
    ref = read_kaldi_text(ref_text)
    hyp = read_kaldi_text(hyp_text, ref_ids=ref)
    if not hyp:
        raise TranscriptError(f"{hyp_text}: no hypotheses")
    missing = missing_hypotheses(ref, hyp)
    if missing and not allow_missing_hyp:
        raise TranscriptError(
            f"{hyp_text}: {len(missing)} of {len(ref)} reference utterances have no hypothesis "
            f"(e.g. {', '.join(missing[:3])}); pass --allow_missing_hyp to score only the "
            "decoded ones, as sclite does")
    per_speaker = score_utterances(ref, hyp, method)
    overall, by_spk = wer_by_speaker(per_speaker)
    summary = {
        "wer": overall,
        "wer_unit": "percent",
        "per_speaker": by_spk,
        "counts": total(per_speaker).as_dict(),
        "per_speaker_counts": {s: c.as_dict() for s, c in per_speaker.items()},
        "method": method,
        "n_missing_hyp": len(missing),
    }
    write_trn(os.path.join(output_dir, "ref.trn"), ref)
    write_trn(os.path.join(output_dir, "hyp.trn"), hyp)
    title = title if title is not None else os.path.join(output_dir, "hyp.trn")
    write_text_atomic(os.path.join(output_dir, "result.txt"), sum_report(per_speaker, title))
    write_text_atomic(os.path.join(output_dir, "wer.json"), json.dumps(summary, indent=2) + "\n")
    return summary
