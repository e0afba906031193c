"""Modules whose weights are really stored as packed block-wise 4-bit values.

Linear layers become bitsandbytes ``Linear4bit`` (its 4-bit matmul). bitsandbytes has no 4-bit
convolution, and ESPnet's Conformer has large convolutions (the Conv2d subsampling front end, the
point-wise Conv1d of every conv module) and a decoder embedding; those become :class:`NF4Conv` /
:class:`NF4Embedding`, which keep the same bitsandbytes ``Params4bit`` storage and dequantise the
weight block-wise for each forward call, so the FP32 weight never lives in the module.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import torch
import torch.nn.functional as F

from espnet_p4q.quant.config import QuantConfig

QUANTIZABLE_TYPES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Embedding)


def quantize_weight(weight: torch.Tensor, cfg: QuantConfig, module=None) -> bnb.nn.Params4bit:
    """Pack ``weight`` (any shape) into a 4-bit ``Params4bit`` with its quantisation state."""
    packed, state = bnbf.quantize_4bit(
        weight.detach().float().contiguous(),
        blocksize=cfg.blocksize,
        compress_statistics=cfg.double_quant,
        quant_type=cfg.quant_type,
    )
    return bnb.nn.Params4bit(
        packed,
        requires_grad=False,
        quant_state=state,
        blocksize=cfg.blocksize,
        compress_statistics=cfg.double_quant,
        quant_type=cfg.quant_type,
        bnb_quantized=True,
        module=module,
    )


def restore_weight(packed: torch.Tensor, stats: Dict[str, Any], module=None) -> bnb.nn.Params4bit:
    """Rebuild a ``Params4bit`` from its packed data and ``QuantState.as_dict(packed=True)``."""
    return bnb.nn.Params4bit.from_prequantized(
        data=packed, quantized_stats=stats, requires_grad=False, device="cpu", module=module
    )


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


class _PackedWeightMixin:
    """Shared by the dequantise-on-use modules: state-dict layout and weight access.

    The state dict holds ``weight`` (packed uint8) plus ``weight.<quant-state key>`` entries, the
    same layout bitsandbytes' Linear4bit writes, so one serialiser handles all packed modules.
    """

    weight: bnb.nn.Params4bit

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return bnbf.dequantize_4bit(self.weight.data, self.weight.quant_state).to(dtype)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)  # type: ignore[misc]
        for k, v in self.weight.quant_state.as_dict(packed=True).items():
            destination[prefix + "weight." + k] = v if keep_vars else v.detach()


class NF4Conv(_PackedWeightMixin, torch.nn.Module):
    """A Conv1d/Conv2d with a packed 4-bit weight, dequantised per call."""

    def __init__(self, conv: torch.nn.Module, weight: bnb.nn.Params4bit, compute_dtype="float32"):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"NF4Conv supports padding_mode='zeros' only, got {conv.padding_mode}")
        self.ndim = 1 if isinstance(conv, torch.nn.Conv1d) else 2
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation, self.groups = conv.padding, conv.dilation, conv.groups
        self.compute_dtype = compute_dtype
        self.weight = weight
        self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone())

    @classmethod
    def from_conv(cls, conv, cfg: QuantConfig) -> "NF4Conv":
        m = cls(conv, weight=None, compute_dtype=cfg.compute_dtype)  # type: ignore[arg-type]
        m.weight = quantize_weight(conv.weight, cfg)
        return m

    def hyperparams(self) -> Dict[str, Any]:
        return {"compute_dtype": self.compute_dtype}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = _dtype(self.compute_dtype)
        w = self.dequantized_weight(dt)
        b = None if self.bias is None else self.bias.to(dt)
        conv = F.conv1d if self.ndim == 1 else F.conv2d
        y = conv(x.to(dt), w, b, self.stride, self.padding, self.dilation, self.groups)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, groups={self.groups}, nf4"
        )


class NF4Embedding(_PackedWeightMixin, torch.nn.Module):
    """An Embedding with a packed 4-bit table, dequantised per call."""

    def __init__(self, emb: torch.nn.Embedding, weight: bnb.nn.Params4bit, compute_dtype="float32"):
        super().__init__()
        if emb.max_norm is not None or emb.sparse:
            raise ValueError("NF4Embedding supports neither max_norm nor sparse embeddings")
        self.num_embeddings, self.embedding_dim = emb.num_embeddings, emb.embedding_dim
        self.padding_idx = emb.padding_idx
        self.compute_dtype = compute_dtype
        self.weight = weight

    @classmethod
    def from_embedding(cls, emb, cfg: QuantConfig) -> "NF4Embedding":
        m = cls(emb, weight=None, compute_dtype=cfg.compute_dtype)  # type: ignore[arg-type]
        m.weight = quantize_weight(emb.weight, cfg)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.dequantized_weight(self.weight.quant_state.dtype)  # the original weight dtype
        return F.embedding(x, table, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, nf4"


def empty_linear4bit(in_features: int, out_features: int, bias: bool, compute_dtype: str, cfg: QuantConfig):
    """A bitsandbytes Linear4bit shell (weight to be set), safe on every CPU.

    On CPUs with AVX512-BF16, bitsandbytes re-packs the weight on the first inference call into
    a blocked 4-bit layout that needs ``out_features % 32 == 0`` and ``in_features % blocksize
    == 0`` and fails otherwise (e.g. d=144 with block 64, or a 150-token output layer); such
    layers keep the generic 4-bit path. Saving converts re-packed weights back, so files do not
    depend on the CPU.
    """
    q = bnb.nn.Linear4bit(
        in_features, out_features, bias=bias, compute_dtype=_dtype(compute_dtype),
        compress_statistics=cfg.double_quant, quant_type=cfg.quant_type, device="meta",
    )
    if out_features % 32 or in_features % cfg.blocksize:
        q.support_avx512bf16_for_cpu = False
    return q


def linear_to_4bit(linear: torch.nn.Linear, cfg: QuantConfig) -> bnb.nn.Linear4bit:
    """A bitsandbytes Linear4bit holding ``linear``'s weight packed to 4 bits."""
    q = empty_linear4bit(linear.in_features, linear.out_features, linear.bias is not None, cfg.compute_dtype, cfg)
    q.weight = quantize_weight(linear.weight, cfg, module=q)
    if linear.bias is not None:
        q.bias = torch.nn.Parameter(linear.bias.detach().clone())
    return q


