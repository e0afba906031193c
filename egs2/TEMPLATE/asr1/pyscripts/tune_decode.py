#!/usr/bin/env python3
"""Choose decoding settings (beam, CTC weight, length penalty) on the TUNING speakers.

For every grid point this decodes the tuning speakers' test sets with the FP32 base
(espnet_p4q.bin.decode, which runs espnet2's beam search), pools the WER and prints a table,
also written to OUTPUT_DIR/tune.tsv (the best row marked '*'). Speakers of the evaluation list
are refused, as in tune_adapt.py. Copy the chosen values into conf/decode.yaml by hand; every
system of the recipe then decodes with them.

    tune_decode.py --exp_dir exp/asr_x --decode_config conf/decode.yaml \\
        --grid ctc_weight=0.3,0.5,0.7 penalty=0,0.5 --output_dir exp/asr_x/tune_decode
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_grid import (add_common_args, decode_sets, parse_grid, point_config, score_point,  # noqa: E402
                         tuning_speakers, write_table)


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    add_common_args(p, "exp/asr_<tag> with config.yaml and base.pth",
                    "KEY=V1,V2,... for keys of the decoding YAML (the grid overrides them)")
    return p


@guarded("tune_decode.py")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s [tune_decode] %(message)s")
    speakers = tuning_speakers(args.tune_list, args.eval_list)

    from espnet_p4q.config_check import read_yaml_mapping
    from espnet_p4q.decoding import SpeakerDecoder
    from espnet_p4q.report.wer import read_references
    from espnet_p4q.models.base import BaseSpec

    base = BaseSpec("fp32", args.exp_dir / "config.yaml", args.exp_dir / "base.pth")
    base_conf = read_yaml_mapping(args.decode_config)
    refs = read_references(args.data_dir, speakers)
    rows = []
    for point in parse_grid(args.grid):
        unknown = set(point) - set(base_conf)
        if unknown:
            raise InputError(f"--grid: {', '.join(sorted(unknown))} not among its options", args.decode_config)
        tag, out, conf = point_config(args.output_dir, point, base_conf, "decode.yaml")
        decode_sets(SpeakerDecoder(base, read_yaml_mapping(conf)),
                    [args.data_dir / f"{s}_test" for s in speakers], out / "decode")
        rows.append(score_point(point, out / "decode", refs, f"fp32 {tag}"))
        logging.info("%s: WER %.2f%% over the tuning speakers", point, rows[-1][1])

    table = write_table(rows, speakers, args.output_dir)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
