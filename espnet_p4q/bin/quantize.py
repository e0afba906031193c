"""Quantise an espnet2 ASR model to packed block-wise 4-bit NormalFloat.

    python -m espnet_p4q.bin.quantize --asr_train_config exp/asr/config.yaml \\
        --asr_model_file exp/asr/valid.acc.ave.pth --quant_conf conf/quant/nf4.yaml \\
        --output_dir exp/asr/nf4

writes DIR/model.pth (packed weights), DIR/config.yaml (+ the files it references),
DIR/quant.yaml and, last, DIR/size.json (sizes, bits per parameter, modules left in FP32).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, add_log_level, guarded, parse_and_log
from espnet_p4q.fileio import InputError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--asr_train_config", type=Path, required=True, help="espnet2 config.yaml of the model")
    p.add_argument("--asr_model_file", type=Path, required=True, help="espnet2 model .pth (FP32)")
    p.add_argument("--quant_conf", type=Path, required=True, help="YAML: targets, blocksize, double_quant ...")
    p.add_argument("--output_dir", type=Path, required=True)
    add_log_level(p)
    return p


@guarded("quantize")
def main(argv=None) -> int:
    args = parse_and_log(get_parser(), argv, "quantize", show_level=True)
    for f in (args.asr_train_config, args.asr_model_file, args.quant_conf):
        if not f.is_file():
            raise InputError("no such file", f)

    from espnet_p4q.patterns import PatternError
    from espnet_p4q.quant.apply import describe, quantize_model
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.fileio import write_json_atomic
    from espnet_p4q.quant.report import size_report
    from espnet_p4q.models.asr_model import PACKED_MODEL_NAME, load_fp32_asr_model, save_packed_dir

    qcfg = QuantConfig.from_yaml(args.quant_conf)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "size.json").unlink(missing_ok=True)  # size.json marks a finished directory
    model, _ = load_fp32_asr_model(args.asr_train_config, args.asr_model_file)
    model.eval()
    try:
        names = quantize_model(model, qcfg)
    except PatternError as e:
        raise InputError(str(e), args.quant_conf) from e
    logging.info("packed %d modules to 4-bit %s (block %d)", len(names), qcfg.quant_type, qcfg.blocksize)
    fingerprint = save_packed_dir(model, qcfg, args.asr_train_config, out)
    report = size_report(describe(model), args.asr_model_file, out / PACKED_MODEL_NAME, fingerprint)
    write_json_atomic(out / "size.json", report)
    logging.info(
        "FP32 %.2f MB -> %.2f MB (%.2fx), %.3f bits/param, %d params left in FP32; wrote %s",
        report["fp32_bytes"] / 1e6, report["quantized_bytes"] / 1e6, report["ratio"],
        report["bits_per_param"], report["fp_params"], out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
