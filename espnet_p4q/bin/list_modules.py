"""List the module names of an ESPnet ASR model, to write quantisation and LoRA target patterns.

    python -m espnet_p4q.bin.list_modules --asr_train_config exp/asr/config.yaml [--quant_conf Q] [--lora_conf L]

With --quant_conf / --lora_conf, marks which modules the patterns select (and fails, listing the
names, if a pattern selects nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from espnet_p4q.cli import ArgumentParser, guarded


@guarded("list_modules")
def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--asr_train_config", type=Path, required=True)
    p.add_argument("--quant_conf", type=Path)
    p.add_argument("--lora_conf", type=Path)
    args = p.parse_args(argv)

    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import LORA_BASE_TYPES
    from espnet_p4q.patterns import PatternError, select_modules
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.quant.layers import QUANTIZABLE_TYPES
    from espnet_p4q.models.asr_model import build_asr_model

    model, _ = build_asr_model(args.asr_train_config)
    try:
        quant = set()
        if args.quant_conf:
            q = QuantConfig.from_yaml(args.quant_conf)
            quant = set(select_modules(model, q.targets, QUANTIZABLE_TYPES, q.exclude, "quantisation target"))
        lora = set()
        if args.lora_conf:
            lc = LoRAConfig.from_yaml(args.lora_conf)
            lora = set(select_modules(model, lc.targets, LORA_BASE_TYPES, lc.exclude, "LoRA target"))
    except (PatternError, ValueError) as e:
        sys.exit(f"list_modules: {e}")
    for name, m in model.named_modules():
        n = sum(t.numel() for t in m.parameters(recurse=False))
        if not name or n == 0:
            continue
        marks = ("Q" if name in quant else "-") + ("L" if name in lora else "-")
        print(f"{marks} {name:70s} {type(m).__name__:14s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