def quantize_module(module: torch.nn.Module, cfg: QuantConfig) -> torch.nn.Module:
    """The packed 4-bit replacement of one Linear / Conv1d / Conv2d / Embedding."""
    if isinstance(module, torch.nn.Linear):
        return linear_to_4bit(module, cfg)
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        return NF4Conv.from_conv(module, cfg)
    if isinstance(module, torch.nn.Embedding):
        return NF4Embedding.from_embedding(module, cfg)
    raise TypeError(f"cannot quantise a {type(module).__name__}")


PACKED_TYPES = (bnb.nn.Linear4bit, NF4Conv, NF4Embedding)


def is_packed(module: torch.nn.Module) -> bool:
    return isinstance(module, PACKED_TYPES)


def packed_numel(module: torch.nn.Module) -> int:
    """Number of logical weights held in 4 bits by a packed module."""
    return int(module.weight.quant_state.shape.numel())


def packed_tensors(module: torch.nn.Module) -> List[torch.Tensor]:
    """The tensors a packed module keeps in memory: packed weight, scales, code books."""
    qs = module.weight.quant_state
    tensors = [module.weight.data, qs.absmax, qs.code]
    if qs.nested:
        tensors += [qs.state2.absmax, qs.state2.code]
    return tensors


def packed_bytes(module: torch.nn.Module) -> int:
    """Bytes the packed weight and its quantisation statistics take in memory."""
    return sum(t.numel() * t.element_size() for t in packed_tensors(module))
