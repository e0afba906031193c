"""Write an edge package: packed base + one speaker's adapter + config + decoding entry point.

    python -m espnet_p4q.bin.export_edge --base_dir exp/asr/nf4 \\
        --adapter exp/adapt/spk01/adapter.pth --decode_config conf/decode.yaml --output_dir edge/spk01

then, on the device (see DIR/requirements.txt):  python edge/spk01/decode.py a.wav b.wav
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, add_log_level, guarded, parse_and_log


def get_parser() -> ArgumentParser:
    p = ArgumentParser(prog="export_edge", description=__doc__)
    p.add_argument("--base_dir", type=Path, required=True, help="packed model dir (espnet_p4q.bin.quantize)")
    p.add_argument("--adapter", type=Path, default=None, help="a speaker's adapter.pth (or its directory)")
    p.add_argument("--decode_config", type=Path, required=True, help="YAML of Speech2Text options")
    p.add_argument("--output_dir", type=Path, required=True, help="must not exist or be empty")
    add_log_level(p)
    return p


@guarded("export_edge")
def main(argv=None) -> int:
    args = parse_and_log(get_parser(), argv, "export_edge")
    from espnet_p4q.edge.package import export_edge

    m = export_edge(args.base_dir, args.output_dir, args.decode_config, args.adapter)
    logging.info("wrote %s: %d files, %.2f MB (model %.2f MB, adapter %s)", args.output_dir, len(m["files"]),
                 m["total_bytes"] / 1e6, m["files"]["model.pth"]["bytes"] / 1e6,
                 f"{m['files']['adapter.pth']['bytes'] / 1e3:.1f} kB" if "adapter.pth" in m["files"] else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
