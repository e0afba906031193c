"""Per-module quantisation sensitivity of an FP32 model: a KL table (CSV) over 2/3/4/8 bits.

    python -m espnet_p4q.bin.sensitivity --asr_train_config exp/asr/config.yaml \\
        --asr_model_file exp/asr/base.pth --quant_conf conf/quant/nf4.yaml \\
        --data_dirs data/spkA_adapt data/spkB_adapt --n_utts 20 \\
        --eval_list data/sa_eval.list --output_csv exp/mixed/sensitivity.csv

For every target of --quant_conf (targets/exclude; its blocksize and double_quant) and every
width of --bits, the model with only that module quantised is compared with the FP32 model: mean
KL divergence of the CTC posteriors (per frame) and of the teacher-forced decoder posteriors (per
token) on the first --n_utts utterances of each data dir (espnet_p4q.quant.sensitivity). The CSV
has the columns module, bits, params, stored_bits, kl_ctc, kl_att, kl; the log names the most and
least sensitive modules at the lowest width. Measure on tuning speakers only: with --eval_list, a
data dir holding a speaker of that list is refused.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--asr_train_config", type=Path, required=True, help="espnet2 config.yaml of the model")
    p.add_argument("--asr_model_file", type=Path, required=True, help="espnet2 model .pth (FP32)")
    p.add_argument("--quant_conf", type=Path, required=True, help="quant YAML: targets, blocksize, double_quant")
    p.add_argument("--data_dirs", type=Path, nargs="+", required=True, help="Kaldi dirs of tuning speakers")
    p.add_argument("--n_utts", type=int, default=0, help="first N utterances of each dir (0: all; a dir "
                                                          "with fewer gives all of its own)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8], help="widths to measure")
    p.add_argument("--eval_list", type=Path, default=None,
                   help="speaker list (e.g. data/sa_eval.list) whose speakers must not be in --data_dirs")
    p.add_argument("--output_csv", type=Path, required=True)
    p.add_argument("--log_level", default="INFO")
    return p


def check_not_eval(data_dirs, eval_list: Path) -> None:
    """InputError when a data dir holds a speaker of ``eval_list`` (its utt2spk names them)."""
    from espnet_p4q.fileio import read_id_list, read_kaldi_table

    evals = set(read_id_list(eval_list))
    for d in data_dirs:
        spk = set(read_kaldi_table(d / "utt2spk").values()) & evals
        if spk:
            raise InputError(f"speaker(s) {', '.join(sorted(spk))} of {eval_list} are evaluation speakers; "
                             "sensitivity is measured on tuning data only", d / "utt2spk")


@guarded("sensitivity")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [sensitivity] %(levelname)s %(message)s")
    from espnet_p4q.quant.config import BIT_WIDTHS

    for f in (args.asr_train_config, args.asr_model_file, args.quant_conf) + ((args.eval_list,) if args.eval_list else ()):
        if not f.is_file():
            raise InputError("no such file", f)
    for d in args.data_dirs:
        for name in ("text", "wav.scp", "utt2spk"):
            if not (d / name).is_file():
                raise InputError("no such file", d / name)
    bad = [b for b in args.bits if b not in BIT_WIDTHS]
    if bad or args.n_utts < 0 or args.batch_size < 1:
        raise InputError(f"--bits must be among {BIT_WIDTHS}, --n_utts >= 0, --batch_size >= 1 "
                         f"(got bits {args.bits}, n_utts {args.n_utts}, batch_size {args.batch_size})")
    if args.eval_list:
        check_not_eval(args.data_dirs, args.eval_list)

    from espnet_p4q.fileio import read_kaldi_table
    from espnet_p4q.models.asr_model import load_fp32_asr_model
    from espnet_p4q.patterns import PatternError
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.quant.sensitivity import measure_sensitivity, write_table
    from espnet_p4q.train.data import UtteranceSet

    qcfg = QuantConfig.from_yaml(args.quant_conf)
    model, train_args = load_fp32_asr_model(args.asr_train_config, args.asr_model_file)
    batches, n = [], 0
    for d in args.data_dirs:
        available = len(read_kaldi_table(d / "text"))
        limit = min(args.n_utts, available) if args.n_utts else None
        data = UtteranceSet(d, train_args, limit=limit)
        n += len(data)
        batches += list(data.batches(args.batch_size, random.Random(0), shuffle=False))
    logging.info("%d utterances from %d data dir(s) in %d batches", n, len(args.data_dirs), len(batches))
    start = time.time()
    try:
        rows = measure_sensitivity(model, qcfg, batches, widths=sorted(set(args.bits)))
    except PatternError as e:
        raise InputError(str(e), args.quant_conf) from e
    write_table(rows, args.output_csv)
    logging.info("%d modules x %d widths in %.0f s; wrote %s", len({r.module for r in rows}),
                 len(set(args.bits)), time.time() - start, args.output_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
