"""File size against WER of quantised models, MAPSSWE against FP32, and the smallest "lossless" one.

    python -m espnet_p4q.bin.size_wer --data_dir data --speaker_list data/sa_tune.list \\
        --reference fp32 exp/asr/base.pth exp/mixed/decode/fp32 \\
        --system nf4 uniform exp/mixed/models/nf4 exp/mixed/decode/nf4 \\
        --system mixed_3.3 mixed exp/mixed/models/mixed_3.3 exp/mixed/decode/mixed_3.3 \\
        --csv tune.csv --markdown tune.md --png tune.png --lossless_to chosen.txt

Each system: NAME GROUP SIZE_PARTS DECODE_DIR. SIZE_PARTS is one path or several joined by ','
(a packed directory counts its size.json's quantized_bytes, any other file its bytes; e.g. a base
plus its adapter); DECODE_DIR holds <spk>_test/text for every speaker of --speaker_list (the
layout of espnet_p4q.bin.decode --data_dirs). WER is pooled over those speakers; every system is
tested against --reference with MAPSSWE; --vs A B adds a column with A's p against B. Bits per
parameter divide by all parameters (total_params of the first packed directory's size.json).
--lossless_to writes the name of the smallest system (among --choose_among, default all) that is
not significantly worse than the reference (p >= --alpha, or better), or nothing when none is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--data_dir", type=Path, required=True, help="holds <spk>_test/text of every speaker")
    p.add_argument("--speaker_list", type=Path, required=True, help="speakers whose test sets are pooled")
    p.add_argument("--reference", nargs=3, metavar=("NAME", "SIZE_PARTS", "DECODE_DIR"), required=True)
    p.add_argument("--system", nargs=4, metavar=("NAME", "GROUP", "SIZE_PARTS", "DECODE_DIR"), action="append",
                   default=[], required=True)
    p.add_argument("--vs", nargs=2, metavar=("A", "B"), action="append", default=[],
                   help="also test system A against system B (a column 'p vs B')")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--choose_among", nargs="+", default=None, help="systems --lossless_to chooses from")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--title", default=None, help="plot title")
    p.add_argument("--lossless_to", type=Path, default=None)
    p.add_argument("--log_level", default="INFO")
    return p


def _spec(name, group, parts, decode_dir):
    from espnet_p4q.report.size_wer import SystemSpec

    return SystemSpec(name, group, [Path(p) for p in parts.split(",") if p], Path(decode_dir))


@guarded("size_wer")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from espnet_p4q.fileio import read_id_list, write_text_atomic
    from espnet_p4q.report.size_wer import (mapsswe_between, markdown, measure, plot, smallest_not_worse,
                                            write_csv)

    if not args.speaker_list.is_file():
        raise InputError("no such speaker list", args.speaker_list)
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must be in (0, 1), got {args.alpha}")
    ref = _spec(args.reference[0], "FP32", *args.reference[1:])
    specs = [_spec(*s) for s in args.system]
    by_name = {s.name: s for s in [ref, *specs]}
    if len(by_name) != len(specs) + 1:
        raise InputError("two systems have the same name")
    for name in [n for pair in args.vs for n in pair] + (args.choose_among or []):
        if name not in by_name:
            raise InputError(f"unknown system '{name}' (systems: {', '.join(by_name)})")
    speakers = read_id_list(args.speaker_list)
    rows = measure(ref, specs, args.data_dir, speakers, args.alpha)
    extra = {}
    for a, b in args.vs:
        extra.setdefault(f"p vs {b}", {})[a] = mapsswe_between(by_name[a], by_name[b], args.data_dir, speakers,
                                                               args.alpha).p
    write_csv(rows, args.csv)
    if args.markdown:
        write_text_atomic(args.markdown, markdown(rows, ref.name, extra))
    if args.png:
        plot(rows, args.png, args.title)
    for r in rows:
        p = "" if r.p_vs_ref is None else f", MAPSSWE p {r.p_vs_ref:.3g} vs {ref.name}"
        print(f"{r.name}: {r.bytes} bytes ({r.ratio:.2f}x smaller, {r.bits_per_param:.3f} bits/param), "
              f"WER {r.wer:.2f}% ({r.errors}/{r.words}){p}{' (significantly worse)' if r.worse_than_ref else ''}")
    if args.lossless_to:
        best = smallest_not_worse(rows, args.choose_among)
        write_text_atomic(args.lossless_to, f"{best.name}\n" if best else "")
        print(f"smallest not significantly worse than {ref.name}: {best.name if best else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
