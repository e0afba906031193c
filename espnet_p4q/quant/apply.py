"""Quantise a model in place by module-name patterns and describe what stayed in full precision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import torch

from espnet_p4q.patterns import replace_module, select_modules
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.layers import (
    QUANTIZABLE_TYPES,
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
    """Replace every target module by its packed 4-bit version; return the replaced names."""
    targets = select_modules(
        model, cfg.targets, QUANTIZABLE_TYPES, exclude=cfg.exclude, what="quantisation target"
    )
    for name, module in targets.items():
        replace_module(model, name, quantize_module(module, cfg))
    return list(targets)


def describe(model: torch.nn.Module) -> QuantReport:
    """Count packed weights and full-precision tensors (parameters and buffers) of a model."""
    qnames, qparams, qbytes = [], 0, 0
    packed_param_ids, storages = set(), set()
    for name, m in model.named_modules():
        if is_packed(m):
            qnames.append(name)
            qparams += packed_numel(m)
            packed_param_ids.add(id(m.weight))
            for t in packed_tensors(m):  # code books may be shared between layers: count once
                if t.data_ptr() not in storages:
                    storages.add(t.data_ptr())
                    qbytes += t.numel() * t.element_size()
    fp: Dict[str, int] = {}
    fp_bytes = 0
    seen = set()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) in packed_param_ids or id(t) in seen or not t.is_floating_point():
            continue
        seen.add(id(t))
        fp[name] = t.numel()
        fp_bytes += t.numel() * t.element_size()
    return QuantReport(qnames, qparams, qbytes, fp, fp_bytes)
