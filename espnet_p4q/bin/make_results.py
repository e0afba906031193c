"""Write a recipe's RESULTS.md: the P4Q comparison (stage 11) on top of the per-set WER tables
(stage 10). The one results writer of the pipeline.

    python -m espnet_p4q.bin.make_results --exp_dir exp --output RESULTS.md [--info "key: value"]...
        the per-set tables: every <exp_dir>/*/decode_<system>/<set>/score_wer/wer.json, one WER
        column per system, then one table per system (the Sum/Avg row of its result.txt)
    ... --manifest exp/asr_x/compare/systems.json [--title T] [--sweep_csv A.csv B.csv]
        also the comparison of the manifest's systems on the reported speakers (pooled WER,
        relative changes, size, speaker-specific parameters, adaptation time, RTF, MAPSSWE
        against the NF4 system, WER per speaker; see espnet_p4q.report.manifest for its format),
        written beside the manifest as RESULTS.md and RESULTS.json, and on top of --output; the
        sweeps' CSV and PNG files are copied to --results_dir (beside --output) and linked there.

Every file is written atomically; an --output whose content would not change (but for its date)
is left alone.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import write_json_atomic, write_text_atomic
from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.manifest import load_manifest
from espnet_p4q.report.markdown import render
from espnet_p4q.report.results import build_results
from espnet_p4q.report.sets import collect, render_sets
from espnet_p4q.scoring.align import METHODS

GENERATOR = "python -m espnet_p4q.bin.make_results"


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=GENERATOR, description=__doc__)
    p.add_argument("--exp_dir", default="exp", help="the recipe's experiment directory")
    p.add_argument("--output", default="RESULTS.md", help="markdown file to write")
    p.add_argument("--info", action="append", default=[],
                   help="a line for the environment section, e.g. 'asr config: conf/train.yaml'")
    g = p.add_argument_group("the comparison (stage 11)")
    g.add_argument("--manifest", help="systems.json of the compared systems")
    g.add_argument("--title", default=None, help="heading of the comparison")
    g.add_argument("--sweep_csv", nargs="*", action="extend", default=[],
                   help="sweep CSV files (plot_sweep) to link, with their PNG; may be repeated")
    g.add_argument("--results_dir", default="results", help="where the sweep files are copied, beside --output")
    g.add_argument("--root", default="", help="directory relative manifest paths start from")
    g.add_argument("--alpha", type=float, default=0.05, help="MAPSSWE significance level")
    g.add_argument("--method", choices=METHODS, default="sclite", help="word alignment: sclite's (exact) or jiwer's")
    g.add_argument("--allow_missing_hyp", action="store_true",
                   help="score only decoded utterances when some have no hypothesis")
    p.add_argument("--log_level", default="INFO")
    return p


def _sweeps(csv_files: List[str], copy_to: Optional[Path] = None) -> List[dict]:
    """[{csv, png}] of the sweep files (png None when absent), copied to ``copy_to`` if given."""
    out = []
    for f in csv_files:
        csv = Path(f)
        if not csv.is_file():
            raise ReportError(f"{f}: no such sweep CSV file")
        png = csv.with_suffix(".png")
        png = png if png.is_file() else None
        if copy_to is not None:
            copy_to.mkdir(parents=True, exist_ok=True)
            for src in filter(None, (csv, png)):
                shutil.copyfile(src, copy_to / src.name)
            csv, png = copy_to / csv.name, (copy_to / png.name if png else None)
        out.append({"csv": str(csv), "png": str(png) if png else None})
    return out


def comparison(args, output: Path) -> str:
    """Build the comparison; write it beside the manifest; return its text for ``output``."""
    if not 0 < args.alpha < 1:
        raise ReportError(f"--alpha must be between 0 and 1, got {args.alpha}")
    manifest = load_manifest(args.manifest, args.root)
    res = build_results(manifest, args.method, args.alpha, args.allow_missing_hyp, args.title)
    res["sweeps"] = _sweeps(args.sweep_csv)
    here = Path(args.manifest).parent
    write_text_atomic(here / "RESULTS.md", render(res, str(here.resolve()), GENERATOR))
    write_json_atomic(here / "RESULTS.json", res)
    for w in res["warnings"]:
        print(f"make_results: warning: {w}", file=sys.stderr)
    for r in res["systems"]:
        wer = "n/a" if r["wer"] is None else f"{r['wer']:.2f}%"
        print(f"{r['name']}: WER {wer} ({r['errors']}/{r['words']})")
    res["sweeps"] = _sweeps(args.sweep_csv, output.parent / args.results_dir if args.sweep_csv else None)
    return render(res, str(output.parent.resolve()), GENERATOR)


def _without_date(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("- date: "))


@guarded("make_results")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    out = Path(args.output)
    exp_dir = Path(args.exp_dir)
    text = render_sets(collect(exp_dir), exp_dir, args.info, f"{GENERATOR} --exp_dir {exp_dir}")
    if args.manifest:
        text = comparison(args, out) + "\n---\n\n" + text
    if out.is_file() and _without_date(out.read_text(encoding="utf-8")) == _without_date(text):
        return 0  # re-runs that score nothing new change nothing, not even the date
    write_text_atomic(out, text)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
