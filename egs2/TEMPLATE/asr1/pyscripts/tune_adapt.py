#!/usr/bin/env python3
"""Choose adaptation hyperparameters on the TUNING speakers: a grid of learning rates / epochs.

For every grid point this adapts each tuning speaker (espnet_p4q.bin.finetune), decodes its test
set (espnet_p4q.bin.decode) and pools the WER over the speakers; it prints a table and writes it
to OUTPUT_DIR/tune.tsv (the best row last marked '*'). Everything runs in this one process, so
espnet2 is imported once. Speakers of the evaluation list are refused: their numbers are what
RESULTS.md reports and must not choose anything.

    tune_adapt.py --exp_dir exp/asr_x --system p4q --train_conf conf/adapt_lora.yaml \\
        --grid lr=5e-4,1e-3,2e-3 epochs=15 --output_dir exp/asr_x/tune_p4q

Systems (as in p4q.sh stage 8): p4q (from the pretrained LoRA), lora_scratch_nf4, fft_nf4,
fft_fp32. Copy the chosen values into the --train_conf file by hand: the choice stays visible.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from espnet_p4q.cli import guarded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_grid import add_speaker_args, parse_grid, point_config, score_point, tuning_speakers, write_table  # noqa: E402

SYSTEMS = ("p4q", "lora_scratch_nf4", "fft_nf4", "fft_fp32")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", type=Path, required=True,
                   help="exp/asr_<tag> with config.yaml, base.pth, nf4/ and lora_pretrain/ (stages 5-7)")
    p.add_argument("--system", choices=SYSTEMS, required=True)
    p.add_argument("--train_conf", type=Path, required=True, help="the system's adaptation YAML (grid overrides it)")
    p.add_argument("--grid", nargs="+", required=True, help="KEY=V1,V2,... for keys of the train conf")
    p.add_argument("--lora_conf", type=Path, default=None, help="LoRA YAML (LoRA systems)")
    p.add_argument("--decode_config", type=Path, required=True)
    add_speaker_args(p)
    p.add_argument("--n_utts", type=int, default=0, help="adaptation utterances per speaker (0: all)")
    p.add_argument("--output_dir", type=Path, required=True)
    return p


@guarded("tune_adapt.py")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s [tune_adapt] %(message)s")
    speakers = tuning_speakers(args.tune_list, args.eval_list)

    from espnet_p4q.bin import decode, finetune
    from espnet_p4q.report.wer import read_references

    exp = args.exp_dir
    nf4 = f"nf4:{exp / 'nf4'}"
    fp32 = f"fp32:{exp / 'config.yaml'},{exp / 'base.pth'}"
    base_conf = yaml.safe_load(args.train_conf.read_text(encoding="utf-8")) or {}
    refs = read_references(args.data_dir, speakers)
    rows = []
    for point in parse_grid(args.grid):
        tag, out, conf = point_config(args.output_dir, point, base_conf, "train.yaml")
        ft = ["--train_conf", str(conf), "--data_dirs", *[str(args.data_dir / f"{s}_adapt") for s in speakers],
              "--names", *speakers, "--output_dir", str(out / "adapt")]
        if args.n_utts:
            ft += ["--n_utts", str(args.n_utts)]
        if args.system in ("p4q", "lora_scratch_nf4"):
            if args.lora_conf is None:
                raise SystemExit("--lora_conf is needed for LoRA systems")
            ft += ["--base", nf4, "--mode", "lora", "--lora_conf", str(args.lora_conf)]
            if args.system == "p4q":
                ft += ["--init_adapter", str(exp / "lora_pretrain" / "pretrain" / "adapter.pth")]
            per_speaker = ["--adapter_dir", str(out / "adapt")]
            base = nf4
        else:
            base = nf4 if args.system == "fft_nf4" else fp32
            ft += ["--base", base, "--mode", "full"]
            per_speaker = ["--model_dir", str(out / "adapt")]
        logging.info("%s %s: adapting %d tuning speakers", args.system, point, len(speakers))
        if finetune.main(ft) != 0:
            raise SystemExit(f"finetune failed for {point}")
        dec = out / "decode"
        if decode.main(["--base", base, "--decode_config", str(args.decode_config), *per_speaker,
                        "--data_dirs", *[str(args.data_dir / f"{s}_test") for s in speakers],
                        "--output_dir", str(dec)]) != 0:
            raise SystemExit(f"decode failed for {point}")
        rows.append(score_point(point, dec, refs, f"{args.system} {tag}"))
        logging.info("%s %s: WER %.2f%% over the tuning speakers", args.system, point, rows[-1][1])

    table = write_table(rows, speakers, args.output_dir)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
