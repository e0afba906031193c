"""CLI: validate Kaldi data dirs; prints ``file:line: message`` per problem, exits 1 on any.

Usage: python -m espnet_p4q.bin.validate_data_dir DIR [DIR...] [--sample_rate 16000]
       [--no_audio_check] [--no_pipe_check | --pipe_fraction F]

Audio is opened by default, ``cmd |`` pipes included (run, and their output checked for the
sample rate and one channel); --pipe_fraction checks an even share of the pipes of a large corpus.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.data.validate import validate_data_dir
from espnet_p4q.fileio import InputError, read_id_list


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m espnet_p4q.bin.validate_data_dir",
                       description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dirs", nargs="+", help="Kaldi data dirs (wav.scp, text, utt2spk, spk2utt)")
    p.add_argument("--sample_rate", type=int, default=16000,
                   help="expected sample rate in Hz; 0 skips the rate check")
    p.add_argument("--no_audio_check", action="store_true", help="skip opening audio files")
    p.add_argument("--check_pipes", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--no_pipe_check", action="store_true",
                   help="do not run 'cmd |' wav.scp entries (files are still opened)")
    p.add_argument("--pipe_fraction", type=_fraction, default=1.0,
                   help="run this even share (0-1] of the 'cmd |' entries")
    p.add_argument("--audio_root", default=None,
                   help="directory relative audio paths are resolved against (default: cwd)")
    p.add_argument("--quiet", action="store_true", help="print nothing for valid dirs")
    p.add_argument("--id_lists", nargs="+", default=[], metavar="FILE",
                   help="speaker lists (e.g. data/sa_eval.list) checked with the project's one list "
                        "rule: one id a line, '#' comments, no duplicates")
    return p


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


@guarded("validate_data_dir")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    for path in args.id_lists:
        ids = read_id_list(path, allow_empty=True)  # a recipe may report no speakers (yet)
        dashed = [i for i in ids if "-" in i]
        if dashed:
            raise InputError(f"speaker id '{dashed[0]}' contains '-' (sclite cuts the speaker at the "
                             "first '-')", path)
        if not args.quiet:
            print(f"{path}: OK ({len(ids)} ids)")
    bad = 0
    for d in args.data_dirs:
        report = validate_data_dir(d, sample_rate=args.sample_rate or None,
                                   check_audio=not args.no_audio_check,
                                   check_pipes=not args.no_pipe_check, audio_root=args.audio_root,
                                   pipe_fraction=args.pipe_fraction)
        if report.ok:
            if not args.quiet:
                print(f"{d}: OK ({report.n_utts} utterances, {report.n_spks} speakers)")
            continue
        bad += 1
        print(f"{d}: {len(report.issues)} problem(s)", file=sys.stderr)
        for issue in report.issues:
            print(f"  {issue}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
