"""Linear / Conv / Embedding modules holding a packed k-bit NormalFloat weight (k = 2, 3, 8).

Each module keeps only the packed codes (``weight``, a frozen uint8 parameter) and its
:class:`~espnet_p4q.quant.kbit.KbitState`; the forward dequantises the weight for that call and
runs the plain FP op. Why: there are no 2/3-bit kernels, and for the model sizes here the
dequantisation is cheap next to the rest of a forward, while memory stays at k bits per weight.

The state dict holds ``weight`` plus ``weight.<leaf>`` entries (``absmax``, ``nf<k>_map``, ...),
the layout of the 4-bit modules, so serialize.py stores both alike. :class:`KbitLinear` is an
``nn.Linear`` (shape attributes, type checks), so LoRA injection wraps it as it wraps a Linear.

``P4Q_KBIT_DEQUANT=once`` keeps each module's dequantised weight after its first use (until the
codes change). Why: greedy decoding of a model with a k-bit Whisper table dequantises 26.6 M
weights per output token; with ``once`` each weight is dequantised once per process, but then
takes FP32 memory, so neither the speed nor the memory of such a run are k-bit figures. The file
and the model as built stay packed. Default ``per_call``.
"""

from __future__ import annotations

import os
from typing import Dict

import torch
import torch.nn.functional as F

from espnet_p4q.quant.kbit import KbitState, dequantize_kbit, packed_nbytes, quantize_kbit


DEQUANT_ENV = "P4Q_KBIT_DEQUANT"
DEQUANT_MODES = ("per_call", "once")


def dequantize_once() -> bool:
    """True under ``P4Q_KBIT_DEQUANT=once``; a value other than per_call/once is a ValueError."""
    mode = os.environ.get(DEQUANT_ENV, "per_call")
    if mode not in DEQUANT_MODES:
        raise ValueError(f"{DEQUANT_ENV} must be one of {', '.join(DEQUANT_MODES)}, got {mode!r}")
    return mode == "once"


class _KbitWeightMixin:
    """Packed weight access, state-dict layout and device moves shared by the k-bit modules."""

    weight: torch.nn.Parameter
    kstate: KbitState
    compute_dtype: str

    def _set_packed(self, packed: torch.Tensor, state: KbitState) -> None:
        self.weight = torch.nn.Parameter(packed, requires_grad=False)
        self.kstate = state
        self.__dict__.pop("_dequantized", None)

    @property
    def bits(self) -> int:
        return self.kstate.bits

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if not dequantize_once():
            return dequantize_kbit(self.weight.data, self.kstate).to(dtype)
        w = self.weight
        key = (w.data_ptr(), w._version, dtype, w.device)  # new or changed (copy_, load_state_dict) codes: again
        kept = self.__dict__.get("_dequantized")
        if kept is None or kept[0] != key:
            kept = (key, dequantize_kbit(w.data, self.kstate).to(dtype))
            self.__dict__["_dequantized"] = kept
        return kept[1]

    def packed_tensors(self) -> Dict[str, torch.Tensor]:
        """Every tensor the weight takes in memory: codes, scales, code books."""
        return {"weight": self.weight.data, **self.kstate.tensors()}

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)  # type: ignore[misc]
        for k, v in self.kstate.tensors().items():
            destination[prefix + "weight." + k] = v if keep_vars else v.detach()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # type: ignore[misc]
        self.kstate = self.kstate.to(self.weight.device)  # scales follow the codes' device only
        self.__dict__.pop("_dequantized", None)
        return out

    def _dt(self) -> torch.dtype:
        return getattr(torch, self.compute_dtype)


class KbitLinear(_KbitWeightMixin, torch.nn.Linear):
    """A Linear whose weight is packed k-bit NormalFloat; y = x W^T + b with W dequantised per call."""

    def __init__(self, in_features: int, out_features: int, bias: bool, packed: torch.Tensor,
                 state: KbitState, compute_dtype: str = "float32"):
        torch.nn.Linear.__init__(self, in_features, out_features, bias=bias, device="meta")
        if bias:
            self.bias = torch.nn.Parameter(torch.zeros(out_features))
        self.compute_dtype = compute_dtype
        self._set_packed(packed, state)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, bits: int, blocksize: int, double_quant: bool,
                    compute_dtype: str = "float32") -> "KbitLinear":
        packed, state = quantize_kbit(linear.weight, bits, blocksize, double_quant)
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, packed, state, compute_dtype)
        if linear.bias is not None:
            m.bias = torch.nn.Parameter(linear.bias.detach().clone())
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = self._dt()
        b = None if self.bias is None else self.bias.to(dt)
        return F.linear(x.to(dt), self.dequantized_weight(dt), b).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, nf{self.bits}"


_CONV_GEOMETRY = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")


