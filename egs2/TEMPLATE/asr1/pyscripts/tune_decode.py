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
import sys
from pathlib import Path

from espnet_p4q.cli import guarded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_grid import search, start, tuning_parser  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    return tuning_parser(__doc__, "exp/asr_<tag> with config.yaml and base.pth",
                         "KEY=V1,V2,... for keys of the decoding YAML (the grid overrides them)")


@guarded("tune_decode.py")
def main(argv=None) -> int:
    args, speakers = start(get_parser(), argv, "tune_decode")

    from espnet_p4q.config_check import read_yaml_mapping
    from espnet_p4q.decoding import SpeakerDecoder
    from espnet_p4q.models.base import BaseSpec

    base = BaseSpec("fp32", args.exp_dir / "config.yaml", args.exp_dir / "base.pth")
    base_conf = read_yaml_mapping(args.decode_config)

    def decoder(point, out: Path, conf: Path):
        """The FP32 base with the point's decoding options."""
        return SpeakerDecoder(base, read_yaml_mapping(conf))

    return search(args, speakers, base_conf, "decode.yaml", decoder, "fp32", grid_keys_of=args.decode_config)


if __name__ == "__main__":
    sys.exit(main())
