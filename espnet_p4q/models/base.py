"""Load the model of a system: an FP32 espnet2 checkpoint or a packed 4-bit directory.

A *base spec* names it on the command line: ``nf4:DIR`` (a directory written by
``espnet_p4q.bin.quantize``) or ``fp32:CONFIG,MODEL`` (espnet2's config.yaml and .pth).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

from espnet_p4q.fileio import InputError
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.serialize import base_state, tensor_fingerprint
from espnet_p4q.models.asr_model import (
    CONFIG_NAME,
    build_asr_model,
    load_fp32_asr_model,
    load_quantized_asr_model,
)


@dataclass
class BaseSpec:
    kind: str  # "nf4" or "fp32"
    config: Path
    model: Path  # the packed directory for nf4, the .pth for fp32

    @classmethod
    def parse(cls, spec: str) -> "BaseSpec":
        kind, _, rest = spec.partition(":")
        if kind == "nf4" and rest:
            d = Path(rest)
            return cls("nf4", d / CONFIG_NAME, d)
        if kind == "fp32" and "," in rest:
            c, m = rest.split(",", 1)
            return cls("fp32", Path(c), Path(m))
        raise InputError(f"base spec must be nf4:DIR or fp32:CONFIG,MODEL, got {spec!r}")


@dataclass
class LoadedBase:
    model: torch.nn.Module
    train_args: argparse.Namespace
    fingerprint: str
    quant_config: Optional[QuantConfig]


def load_base(spec: BaseSpec, into: Optional[torch.nn.Module] = None) -> LoadedBase:
    """Load the base of ``spec`` (into an already built model, in place, when given)."""
    from espnet_p4q.models.asr_model import load_checkpoint_into, resolved_config

    args = argparse.Namespace(**resolved_config(spec.config))
    if spec.kind == "nf4":
        model, qcfg, fp = load_quantized_asr_model(spec.model, into=into)
        return LoadedBase(model, args, fp, qcfg)
    if into is None:
        model, args = load_fp32_asr_model(spec.config, spec.model)
    else:
        model = into
        load_checkpoint_into(model, spec.model, spec.config)
    return LoadedBase(model.eval(), args, tensor_fingerprint(base_state(model)), None)


def dequantized_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """An FP32 state dict of a packed model: packed weights dequantised, every other tensor as is.

    Loads with strict=True into a freshly built FP32 model of the same config (full fine-tuning
    "from the NF4 weights").
    """
    import bitsandbytes.functional as bnbf

    from espnet_p4q.quant.apply import dequantized_weight, is_quantized
    from espnet_p4q.quant.kbit_layers import is_kbit

    state = {}
    packed = {n: m for n, m in model.named_modules() if is_quantized(m)}
    for key, t in model.state_dict().items():
        owner = key.split(".weight", 1)[0]
        if owner in packed and key.startswith(owner + ".weight"):
            continue
        state[key] = t
    for n, m in packed.items():
        state[f"{n}.weight"] = (dequantized_weight(m) if is_kbit(m)
                                else bnbf.dequantize_4bit(m.weight.data, m.weight.quant_state).float())
    return state


def fp32_model_from_packed(model: torch.nn.Module, config: Path) -> torch.nn.Module:
    fresh, _ = build_asr_model(config)
    fresh.load_state_dict(dequantized_state(model), strict=True)
    return fresh.eval()
