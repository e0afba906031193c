"""Write the results report of a P4Q comparison run: RESULTS.md and RESULTS.json.

    python -m espnet_p4q.bin.make_p4q_results --manifest exp/p4q/systems.json \\
        --output RESULTS.md [--title TITLE] [--sweep_csv A.csv B.csv]

One row per system of the manifest (see espnet_p4q.report.manifest for its format): pooled WER
over the reported speakers, relative WER change against the reference and the NF4 system, size on
disk, speaker-specific parameters, adaptation time, RTF and a MAPSSWE test against the NF4 system;
then WER per speaker. Relative paths in the manifest are taken from --root (default: the current
directory, the recipe's). A sweep CSV's plot is linked when a PNG of the same name lies beside it.
Both files are written atomically; the JSON goes next to the markdown unless --output_json says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import write_text_atomic
from espnet_p4q.report.manifest import load_manifest
from espnet_p4q.report.markdown import render
from espnet_p4q.report.results import build_results
from espnet_p4q.report.validate import ReportError
from espnet_p4q.scoring.align import METHODS
from espnet_p4q.scoring.trn import TranscriptError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="systems.json")
    p.add_argument("--output", required=True, help="markdown file to write (RESULTS.md)")
    p.add_argument("--output_json", default=None,
                   help="JSON file to write (default: --output with a .json suffix)")
    p.add_argument("--title", default=None, help="heading of the markdown file")
    p.add_argument("--sweep_csv", nargs="*", default=[],
                   help="sweep CSV files (from plot_sweep) to link, with their PNG if present")
    p.add_argument("--root", default="", help="directory relative manifest paths start from")
    p.add_argument("--alpha", type=float, default=0.05, help="MAPSSWE significance level")
    p.add_argument("--method", choices=METHODS, default="sclite",
                   help="word alignment: sclite's (exact) or jiwer's (faster)")
    p.add_argument("--allow_missing_hyp", action="store_true",
                   help="score only decoded utterances when some have no hypothesis")
    return p


def sweeps(csv_files: List[str]) -> List[dict]:
    out = []
    for f in csv_files:
        if not os.path.isfile(f):
            raise ReportError(f"{f}: no such sweep CSV file")
        png = Path(f).with_suffix(".png")
        out.append({"csv": f, "png": str(png) if png.is_file() else None})
    return out


def make_results(args: argparse.Namespace) -> dict:
    """Build, render and write the report; return the results dict."""
    if not 0 < args.alpha < 1:
        raise ReportError(f"--alpha must be between 0 and 1, got {args.alpha}")
    manifest = load_manifest(args.manifest, args.root)
    extra = sweeps(args.sweep_csv)
    res = build_results(manifest, args.method, args.alpha, args.allow_missing_hyp, args.title)
    res["sweeps"] = extra
    out_json = args.output_json or str(Path(args.output).with_suffix(".json"))
    md_dir = os.path.dirname(os.path.abspath(args.output))
    write_text_atomic(args.output, render(res, md_dir))
    write_text_atomic(out_json, json.dumps(res, indent=2) + "\n")
    return res


@guarded("make_p4q_results")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        res = make_results(args)
    except (ReportError, TranscriptError, OSError) as e:
        print(f"make_p4q_results: error: {e}", file=sys.stderr)
        return 1
    for w in res["warnings"]:
        print(f"make_p4q_results: warning: {w}", file=sys.stderr)
    for r in res["systems"]:
        wer = "n/a" if r["wer"] is None else f"{r['wer']:.2f}%"
        print(f"{r['name']}: WER {wer} ({r['errors']}/{r['words']})")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
