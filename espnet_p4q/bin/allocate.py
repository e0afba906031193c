"""Bits per module under a size budget (bits per parameter, all counted), written as a quant YAML.

    python -m espnet_p4q.bin.allocate --sensitivity exp/mixed/sensitivity.csv --budget 3.5 \\
        --asr_train_config exp/asr/config.yaml --asr_model_file exp/asr/base.pth \\
        --quant_conf conf/quant/nf4.yaml --output_yaml exp/mixed/alloc_3.5.yaml

--budget is the packed file's bits per parameter of the whole model, as size.json's
bits_per_param counts it (8 x model.pth bytes / all parameters): codes, scales, code books, the
index and every tensor left in FP32 count. Each module of the table (espnet_p4q.bin.sensitivity;
they must be exactly the targets of --quant_conf) gets one width minimising the summed KL, an
exact knapsack (espnet_p4q.quant.allocate); the file of the allocation is built in memory and
measured, so the YAML written is within the budget. The YAML is --quant_conf with ``bits`` (the
most common width) and one ``mixed`` rule per other module; its header says budget and result.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--sensitivity", type=Path, required=True, help="CSV of espnet_p4q.bin.sensitivity")
    p.add_argument("--budget", type=float, required=True, help="bits per parameter of the whole file")
    p.add_argument("--asr_train_config", type=Path, required=True, help="espnet2 config.yaml of the model")
    p.add_argument("--asr_model_file", type=Path, required=True, help="espnet2 model .pth (FP32)")
    p.add_argument("--quant_conf", type=Path, required=True, help="quant YAML the table was measured with")
    p.add_argument("--output_yaml", type=Path, required=True)
    p.add_argument("--resolution", type=int, default=8192, help="knapsack units the budget is cut into")
    p.add_argument("--log_level", default="INFO")
    return p


@guarded("allocate")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [allocate] %(levelname)s %(message)s")
    for f in (args.sensitivity, args.asr_train_config, args.asr_model_file, args.quant_conf):
        if not f.is_file():
            raise InputError("no such file", f)
    if not args.budget > 0 or args.resolution < 16:
        raise InputError(f"--budget must be > 0 and --resolution >= 16 (got {args.budget}, {args.resolution})")

    from espnet_p4q.models.asr_model import load_fp32_asr_model
    from espnet_p4q.patterns import PatternError, select_modules
    from espnet_p4q.quant.allocate import (allocate_within_file_budget, allocation_config, packed_file_bits,
                                           write_allocation)
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.quant.layers import QUANTIZABLE_TYPES
    from espnet_p4q.quant.sensitivity import by_module, read_table

    rows = read_table(args.sensitivity)
    if not rows:
        raise InputError("the sensitivity table has no rows", args.sensitivity)
    base = QuantConfig.from_yaml(args.quant_conf)
    model, _ = load_fp32_asr_model(args.asr_train_config, args.asr_model_file)
    model.eval()
    try:
        targets = list(select_modules(model, base.targets, QUANTIZABLE_TYPES, exclude=base.exclude,
                                      what="quantisation target"))
    except PatternError as e:
        raise InputError(str(e), args.quant_conf) from e
    table = by_module(rows)
    if sorted(table) != sorted(targets):
        odd = sorted(set(table) ^ set(targets))
        raise InputError(f"the table's modules are not the targets of {args.quant_conf} "
                         f"(in one but not the other: {', '.join(odd[:5])})", args.sensitivity)

    def file_bits(bits):
        return packed_file_bits(model, allocation_config(base, bits))

    res = allocate_within_file_budget(rows, args.budget, file_bits, args.resolution)
    cfg = allocation_config(base, res.bits)
    kl = sum(table[n][b].kl for n, b in res.bits.items())
    widths = Counter(res.bits.values())
    params = Counter()
    for n, b in res.bits.items():
        params[b] += table[n][b].params
    share = ", ".join(f"{b} bits: {widths[b]} modules ({params[b] / sum(params.values()):.1%} of weights)"
                      for b in sorted(widths))
    header = (f"Mixed-precision NormalFloat allocation (python -m espnet_p4q.bin.allocate)\n"
              f"budget {args.budget} bits/param (whole file); file {res.bits_per_param:.4f} bits/param, "
              f"{res.file_bits // 8} bytes, {res.total_params} params\n"
              f"summed KL {kl:.6g} from {args.sensitivity.name}; {share}")
    write_allocation(cfg, args.output_yaml, header)
    logging.info("budget %.4f bits/param: file %.4f bits/param (%d bytes), summed KL %.4g; %s; wrote %s",
                 args.budget, res.bits_per_param, res.file_bits // 8, kl, share, args.output_yaml)
    return 0


if __name__ == "__main__":
    sys.exit(main())
