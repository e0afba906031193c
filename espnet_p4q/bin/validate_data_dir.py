"""CLI: validate Kaldi data dirs; prints ``file:line: message`` per problem, exits 1 on any.

Usage: python -m espnet_p4q.bin.validate_data_dir DIR [DIR...] [--sample_rate 16000]
       [--no_audio_check] [--check_pipes]
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet_p4q.data.validate import validate_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m espnet_p4q.bin.validate_data_dir",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dirs", nargs="+", help="Kaldi data dirs (wav.scp, text, utt2spk, spk2utt)")
    p.add_argument("--sample_rate", type=int, default=16000,
                   help="expected sample rate in Hz; 0 skips the rate check")
    p.add_argument("--no_audio_check", action="store_true", help="skip opening audio files")
    p.add_argument("--check_pipes", action="store_true",
                   help="also run 'cmd |' wav.scp entries and check their output")
    p.add_argument("--audio_root", default=None,
                   help="directory relative audio paths are resolved against (default: cwd)")
    p.add_argument("--quiet", action="store_true", help="print nothing for valid dirs")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    bad = 0
    for d in args.data_dirs:
        report = validate_data_dir(d, sample_rate=args.sample_rate or None,
                                   check_audio=not args.no_audio_check,
                                   check_pipes=args.check_pipes, audio_root=args.audio_root)
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
