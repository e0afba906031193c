"""Fine-tune a base on one or more data dirs in one process: LoRA or full fine-tuning.

Each data dir is trained separately from the same starting point and gets its own output
``OUTPUT_DIR/<name>/`` (``name`` = the data dir's name, or --names). Used for LoRA pretraining
(one data dir: the training speakers), per-speaker adaptation (one data dir per speaker), and the
full fine-tuning baselines.

  --mode lora       LoRA (--lora_conf) on the frozen base; writes adapter.pth (adapter tensors +
                    base fingerprint). --init_adapter starts from a pretrained LoRA (P4Q).
  --mode full       every weight trains (FFT). With an fp32 base writes model.pth (espnet2 layout);
                    with an nf4 base it starts from the dequantised NF4 weights and writes a packed
                    directory re-quantised with the base's quantisation config (FFT-NF4).

Every output directory gets train.json (steps, losses, wall time, parameter counts); a finished
output is skipped on re-run unless --overwrite.

    python -m espnet_p4q.bin.finetune --base nf4:exp/asr/nf4 --mode lora --lora_conf conf/lora/rank4.yaml \\
        --init_adapter exp/lora_pretrain/train/adapter.pth --train_conf conf/adapt.yaml \\
        --data_dirs data/spk1_adapt data/spk2_adapt --names spk1 spk2 --n_utts 30 --output_dir exp/p4q
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, add_job_options, guarded, parse_and_log
from espnet_p4q.fileio import InputError, read_kaldi_table, write_json_atomic


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m espnet_p4q.bin.finetune", description=__doc__)
    p.add_argument("--base", required=True, help="nf4:DIR or fp32:CONFIG,MODEL")
    p.add_argument("--mode", choices=["lora", "full"], required=True)
    p.add_argument("--lora_conf", type=Path, help="LoRA YAML (mode lora)")
    p.add_argument("--lora_rank", type=_positive_int,
                   help="override the rank of --lora_conf (alpha scales along)")
    p.add_argument("--init_adapter", type=Path, help="adapter to start from (mode lora); default random")
    p.add_argument("--train_conf", type=Path, required=True, help="YAML: epochs, batch_size, lr, warmup_steps ...")
    p.add_argument("--data_dirs", type=Path, nargs="+")
    p.add_argument("--data_list", type=Path,
                   help="file of 'name data_dir' lines, instead of --data_dirs/--names (one job's speakers)")
    p.add_argument("--names", nargs="+", help="output names, one per data dir (default: data dir names)")
    p.add_argument("--n_utts", type=_positive_int, help="use the first N utterances (sorted ids) of each data dir")
    p.add_argument("--text_dir", type=Path,
                   help="take labels from TEXT_DIR/<data dir name>/text instead of the data dir "
                        "(unsupervised adaptation on the model's own 1-best)")
    p.add_argument("--output_dir", type=Path, required=True)
    add_job_options(p, ngpu_help="1: train on the GPU (bitsandbytes' CUDA 4-bit path)")
    return p


def _jobs(args):
    """(data dir, output name) pairs, every input checked before any work."""
    if args.data_list:
        table = read_kaldi_table(args.data_list)
        for n, (name, d) in enumerate(table.items(), 1):
            if len(d.split()) != 1:
                raise InputError("every line must be 'name data_dir'", args.data_list, n)
        args.names, args.data_dirs = list(table), [Path(d) for d in table.values()]
    if not args.data_dirs:
        raise InputError("give --data_dirs or --data_list")
    names = args.names or [d.name for d in args.data_dirs]
    if len(names) != len(args.data_dirs):
        raise InputError("--names must give one name per data dir")
    if args.mode == "lora" and not args.lora_conf:
        raise InputError("--mode lora needs --lora_conf")
    for d in args.data_dirs:
        for f in ("wav.scp", "text"):
            if not (d / f).is_file():
                raise InputError("no such file", d / f)
    return list(zip(args.data_dirs, names))


@guarded("finetune")
def main(argv=None) -> int:
    args = parse_and_log(get_parser(), argv, "finetune", quiet_autocast=True)
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.train.loop import TrainConfig

    jobs = _jobs(args)
    tcfg = TrainConfig.from_yaml(args.train_conf)  # checked before the model loads
    lcfg = LoRAConfig.from_yaml(args.lora_conf) if args.mode == "lora" else None
    if lcfg is not None and args.lora_rank is not None:
        lcfg.alpha = lcfg.alpha * args.lora_rank / lcfg.rank
        lcfg.rank = args.lora_rank
    todo = [(d, n) for d, n in jobs if args.overwrite or not (args.output_dir / n / "train.json").is_file()]
    if not todo:
        logging.info("all %d outputs exist in %s; nothing to do", len(jobs), args.output_dir)
        return 0

    from espnet_p4q.train.finetuner import Finetuner

    tuner = Finetuner(args.base, args.mode, tcfg, lcfg, init_adapter=args.init_adapter,
                      device="cuda" if args.ngpu > 0 else "cpu")
    for i, (data_dir, name) in enumerate(todo, 1):
        text_file = args.text_dir / data_dir.name / "text" if args.text_dir else None
        summary = tuner.run(data_dir, name, args.output_dir / name, n_utts=args.n_utts, text_file=text_file,
                            log_prefix=f"[{i}/{len(todo)}] ")
        # train.json is written last: it marks the output finished
        write_json_atomic(args.output_dir / name / "train.json", summary)
        logging.info("[%d/%d] %s done: loss %.3f -> %.3f in %.1f s", i, len(todo), name,
                     summary["first_loss"], summary["last_loss"], summary["wall_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
