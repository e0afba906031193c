#!/usr/bin/env python3
"""Choose adaptation hyperparameters on the TUNING speakers: a grid of learning rates / epochs.

For every grid point this adapts each tuning speaker (espnet_p4q.train.finetuner), decodes its test
set (espnet_p4q.decoding) and pools the WER over the speakers; it prints a table and writes it
to OUTPUT_DIR/tune.tsv (the best row last marked '*'). Everything runs in this one process, so
espnet2 is imported once. Speakers of the evaluation list are refused: their numbers are what
RESULTS.md reports and must not choose anything.

    tune_adapt.py --exp_dir exp/asr_x --system p4q --train_conf conf/adapt_lora.yaml \\
        --grid lr=5e-4,1e-3,2e-3 epochs=15 --output_dir exp/asr_x/tune_p4q

Systems: those of the registry (conf/systems.yaml) trained per speaker on reference labels, as
p4q.sh stage 8 trains them (e.g. p4q, lora_scratch_nf4, fft_nf4, fft_fp32). Copy the chosen
values into the --train_conf file by hand: the choice stays visible.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_p4q.cli import guarded
from espnet_p4q.fileio import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_grid import search, start, tuning_parser  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = tuning_parser(__doc__, "exp/asr_<tag> with config.yaml, base.pth, nf4/ and lora_pretrain/ (stages 5-7)",
                      "KEY=V1,V2,... for keys of the train conf (the grid overrides them)")
    p.add_argument("--system", required=True, help="a per-speaker system of the registry")
    p.add_argument("--systems_conf", type=Path, default=None, help="the registry (default: conf/systems.yaml)")
    p.add_argument("--train_conf", type=Path, required=True, help="the system's adaptation YAML")
    p.add_argument("--lora_conf", type=Path, default=None, help="LoRA YAML (LoRA systems)")
    p.add_argument("--n_utts", type=int, default=0, help="adaptation utterances per speaker (0: all)")
    return p


@guarded("tune_adapt.py")
def main(argv=None) -> int:
    args, speakers = start(get_parser(), argv, "tune_adapt")

    from espnet_p4q.config_check import read_yaml_mapping
    from espnet_p4q.decoding import SpeakerDecoder
    from espnet_p4q.train.finetuner import Finetuner
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.systems import DEFAULT_REGISTRY, load_registry, select
    from espnet_p4q.models.base import BaseSpec
    from espnet_p4q.train.loop import TrainConfig

    exp = args.exp_dir
    system = select(load_registry(args.systems_conf or DEFAULT_REGISTRY), [args.system], "--system")[0]
    if not system.adapt or system.adapt.labels != "reference":
        raise InputError(f"--system {args.system}: not trained per speaker on reference labels")
    lora = system.adapt.mode == "lora"
    if lora and args.lora_conf is None:
        raise InputError("--lora_conf is needed for LoRA systems")
    lcfg = LoRAConfig.from_yaml(args.lora_conf) if lora else None
    base = f"nf4:{exp / 'nf4'}" if system.base == "nf4" else f"fp32:{exp / 'config.yaml'},{exp / 'base.pth'}"
    init = exp / "lora_pretrain" / "pretrain" / "adapter.pth" if system.adapt.init == "pretrained" else None
    base_conf = read_yaml_mapping(args.train_conf)
    decode_conf = read_yaml_mapping(args.decode_config)

    def adapted_decoder(point, out: Path, conf: Path):
        """Each tuning speaker adapted with the point's train conf (out/adapt/<spk>), then their decoder."""
        tuner = Finetuner(base, system.adapt.mode, TrainConfig.from_yaml(conf), lcfg, init_adapter=init)
        logging.info("%s %s: adapting %d tuning speakers", args.system, point, len(speakers))
        for s in speakers:
            tuner.run(args.data_dir / f"{s}_adapt", s, out / "adapt" / s, n_utts=args.n_utts or None)
        del tuner
        per_speaker = {"adapter_dir": out / "adapt"} if lora else {"model_dir": out / "adapt"}
        return SpeakerDecoder(BaseSpec.parse(base), decode_conf, first_speaker=speakers[0], **per_speaker)

    return search(args, speakers, base_conf, "train.yaml", adapted_decoder, args.system, log_prefix=f"{args.system} ")


if __name__ == "__main__":
    sys.exit(main())
