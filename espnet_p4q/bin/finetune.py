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
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import yaml


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="nf4:DIR or fp32:CONFIG,MODEL")
    p.add_argument("--mode", choices=["lora", "full"], required=True)
    p.add_argument("--lora_conf", type=Path, help="LoRA YAML (mode lora)")
    p.add_argument("--lora_rank", type=int, help="override the rank of --lora_conf (alpha scales along)")
    p.add_argument("--init_adapter", type=Path, help="adapter to start from (mode lora); default random")
    p.add_argument("--train_conf", type=Path, required=True, help="YAML: epochs, batch_size, lr, warmup_steps ...")
    p.add_argument("--data_dirs", type=Path, nargs="+")
    p.add_argument("--data_list", type=Path,
                   help="file of 'name data_dir' lines, instead of --data_dirs/--names (one job's speakers)")
    p.add_argument("--names", nargs="+", help="output names, one per data dir (default: data dir names)")
    p.add_argument("--n_utts", type=int, help="use the first N utterances (sorted ids) of each data dir")
    p.add_argument("--text_dir", type=Path,
                   help="take labels from TEXT_DIR/<data dir name>/text instead of the data dir "
                        "(unsupervised adaptation on the model's own 1-best)")
    p.add_argument("--output_dir", type=Path, required=True)
    p.add_argument("--ngpu", type=int, default=0, help="1: train on the GPU (bitsandbytes' CUDA 4-bit path)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [finetune] %(message)s")
    # espnet2 calls the deprecated torch.cuda.amp.autocast; its warning is only noise in job logs
    warnings.filterwarnings("ignore", message=".*autocast.*", category=FutureWarning)
    if args.data_list:
        rows = [line.split() for line in open(args.data_list, encoding="utf-8") if line.strip()]
        if any(len(r) != 2 for r in rows):
            sys.exit(f"finetune: {args.data_list}: every line must be 'name data_dir'")
        args.names, args.data_dirs = [r[0] for r in rows], [Path(r[1]) for r in rows]
    if not args.data_dirs:
        sys.exit("finetune: give --data_dirs or --data_list")
    names = args.names or [d.name for d in args.data_dirs]
    if len(names) != len(args.data_dirs):
        sys.exit("finetune: --names must give one name per data dir")
    if args.mode == "lora" and not args.lora_conf:
        sys.exit("finetune: --mode lora needs --lora_conf")
    for d in args.data_dirs:
        for f in ("wav.scp", "text"):
            if not (d / f).is_file():
                sys.exit(f"finetune: {d / f}: no such file")
    todo = [(d, n) for d, n in zip(args.data_dirs, names)
            if args.overwrite or not (args.output_dir / n / "train.json").is_file()]
    if not todo:
        logging.info("all %d outputs exist in %s; nothing to do", len(names), args.output_dir)
        return 0

    import torch

    from espnet_p4q.lora.adapter_io import load_adapter, save_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import count_parameters, inject_lora, reset_adapters
    from espnet_p4q.quant.apply import quantize_model
    from espnet_p4q.quant.report import write_json_atomic
    from espnet_p4q.quant.serialize import atomic_torch_save, save_quantized
    from espnet_p4q.tasks.asr_model import PACKED_MODEL_NAME, copy_config_with_files
    from espnet_p4q.tasks.systems import BaseSpec, fp32_model_from_packed, load_base
    from espnet_p4q.train.data import UtteranceSet
    from espnet_p4q.train.loop import TrainConfig, train

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with open(args.train_conf, encoding="utf-8") as f:
        tcfg = TrainConfig(**(yaml.safe_load(f) or {}))
    spec = BaseSpec.parse(args.base)
    base = load_base(spec)
    model = base.model
    lcfg = None
    if args.mode == "lora":
        lcfg = LoRAConfig.from_yaml(args.lora_conf)
        if args.lora_rank:
            lcfg.alpha = lcfg.alpha * args.lora_rank / lcfg.rank
            lcfg.rank = args.lora_rank
        inject_lora(model, lcfg)
    else:
        if spec.kind == "nf4":
            model = fp32_model_from_packed(model, spec.config)
        for p in model.parameters():
            p.requires_grad_(True)
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    device = "cuda" if args.ngpu > 0 else "cpu"
    model.to(device)
    counts = count_parameters(model)
    logging.info("base %s (%s), %d params; trainable %d", spec.model, spec.kind, counts["base_params"],
                 sum(p.numel() for p in model.parameters() if p.requires_grad))

    for i, (data_dir, name) in enumerate(todo, 1):
        out = args.output_dir / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").unlink(missing_ok=True)
        # every speaker starts from the same point: the pretrained/random adapter or the base weights
        with torch.no_grad():
            if args.mode == "lora":
                if args.init_adapter:
                    load_adapter(model, args.init_adapter, base.fingerprint)
                else:  # LoRA from scratch: the same seeded random start for every speaker
                    torch.manual_seed(tcfg.seed)
                    reset_adapters(model)
            else:
                model.load_state_dict(start, strict=True)  # FFT: back to the base weights
        text_file = args.text_dir / data_dir.name / "text" if args.text_dir else None
        data = UtteranceSet(data_dir, base.train_args, limit=args.n_utts, text_file=text_file)
        logging.info("[%d/%d] %s: %d utterances (%.0f s of audio), log in %s", i, len(todo), name,
                     len(data), data.seconds(), args.output_dir)
        t0 = time.perf_counter()
        summary = train(model, data, tcfg, log_prefix=f"{name}: ", device=device)
        if args.mode == "lora":
            save_adapter(model, out / "adapter.pth", base.fingerprint, lcfg,
                         {"data_dir": str(data_dir), "name": name})
        elif spec.kind == "fp32":
            atomic_torch_save({k: v.cpu() for k, v in model.state_dict().items()}, out / "model.pth")
        else:
            requant = _copy_for_requant(model, spec.config)
            quantize_model(requant, base.quant_config)
            save_quantized(requant, base.quant_config, out / PACKED_MODEL_NAME)
            copy_config_with_files(spec.config, out)
            # quant.yaml marks a packed model directory, as espnet_p4q.bin.quantize writes it
            (out / "quant.yaml").write_text(yaml.safe_dump(base.quant_config.to_dict(), sort_keys=False),
                                            encoding="utf-8")
        summary.update({
            "name": name, "data_dir": str(data_dir), "mode": args.mode, "base": args.base,
            "labels": str(text_file) if text_file else "reference",
            "wall_seconds": time.perf_counter() - t0, **count_parameters(model),
            "train_conf": tcfg.__dict__, "lora_conf": lcfg.to_dict() if lcfg else None,
            "init_adapter": str(args.init_adapter) if args.init_adapter else None,
        })
        if args.mode == "full":
            summary["adapter_params"] = summary["base_params"]  # every weight is speaker-specific
            summary["adapter_share"] = 1.0
        write_json_atomic(summary, out / "train.json")
        logging.info("[%d/%d] %s done: loss %.3f -> %.3f in %.1f s", i, len(todo), name,
                     summary["first_loss"], summary["last_loss"], summary["wall_seconds"])
    return 0


def _copy_for_requant(model, config):
    """A fresh FP32 model holding ``model``'s trained weights (to be re-quantised)."""
    from espnet_p4q.tasks.asr_model import build_asr_model

    fresh, _ = build_asr_model(config)
    fresh.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()}, strict=True)
    return fresh.eval()


if __name__ == "__main__":
    sys.exit(main())