class KbitConv(_KbitWeightMixin, torch.nn.Module):
    """A Conv1d/Conv2d with a packed k-bit weight, dequantised per call."""

    def __init__(self, conv: torch.nn.Module, packed: torch.Tensor, state: KbitState, compute_dtype="float32"):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"KbitConv supports padding_mode='zeros' only, got {conv.padding_mode}")
        self.ndim = 1 if isinstance(conv, torch.nn.Conv1d) else 2
        for attr in _CONV_GEOMETRY:
            setattr(self, attr, getattr(conv, attr))
        self.compute_dtype = compute_dtype
        self._set_packed(packed, state)
        self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone())

    @classmethod
    def from_conv(cls, conv, bits: int, blocksize: int, double_quant: bool, compute_dtype="float32") -> "KbitConv":
        packed, state = quantize_kbit(conv.weight, bits, blocksize, double_quant)
        return cls(conv, packed, state, compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = self._dt()
        b = None if self.bias is None else self.bias.to(dt)
        conv = F.conv1d if self.ndim == 1 else F.conv2d
        y = conv(x.to(dt), self.dequantized_weight(dt), b, self.stride, self.padding, self.dilation, self.groups)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, groups={self.groups}, nf{self.bits}")


class KbitEmbedding(_KbitWeightMixin, torch.nn.Module):
    """An Embedding with a packed k-bit table, dequantised per call."""

    def __init__(self, emb: torch.nn.Embedding, packed: torch.Tensor, state: KbitState, compute_dtype="float32"):
        super().__init__()
        if emb.max_norm is not None or emb.sparse:
            raise ValueError("KbitEmbedding supports neither max_norm nor sparse embeddings")
        self.num_embeddings, self.embedding_dim = emb.num_embeddings, emb.embedding_dim
        self.padding_idx = emb.padding_idx
        self.compute_dtype = compute_dtype
        self._set_packed(packed, state)

    @classmethod
    def from_embedding(cls, emb, bits: int, blocksize: int, double_quant: bool,
                       compute_dtype="float32") -> "KbitEmbedding":
        packed, state = quantize_kbit(emb.weight, bits, blocksize, double_quant)
        return cls(emb, packed, state, compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(x, self.dequantized_weight(self._dt()), self.padding_idx)

    def output_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ table.T``, for a table that is also an output layer (models.tied_embedding)."""
        return x @ self.dequantized_weight(torch.float32).t()

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, nf{self.bits}"


KBIT_TYPES = (KbitLinear, KbitConv, KbitEmbedding)


def is_kbit(module: torch.nn.Module) -> bool:
    return isinstance(module, KBIT_TYPES)


def quantize_module_kbit(module: torch.nn.Module, bits: int, blocksize: int, double_quant: bool,
                         compute_dtype: str = "float32") -> torch.nn.Module:
    """The packed k-bit replacement of one Linear / Conv1d / Conv2d / Embedding."""
    args = (bits, blocksize, double_quant, compute_dtype)
    if isinstance(module, torch.nn.Linear):
        return KbitLinear.from_linear(module, *args)
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        return KbitConv.from_conv(module, *args)
    if isinstance(module, torch.nn.Embedding):
        return KbitEmbedding.from_embedding(module, *args)
    raise TypeError(f"cannot quantise a {type(module).__name__}")


def kbit_kind(module: torch.nn.Module) -> Dict:
    """The serialised description of a k-bit module (kind, bits, block size, compute dtype)."""
    if isinstance(module, KbitLinear):
        kind = "kbit_linear"
    elif isinstance(module, KbitConv):
        kind = f"kbit_conv{module.ndim}d"
    elif isinstance(module, KbitEmbedding):
        kind = "kbit_embedding"
    else:
        raise TypeError(type(module).__name__)
    return {"kind": kind, "bits": module.bits, "blocksize": module.kstate.blocksize,
            "compute_dtype": module.compute_dtype}


def restore_kbit(old: torch.nn.Module, spec: Dict, packed: torch.Tensor,
                 leaves: Dict[str, torch.Tensor]) -> torch.nn.Module:
    """Rebuild the k-bit module described by ``spec`` in place of the FP module ``old``."""
    state = KbitState.from_tensors(spec["bits"], old.weight.shape, spec["blocksize"], leaves)
    n = state.shape.numel()
    if packed.numel() != packed_nbytes(n, state.bits) or state.absmax.numel() != -(-n // state.blocksize):
        raise ValueError(f"{packed.numel()} bytes / {state.absmax.numel()} scales do not hold "
                         f"{tuple(state.shape)} weights at {state.bits} bits")
    kind, dt = spec["kind"], spec["compute_dtype"]
    if kind == "kbit_linear":
        return KbitLinear(old.in_features, old.out_features, old.bias is not None, packed, state, dt)
    if kind in ("kbit_conv1d", "kbit_conv2d"):
        return KbitConv(old, packed, state, dt)
    if kind == "kbit_embedding":
        return KbitEmbedding(old, packed, state, dt)
    raise ValueError(f"unknown k-bit module kind {kind!r}")
