"""Quantise a model in place by module-name patterns and describe what stayed in full precision."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List

import torch

from espnet_p4q.patterns import PatternError, replace_module, select_modules
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.kbit_layers import is_kbit, quantize_module_kbit
from espnet_p4q.quant.layers import (
    QUANTIZABLE_TYPES,
    dequantize_fp32,
    is_packed,
    packed_tensors,
    packed_numel,
    quantize_module,
)


@dataclass
class QuantReport:
    """What a quantised model holds: 4-bit modules and the tensors left in full precision."""

    quantized_modules: List[str]
    quantized_params: int
    quantized_bytes: int
    fp_params: Dict[str, int] = field(default_factory=dict)
    fp_bytes: int = 0
    module_bits: Dict[str, Dict[str, int]] = field(default_factory=dict)  # name: bits, params, bytes

    @property
    def total_params(self) -> int:
        return self.quantized_params + sum(self.fp_params.values())

    @property
    def bits_per_quantized_param(self) -> float:
        return 8.0 * self.quantized_bytes / max(self.quantized_params, 1)

    @property
    def weight_bytes(self) -> int:
        return self.quantized_bytes + self.fp_bytes


def quantize_model(model: torch.nn.Module, cfg: QuantConfig) -> List[str]:
    """Replace every target module by its packed version (NF4, or ``cfg.bits_for`` its name); return the names."""
    targets = select_modules(
        model, cfg.targets, QUANTIZABLE_TYPES, exclude=cfg.exclude, what="quantisation target"
    )
    for rule in cfg.mixed:  # a rule that matches no target is a typo, not a choice
        if not any(re.fullmatch(rule["pattern"], n) for n in targets):
            raise PatternError(f"mixed-precision pattern {rule['pattern']!r} matches no quantisation target")
    for name, module in targets.items():
        bits = cfg.bits_for(name)
        new = (quantize_module(module, cfg) if bits == 4 else
               quantize_module_kbit(module, bits, cfg.blocksize, cfg.double_quant, cfg.compute_dtype))
        replace_module(model, name, new)
    return list(targets)


def is_quantized(m: torch.nn.Module) -> bool:
    """Whether ``m`` holds a packed weight of either family (bitsandbytes NF4 or k-bit NormalFloat)."""
    return is_packed(m) or is_kbit(m)


def dequantized_weight(m: torch.nn.Module) -> torch.Tensor:
    """The FP32 weight of a packed module of either family, in its original shape (for this call)."""
    return m.dequantized_weight(torch.float32) if is_kbit(m) else dequantize_fp32(m.weight)


def _packed_parts(m: torch.nn.Module):
    """(bits, logical weights, tensors in memory) of a packed module (NF4 or k-bit)."""
    if is_kbit(m):
        return m.bits, int(m.kstate.shape.numel()), list(m.packed_tensors().values())
    return 4, packed_numel(m), packed_tensors(m)


def describe(model: torch.nn.Module) -> QuantReport:
    """Count packed weights and full-precision tensors (parameters and buffers) of a model."""
    qnames, qparams, qbytes = [], 0, 0
    packed_param_ids, storages = set(), set()
    module_bits: Dict[str, Dict[str, int]] = {}
    for name, m in model.named_modules():
        if is_quantized(m):
            bits, numel, tensors = _packed_parts(m)
            qnames.append(name)
            qparams += numel
            packed_param_ids.add(id(m.weight))
            nbytes = 0
            for t in tensors:  # code books may be shared between layers: count once
                if t.data_ptr() not in storages:
                    storages.add(t.data_ptr())
                    nbytes += t.numel() * t.element_size()
            qbytes += nbytes
            module_bits[name] = {"bits": bits, "params": numel, "bytes": nbytes}
    fp: Dict[str, int] = {}
    fp_bytes = 0
    seen = set()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) in packed_param_ids or id(t) in seen or not t.is_floating_point():
            continue
        seen.add(id(t))
        fp[name] = t.numel()
        fp_bytes += t.numel() * t.element_size()
    return QuantReport(qnames, qparams, qbytes, fp, fp_bytes, module_bits)
