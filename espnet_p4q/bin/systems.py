"""The registry of systems (conf/systems.yaml) for the shell pipeline and the report.

    python -m espnet_p4q.bin.systems table --asr_exp E --nf4_dir N --pretrained_adapter A
        one line a system, tab-separated, '-' for an empty field: name, base (fp32/nf4), config,
        model, per-speaker part (adapter:FILE, adapters:DIR or models:DIR), adapt mode, init,
        train_conf option, labels, label
    python -m espnet_p4q.bin.systems manifest --systems "fp32 nf4 ..." --asr_exp E ... --output F
        systems.json of the comparison (stage 11)
    python -m espnet_p4q.bin.systems sweep_points --x_name X --output F SYSTEM:X:DECODE_DIR...
        the points file of a sweep (stages 12-13), labelled from the registry
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError, write_json_atomic
from espnet_p4q.systems import DEFAULT_REGISTRY, Layout, load_registry, select


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m espnet_p4q.bin.systems", description=__doc__)
    p.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    p.add_argument("--log_level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("table", "manifest"):
        s = sub.add_parser(name)
        s.add_argument("--asr_exp", required=True)
        s.add_argument("--nf4_dir", required=True)
        s.add_argument("--pretrained_adapter", required=True)
    m = sub.choices["manifest"]
    m.add_argument("--systems", required=True, help="space-separated names, in the table's order")
    m.add_argument("--reference_system", default="fp32")
    m.add_argument("--nf4_system", default="nf4")
    m.add_argument("--output", type=Path, required=True)
    w = sub.add_parser("sweep_points")
    w.add_argument("--x_name", required=True)
    w.add_argument("--output", type=Path, required=True)
    w.add_argument("points", nargs="+", help="SYSTEM:X:DECODE_DIR")
    return p


@guarded("systems")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    registry = load_registry(args.registry)
    if args.command == "sweep_points":
        points = []
        for p in args.points:
            system, x, decode_dir = p.split(":", 2)
            select(registry, [system], "sweep point")
            points.append({"system": system, "x": int(x), "decode_dir": decode_dir, "speakers": "eval"})
        labels = {n: s.plot_label or s.label for n, s in registry.items() if n in {p["system"] for p in points}}
        write_json_atomic(args.output, {"data_dir": "data", "x_name": args.x_name, "labels": labels,
                                        "points": points})
        return 0
    layout = Layout(args.asr_exp, args.nf4_dir, args.pretrained_adapter)
    if args.command == "table":
        for s in registry.values():
            a = s.adapt
            fields = [s.name, s.base, layout.config(s), layout.model(s), layout.per_speaker(s),
                      a.mode if a else "", a.init if a else "", a.train_conf if a else "",
                      a.labels if a else "", s.label]
            print("\t".join(f or "-" for f in fields))
        return 0
    chosen = select(registry, args.systems.split())
    names = [s.name for s in chosen]
    for key in ("reference_system", "nf4_system"):
        if getattr(args, key) not in names:
            raise InputError(f"the comparison needs --{key} {getattr(args, key)} among --systems ({' '.join(names)})")
    write_json_atomic(args.output, {
        "data_dir": "data", "speakers": "eval", "reference_system": args.reference_system,
        "nf4_system": args.nf4_system, "systems": [layout.manifest_entry(s) for s in chosen]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
