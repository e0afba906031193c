"""WER against a swept setting (adaptation utterances, LoRA rank, ...): a CSV and a PNG plot.

    python -m espnet_p4q.bin.plot_sweep --points points.json --x_label "adaptation utterances" \\
        --csv exp/p4q/sweep_utts.csv --png exp/p4q/sweep_utts.png [--log_x]

points.json (see espnet_p4q.report.sweep for the format) lists one decoding directory per
(system, x); the WER of a point is pooled over its speakers. The CSV has the columns system, x,
wer (percent), errors, words; the plot one line per system. Both are written atomically.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.sweep import load_points, plot, score_points, write_csv
from espnet_p4q.scoring.align import METHODS
from espnet_p4q.scoring.trn import TranscriptError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--points", required=True, help="points JSON file")
    p.add_argument("--csv", required=True, help="CSV file to write")
    p.add_argument("--png", required=True, help="PNG file to write")
    p.add_argument("--x_label", default=None, help="x axis label (default: the file's x_name)")
    p.add_argument("--title", default=None, help="plot title (default: the file's title)")
    p.add_argument("--log_x", action="store_true", help="logarithmic x axis")
    p.add_argument("--root", default="", help="directory relative paths start from")
    p.add_argument("--method", choices=METHODS, default="sclite",
                   help="word alignment: sclite's (exact) or jiwer's (faster)")
    p.add_argument("--allow_missing_hyp", action="store_true",
                   help="score only decoded utterances when some have no hypothesis")
    return p


@guarded("plot_sweep")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        sweep = load_points(args.points, args.root)
        rows = score_points(sweep, args.method, args.allow_missing_hyp)
        write_csv(rows, args.csv)
        plot(rows, args.png, args.x_label or sweep.x_name, args.title or sweep.title,
             sweep.labels, args.log_x)
    except (ReportError, TranscriptError, OSError) as e:
        print(f"plot_sweep: error: {e}", file=sys.stderr)
        return 1
    for r in rows:
        wer = "n/a" if r["wer"] is None else f"{r['wer']:.2f}%"
        print(f"{r['system']} x={r['x']}: WER {wer} ({r['errors']}/{r['words']})")
    print(f"-> {args.csv}, {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
