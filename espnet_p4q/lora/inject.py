"""Put LoRA branches on the target modules of a model and freeze everything else."""

from __future__ import annotations

from typing import Dict, List

import bitsandbytes as bnb
import loralib
import torch

from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.layers import LoRAWrapper
from espnet_p4q.patterns import replace_module, select_modules
from espnet_p4q.quant.kbit_layers import KbitConv
from espnet_p4q.quant.layers import NF4Conv

LORA_BASE_TYPES = (torch.nn.Linear, bnb.nn.Linear4bit, torch.nn.Conv1d, NF4Conv, KbitConv)


def inject_lora(model: torch.nn.Module, cfg: LoRAConfig) -> List[str]:
    """Wrap every target layer in a :class:`LoRAWrapper`; make only LoRA (and asked biases) trainable.

    Returns the names of the adapted modules. Injecting twice is refused: wrapped layers are
    LoRAWrappers, not base layers, so the patterns would silently adapt something else.
    """
    if any(isinstance(m, LoRAWrapper) for m in model.modules()):
        raise ValueError("the model already carries LoRA adapters")
    targets = select_modules(model, cfg.targets, LORA_BASE_TYPES, exclude=cfg.exclude, what="LoRA target")
    for name, module in targets.items():
        replace_module(model, name, LoRAWrapper(module, cfg.rank, cfg.alpha, cfg.dropout))
    loralib.mark_only_lora_as_trainable(model, bias=cfg.bias)
    return list(targets)


def adapter_state(model: torch.nn.Module, bias: str = "none") -> Dict[str, torch.Tensor]:
    """The speaker-specific tensors (loralib's ``lora_state_dict``), detached copies."""
    return {k: v.detach().clone() for k, v in loralib.lora_state_dict(model, bias=bias).items()}


def reset_adapters(model: torch.nn.Module) -> None:
    """Re-initialise every LoRA branch (random A, zero B): the model computes the base again."""
    for m in model.modules():
        if isinstance(m, LoRAWrapper):
            m.reset_lora_parameters()


def count_parameters(model: torch.nn.Module) -> Dict[str, float]:
    """Adapter parameter count against the base's (logical weights, packed ones counted as such)."""
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    base = 0
    for n, m in model.named_modules():
        kstate = getattr(m, "kstate", None)  # a k-bit NormalFloat module: its logical shape
        for pn, p in m.named_parameters(recurse=False):
            if "lora_" in pn:
                continue
            if kstate is not None and pn == "weight":
                base += int(kstate.shape.numel())
                continue
            qs = getattr(p, "quant_state", None)
            base += int(qs.shape.numel()) if qs is not None else p.numel()
    return {"adapter_params": lora, "base_params": base, "adapter_share": lora / max(base, 1)}
