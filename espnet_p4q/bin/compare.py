"""Is system A's WER significantly different from system B's? (MAPSSWE test, as sc_stats runs it)

    python -m espnet_p4q.bin.compare --ref_text data/test/text \\
        --hyp_text_a exp/base/decode/test/text --hyp_text_b exp/p4q/decode/test/text \\
        --name_a base --name_b p4q --output_json exp/p4q/decode/test/mapsswe.json

Both systems must have decoded the same utterances. Prints a short report; with --output_json
also writes the result (atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import write_text_atomic
from espnet_p4q.scoring.align import METHODS
from espnet_p4q.scoring.mapsswe import MapssweResult, format_result, mapsswe
from espnet_p4q.scoring.sclite_report import missing_hypotheses
from espnet_p4q.scoring.trn import TranscriptError, read_kaldi_text


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--ref_text", required=True, help="Kaldi text of the references")
    p.add_argument("--hyp_text_a", required=True, help="Kaldi text of system A's hypotheses")
    p.add_argument("--hyp_text_b", required=True, help="Kaldi text of system B's hypotheses")
    p.add_argument("--name_a", default="A")
    p.add_argument("--name_b", default="B")
    p.add_argument("--output_json", default=None, help="also write the result here")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (two-tailed)")
    p.add_argument("--min_good", type=int, default=2,
                   help="correct words in both systems that bound a segment")
    p.add_argument("--method", choices=METHODS, default="sclite",
                   help="word alignment: sclite's weighted one (exact) or jiwer's (faster)")
    p.add_argument("--allow_missing_hyp", action="store_true",
                   help="compare on the decoded utterances when some references have none")
    return p


def compare(ref_text: str, hyp_text_a: str, hyp_text_b: str, name_a: str = "A",
            name_b: str = "B", alpha: float = 0.05, min_good: int = 2, method: str = "sclite",
            allow_missing_hyp: bool = False) -> MapssweResult:
    ref = read_kaldi_text(ref_text)
    hyp_a = read_kaldi_text(hyp_text_a, ref_ids=ref)
    hyp_b = read_kaldi_text(hyp_text_b, ref_ids=ref)
    missing = missing_hypotheses(ref, hyp_a)
    if missing and not allow_missing_hyp:
        raise TranscriptError(f"{hyp_text_a}: {len(missing)} reference utterances have no "
                              "hypothesis; pass --allow_missing_hyp to compare the decoded ones")
    return mapsswe(ref, hyp_a, hyp_b, name_a, name_b, min_good=min_good, alpha=alpha,
                   method=method)


@guarded("compare")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    if args.name_a == args.name_b:
        print("compare: error: --name_a and --name_b must differ", file=sys.stderr)
        return 1
    try:
        result = compare(args.ref_text, args.hyp_text_a, args.hyp_text_b, args.name_a,
                         args.name_b, args.alpha, args.min_good, args.method,
                         args.allow_missing_hyp)
    except (TranscriptError, OSError, ValueError) as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 1
    print(format_result(result), end="")
    if args.output_json:
        write_text_atomic(args.output_json, json.dumps(result.as_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
