"""Score a decoding the way ESPnet's asr.sh does with sclite, without needing SCTK.

    python -m espnet_p4q.bin.score --ref_text data/test/text \\
        --hyp_text exp/asr/decode/test/text --output_dir exp/asr/decode/test/score_wer

writes DIR/ref.trn and DIR/hyp.trn (sclite trn, ids ``<spk>-<rest>``), DIR/result.txt (what
``sclite -r DIR/ref.trn trn -h DIR/hyp.trn trn -i rm -o sum stdout`` prints) and DIR/wer.json
(WER in percent overall and per speaker, and the counts), each written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.scoring.align import METHODS
from espnet_p4q.scoring.score_set import score_set


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
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


@guarded("score")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    summary = score_set(args.ref_text, args.hyp_text, args.output_dir, args.title, args.method,
                        args.allow_missing_hyp)
    c = summary["counts"]
    wer = "n/a" if summary["wer"] is None else f"{summary['wer']:.2f}%"
    print(f"WER {wer} ({c['err']} errors / {c['n_wrd']} words, {c['n_snt']} utterances) "
          f"-> {os.path.join(args.output_dir, 'result.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
