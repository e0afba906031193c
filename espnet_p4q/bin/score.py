"""Score a decoding the way ESPnet's asr.sh does with sclite, without needing SCTK.

    python -m espnet_p4q.bin.score --ref_text data/test/text \\
        --hyp_text exp/asr/decode/test/text --output_dir exp/asr/decode/test/score_wer

writes DIR/ref.trn and DIR/hyp.trn (sclite trn, ids ``<spk>-<rest>``), DIR/result.txt (what
``sclite -r DIR/ref.trn trn -h DIR/hyp.trn trn -i rm -o sum stdout`` prints) and DIR/wer.json
(WER in percent overall and per speaker, and the counts), each written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from espnet_p4q.scoring.align import METHODS
from espnet_p4q.scoring.atomic import write_text_atomic
from espnet_p4q.scoring.sclite_report import (missing_hypotheses, score_utterances, sum_report,
                                              total, wer_by_speaker)
from espnet_p4q.scoring.trn import TranscriptError, read_kaldi_text, write_trn


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref_text", required=True, help="Kaldi text of the references")
    p.add_argument("--hyp_text", required=True, help="Kaldi text of the hypotheses")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--title", default=None,
                   help="system title in result.txt (default: OUTPUT_DIR/hyp.trn, the path "
                        "asr.sh hands to sclite)")
    p.add_argument("--method", choices=METHODS, default="sclite",
                   help="word alignment: sclite's weighted one (exact) or jiwer's (faster)")
    p.add_argument("--allow_missing_hyp", action="store_true",
                   help="score only the decoded utterances when some references have no "
                        "hypothesis (what sclite does) instead of failing")
    return p


def score(ref_text: str, hyp_text: str, output_dir: str, title: Optional[str] = None,
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


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        summary = score(args.ref_text, args.hyp_text, args.output_dir, args.title, args.method,
                        args.allow_missing_hyp)
    except (TranscriptError, OSError) as e:
        print(f"score: error: {e}", file=sys.stderr)
        return 1
    c = summary["counts"]
    wer = "n/a" if summary["wer"] is None else f"{summary['wer']:.2f}%"
    print(f"WER {wer} ({c['err']} errors / {c['n_wrd']} words, {c['n_snt']} utterances) "
          f"-> {os.path.join(args.output_dir, 'result.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
