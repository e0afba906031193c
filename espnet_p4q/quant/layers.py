"""Modules whose weights are really stored as packed block-wise 4-bit values.

Linear layers become :class:`NF4Linear`, a bitsandbytes ``Linear4bit`` (its 4-bit matmul) with a
faster CPU inference path (below). bitsandbytes has no 4-bit convolution, and ESPnet's Conformer
has large convolutions (the Conv2d subsampling front end, the point-wise Conv1d of every conv
module) and a decoder embedding; those become :class:`NF4Conv` / :class:`NF4Embedding`, which keep
the same bitsandbytes ``Params4bit`` storage and dequantise the weight block-wise for each forward
call, so the FP32 weight never lives in the module.

CPU inference paths (eval mode, input without grad), chosen per layer by :func:`cpu_inference_path`:
- ``dequant``: the packed weight is dequantised by bitsandbytes' native CPU kernel straight into a
  transient FP32 buffer, then one BLAS ``F.linear``. Why: for small layers (d=128: 16k-65k weights)
  the cost of a call is Python and operator dispatch, not arithmetic; calling the native kernel
  through ctypes skips bitsandbytes' op dispatch (57 -> 20 us for 128x128 at 10 rows), and the
  result equals the reference (dequantise + F.linear) bit for bit. The FP32 weight lives only for
  the call, so memory stays at 4 bits per weight.
- ``bnb``: bitsandbytes' fused AVX512-BF16 4-bit kernel (weights re-packed on the first call, bf16
  activations). Why: for large layers at few rows it reads 8x fewer weight bytes than FP32 BLAS
  (12x faster for a 512x51840 output layer); for small layers its fixed cost per call and its
  slowness at many rows make it slower than ``dequant``. Needs AVX512-BF16, ``out % 32 == 0`` and
  ``in % blocksize == 0``.
- ``reference``: bitsandbytes' generic path (also used in training, for grad-requiring inputs and
  for non-FP32 compute dtypes).
Both fast paths compute rows that are stride-0 copies (ESPnet's batch beam search expands the
encoder output to all beams; the source-attention key/value projections would otherwise compute
the same rows once per beam) only once, which is exact. ``P4Q_NF4_CPU_PATH`` (auto, dequant, bnb,
reference) overrides the choice for experiments; the log says once which paths run.
"""

from __future__ import annotations

import ctypes as ct
import logging
import os
from typing import Any, Callable, Dict, List, Optional

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import torch
import torch.nn.functional as F
from bitsandbytes.cextension import lib as _bnb_lib

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


_log = logging.getLogger(__name__)
_logged: set = set()
PATH_ENV = "P4Q_NF4_CPU_PATH"
PATHS = ("auto", "dequant", "bnb", "reference")
# Layers with at least this many weights use bitsandbytes' fused kernel where it applies: below
# it the kernel's fixed cost per call loses to dequantise + BLAS (measured on one thread: 128x512
# 27 vs 7 us FP32 per row-1 call; 512x2048 50 vs 60 us).
BNB_MIN_WEIGHTS = 1 << 18


def _log_once(key: str, msg: str, *args) -> None:
    if key not in _logged:
        _logged.add(key)
        _log.info(msg, *args)


def _native(name: str) -> Optional[Callable]:
    """A function of bitsandbytes' native CPU library, or None where this build lacks it."""
    try:
        return getattr(_bnb_lib, name)
    except (AttributeError, RuntimeError, OSError):
        return None


def has_avx512bf16() -> bool:
    return bool(bnbf.has_avx512bf16())


def cpu_inference_path(in_features: int, out_features: int, blocksize: int,
                       bf16_kernel: Optional[bool] = None, requested: Optional[str] = None) -> str:
    """The CPU inference path of a packed linear layer of this shape (see the module docstring)."""
    requested = requested or os.environ.get(PATH_ENV, "auto")
    if requested not in PATHS:
        raise ValueError(f"{PATH_ENV} must be one of {PATHS}, got {requested!r}")
    bf16_kernel = has_avx512bf16() if bf16_kernel is None else bf16_kernel
    bnb_fits = bf16_kernel and out_features % 32 == 0 and in_features % blocksize == 0
    if requested == "bnb":
        return "bnb" if bnb_fits else "dequant"
    if requested != "auto":
        return requested
    return "bnb" if bnb_fits and in_features * out_features >= BNB_MIN_WEIGHTS else "dequant"


def _ptr(t: torch.Tensor) -> ct.c_void_p:
    """The address of ``t``'s data; the caller must keep ``t`` referenced while it is used."""
    return ct.c_void_p(t.data_ptr())


class DequantPlan:
    """Arguments of bitsandbytes' native CPU dequantisation for one packed weight, prepared once.

    Why: for small layers the per-call cost is Python work (attribute lookups, pointer
    conversion, op dispatch), not the dequantisation; a plan leaves two native calls, two
    allocations and one addition per call. It holds references to the weight's own tensors (no
    copy). Where the native kernel does not apply (other devices, odd widths, blocks >= 2048,
    bitsandbytes' re-packed CPU layout, a build without it) it uses bitsandbytes' Python path.
    """

    def __init__(self, weight: bnb.nn.Params4bit):
        qs = weight.quant_state
        self.weight, self.qs = weight, qs
        self.shape = tuple(qs.shape)
        self.cols = self.shape[-1]
        self.rows = qs.shape.numel() // self.cols
        data = weight.data
        data = data if data.dtype == torch.uint8 else data.view(torch.uint8)
        # a table whose codes are in bitsandbytes' kernel layout (NF4Embedding.output_projection)
        ours = in_kernel_layout(data) and not getattr(qs, "packing_format_for_cpu", False)
        self.data = from_kernel_layout(data, self.rows, self.cols) if ours else data
        self.kernel = _native(f"cdequantize_blockwise_cpu_{qs.quant_type}_fp32")
        self.absmax_kernel = _native("cdequantize_blockwise_cpu_fp32") if qs.nested else None
        self.native = (
            self.kernel is not None and self.data.device.type == "cpu" and self.cols % 2 == 0
            and qs.blocksize < 2048 and not getattr(qs, "packing_format_for_cpu", False)
            and (not qs.nested or (self.absmax_kernel is not None and qs.state2.code.dtype == torch.float32
                                   and qs.state2.absmax.dtype == torch.float32))
        )
        if self.native:
            self.blocks = qs.absmax.numel()
            self.absmax_args = (
                (_ptr(qs.state2.code), _ptr(qs.absmax), _ptr(qs.state2.absmax)) if qs.nested else None
            )
            self.sizes = (ct.c_longlong(qs.blocksize), ct.c_longlong(self.rows), ct.c_longlong(self.cols))

    def __reduce__(self):
        # ctypes pointers must not be copied or pickled with the module: copies rebuild their plan
        return (_no_plan, ())

    def fits(self, weight: bnb.nn.Params4bit) -> bool:
        return weight is self.weight and weight.quant_state is self.qs and not getattr(
            self.qs, "packing_format_for_cpu", False)

    def absmax(self) -> torch.Tensor:
        """The per-block scales as FP32 (double quantisation undone as bitsandbytes does)."""
        qs = self.qs
        if not qs.nested:
            return qs.absmax.float()
        if not self.native:
            return (bnbf.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset).float()
        out = torch.empty(self.blocks, dtype=torch.float32)
        self.absmax_kernel(*self.absmax_args, _ptr(out), ct.c_longlong(qs.state2.blocksize),
                           ct.c_longlong(self.blocks))
        out += qs.offset
        return out

    def weight_fp32(self) -> torch.Tensor:
        """The FP32 weight in its original shape, for this call only."""
        if not self.native:
            return bnbf.dequantize_4bit(self.weight.data, self.qs).float()
        out = torch.empty(self.shape, dtype=torch.float32)
        absmax = self.absmax()  # a named reference: the kernel gets only its address
        self.kernel(_ptr(self.data), _ptr(absmax), _ptr(out), *self.sizes)
        return out

    def rows_fp32(self, row_ids: torch.Tensor, row_bytes: int, blocks_per_row: int) -> torch.Tensor:
        """Only the given rows (each whole blocks) of a 2-D weight, as FP32 (len(row_ids), cols)."""
        packed = torch.index_select(self.data.reshape(-1, row_bytes), 0, row_ids)
        absmax = torch.index_select(self.absmax().reshape(-1, blocks_per_row), 0, row_ids)
        n = row_ids.numel()
        if not self.native:
            state = bnbf.QuantState(absmax=absmax, shape=torch.Size((n, self.cols)), code=self.qs.code,
                                    blocksize=self.qs.blocksize, quant_type=self.qs.quant_type,
                                    dtype=torch.float32)
            return bnbf.dequantize_4bit(packed.reshape(-1, 1), state).float()
        out = torch.empty(n, self.cols, dtype=torch.float32)
        self.kernel(_ptr(packed), _ptr(absmax), _ptr(out), self.sizes[0], ct.c_longlong(n), self.sizes[2])
        return out


def _no_plan() -> None:
    return None


# bitsandbytes' AVX512-BF16 layout interleaves the codes of groups of this many rows
KERNEL_ROW_GROUP = 32


def in_kernel_layout(codes: torch.Tensor) -> bool:
    """Whether packed codes are in the kernel layout (rows, cols / 2); bitsandbytes' own layout
    is one column (n / 2, 1)."""
    return codes.dim() == 2 and codes.shape[1] > 1


def to_kernel_layout(codes: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Codes of a (rows, cols) weight (two values a byte, the first in the high nibble) in the
    layout of bitsandbytes' AVX512-BF16 kernel, rows zero-padded to whole groups of 32.

    Why not bitsandbytes' converter: it works in place on a Linear4bit, needs whole groups and
    rewrites the quantisation state (scales to bf16, double quantisation undone), which a table
    that is also looked up exactly must keep. Same byte order as the converter: byte ``i`` of
    (group, column pair) holds row ``i // 2`` (low nibble) and row ``16 + i // 2`` (high nibble)
    of the group, column ``2 * pair + i % 2``.
    """
    g = KERNEL_ROW_GROUP
    padded = -(-rows // g) * g
    values = torch.zeros(padded, cols, dtype=torch.uint8)
    pairs = codes.reshape(rows, cols // 2)
    values[:rows, 0::2], values[:rows, 1::2] = pairs >> 4, pairs & 15
    v = values.reshape(padded // g, 2, g // 2, cols // 2, 2).permute(0, 3, 2, 4, 1)  # group, pair, row, col, half
    return ((v[..., 1] << 4) | v[..., 0]).reshape(padded, cols // 2).contiguous()


def from_kernel_layout(codes: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The inverse of :func:`to_kernel_layout`: bitsandbytes' own (rows * cols / 2, 1) codes."""
    g = KERNEL_ROW_GROUP
    k = codes.reshape(-1, cols // 2, g // 2, 2)
    v = torch.stack([k & 15, k >> 4], dim=-1).permute(0, 4, 2, 1, 3).reshape(-1, cols)[:rows]
    return ((v[:, 0::2] << 4) | v[:, 1::2]).reshape(-1, 1)


def kernel_layout_rows(codes: torch.Tensor, row_ids: torch.Tensor, cols: int) -> torch.Tensor:
    """The 4-bit values (as uint8, (n, cols)) of the given rows of kernel-layout codes."""
    g = KERNEL_ROW_GROUP
    half = row_ids % g
    pairs = codes.view(-1, cols // 2, g // 2, 2)[row_ids // g, :, half % (g // 2)]  # (n, cols/2, 2)
    shift = (half >= g // 2).to(torch.uint8).mul_(4).view(-1, 1, 1)
    return ((pairs >> shift) & 15).reshape(-1, cols)


def block_scales(qs, blocks: torch.Tensor) -> torch.Tensor:
    """FP32 scales of the given quantisation blocks only, as the full dequantisation computes them."""
    if not qs.nested:
        return qs.absmax[blocks].float()
    s2 = qs.state2
    return s2.code[qs.absmax[blocks].long()] * s2.absmax[blocks // s2.blocksize] + qs.offset


def plan_of(module: torch.nn.Module) -> DequantPlan:
    """The module's :class:`DequantPlan`, rebuilt when its weight or quant state was replaced."""
    weight = module._parameters["weight"]
    plan = module.__dict__.get("_dequant_plan")
    if plan is None or not plan.fits(weight):
        plan = DequantPlan(weight)
        module.__dict__["_dequant_plan"] = plan
    return plan


def dequantize_fp32(weight: bnb.nn.Params4bit) -> torch.Tensor:
    """The FP32 weight of a packed ``Params4bit`` in its original shape, computed for this call only.

    Same values as ``bitsandbytes.functional.dequantize_4bit`` (the reference), without its
    operator dispatch.
    """
    return DequantPlan(weight).weight_fp32()


def on_distinct_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` for a row-wise ``fn``, computing leading dimensions of stride 0 only once.

    Why: batch beam search expands the encoder output to every beam (``x.expand(n_beam, ...)``), so
    a projection of it computes identical rows per beam. Exact: the rows are the same memory.
    The result is contiguous, as ``fn(x)`` would be.
    """
    idx = [slice(None)] * x.dim()
    collapsed = False
    for d in range(x.dim() - 1):
        if x.stride(d) == 0 and x.shape[d] > 1:
            idx[d], collapsed = slice(0, 1), True
    if not collapsed:
        return fn(x)
    y = fn(x[tuple(idx)])
    return y.expand(*x.shape[:-1], y.shape[-1]).contiguous()


class _PackedWeightMixin:
    """Shared by the dequantise-on-use modules: state-dict layout and weight access.

    The state dict holds ``weight`` (packed uint8) plus ``weight.<quant-state key>`` entries, the
    same layout bitsandbytes' Linear4bit writes, so one serialiser handles all packed modules.
    """

    weight: bnb.nn.Params4bit

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return plan_of(self).weight_fp32().to(dtype)

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
    """An Embedding with a packed 4-bit table, dequantised per call (only the looked-up rows where
    rows are whole blocks).

    The table can also serve as an output projection (:meth:`output_projection`, ``x @ table.T``:
    Whisper's tied embedding). At inference on CPUs with AVX512-BF16 that runs bitsandbytes' fused
    4-bit kernel; the first such call moves the codes (in place, still one packed copy) into the
    kernel's layout, rows padded to groups of 32. The quantisation state is left as it is, lookups
    read that layout with the exact FP32 scales, the state dict and training (``train()``) go back
    to bitsandbytes' own layout, so files and gradients do not depend on the CPU.
    """

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
        # ESPnet's decoder re-embeds every beam's whole prefix each step: with a small vocabulary
        # that is more rows than the table, and one full dequantisation is cheaper
        few = x.numel() * 4 <= self.num_embeddings
        if few and self.kernel_layout():
            return self.kernel_layout_rows(x).to(self.weight.quant_state.dtype)
        if few and self.rows_are_blocks():
            plan = plan_of(self)
            return self.gather_rows(x, plan).to(plan.qs.dtype)  # the original weight dtype
        return F.embedding(x, self.dequantized_weight(self.weight.quant_state.dtype), self.padding_idx)

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        if self.kernel_layout():  # rare (many ids): a temporary copy in bitsandbytes' layout, no cached plan
            return DequantPlan(self.weight).weight_fp32().to(dtype)
        return super().dequantized_weight(dtype)

    def rows_are_blocks(self) -> bool:
        """Whether rows dequantise alone (each table row is whole quantisation blocks)."""
        plan = plan_of(self)
        return plan.native and self.embedding_dim % plan.qs.blocksize == 0

    def gather_rows(self, x: torch.Tensor, plan: "DequantPlan") -> torch.Tensor:
        """Dequantise only the looked-up rows of the packed table.

        Why: the decoder embeds the tokens of every beam at every step; dequantising the whole
        table for that costs the table size each step. Same values as the full dequantisation.
        """
        rows = plan.rows_fp32(x.reshape(-1), self.embedding_dim // 2, self.embedding_dim // plan.qs.blocksize)
        return rows.reshape(*x.shape, self.embedding_dim)

    # --- the table as output projection (bitsandbytes' kernel layout) ---

    def kernel_layout(self) -> bool:
        return in_kernel_layout(self.weight.data)

    def output_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ table.T`` (logits over the table's rows), FP32 in and out.

        Why: dequantising the whole table for every decoder step costs more than the step (Whisper:
        26.6 M weights); bitsandbytes' fused kernel reads the 4-bit codes instead (bf16
        activations and scales, FP32 accumulation). Training, grad-requiring inputs, other CPUs
        and ``P4Q_NF4_CPU_PATH`` other than auto/bnb compute ``x @ dequantised.T`` (exact).
        """
        if not self.kernel_applies(x):
            return x @ self.dequantized_weight(torch.float32).t()
        _log_once("table", "packed tied table on CPU: bitsandbytes AVX512-BF16 kernel for the output projection")
        codes, scales, code = self.kernel_operands()
        rows, cols = codes.shape[0], self.embedding_dim

        def project(a: torch.Tensor) -> torch.Tensor:
            flat = a.reshape(-1, cols)
            out = torch.ops.bitsandbytes.gemv_4bit(flat, codes, [rows, cols], scales, code, self.weight.quant_state.blocksize)
            return out[:, : self.num_embeddings].reshape(*a.shape[:-1], self.num_embeddings)

        return on_distinct_rows(project, x)

    def kernel_applies(self, x: torch.Tensor) -> bool:
        qs = self.weight.quant_state
        padded = -(-self.num_embeddings // KERNEL_ROW_GROUP) * KERNEL_ROW_GROUP
        return (not self.training and not x.requires_grad and x.is_cpu and x.dtype is torch.float32
                and _dtype(self.compute_dtype) is torch.float32 and qs.quant_type in ("nf4", "fp4")
                and len(qs.shape) == 2 and cpu_inference_path(self.embedding_dim, padded, qs.blocksize) == "bnb")

    def kernel_operands(self):
        """(codes in the kernel layout, bf16 scales (blocks per row, rows), code book), made once."""
        qs = self.weight.quant_state
        cached = self.__dict__.get("_kernel_scales")
        if not self.kernel_layout():
            self.weight.data = to_kernel_layout(self.weight.data.view(torch.uint8), self.num_embeddings,
                                                self.embedding_dim)
            self.__dict__.pop("_dequant_plan", None)
            cached = None
        if cached is None or cached[0] is not qs:
            rows, blocks = self.weight.data.shape[0], qs.absmax.numel()
            scales = torch.zeros(rows, self.embedding_dim // qs.blocksize)
            scales[: self.num_embeddings] = block_scales(qs, torch.arange(blocks)).reshape(self.num_embeddings, -1)
            cached = (qs, scales.t().to(torch.bfloat16).contiguous())
            self.__dict__["_kernel_scales"] = cached
        return self.weight.data, cached[1], qs.code

    def kernel_layout_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Looked-up rows read from the kernel layout: the same values as the full dequantisation."""
        qs, dim = self.weight.quant_state, self.embedding_dim
        ids = x.reshape(-1)
        per_row = dim // qs.blocksize
        blocks = ids[:, None] * per_row + torch.arange(per_row)
        values = qs.code.float()[kernel_layout_rows(self.weight.data, ids, dim).long()]
        rows = values * block_scales(qs, blocks).repeat_interleave(qs.blocksize, dim=1)
        return rows.reshape(*x.shape, dim)

    def bitsandbytes_layout(self) -> None:
        """Codes back in bitsandbytes' own layout (for saving, training, loading)."""
        if self.kernel_layout():
            self.weight.data = from_kernel_layout(self.weight.data, self.num_embeddings, self.embedding_dim)
            self.__dict__.pop("_kernel_scales", None)
            self.__dict__.pop("_dequant_plan", None)

    def kernel_tensors(self) -> List[torch.Tensor]:
        """Tensors the kernel layout keeps besides the packed state (the bf16 scales)."""
        cached = self.__dict__.get("_kernel_scales")
        return [cached[1]] if cached is not None and self.kernel_layout() else []

    def train(self, mode: bool = True):
        if mode:
            self.bitsandbytes_layout()
        return super().train(mode)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.kernel_layout():
            destination[prefix + "weight"] = from_kernel_layout(self.weight.data, self.num_embeddings,
                                                                self.embedding_dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "weight" in state_dict:
            self.bitsandbytes_layout()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, nf4"


class NF4Linear(bnb.nn.Linear4bit):
    """bitsandbytes' Linear4bit with the per-layer CPU inference path of :func:`cpu_inference_path`.

    Training, grad-requiring inputs, other devices and non-FP32 compute dtypes take bitsandbytes'
    own forward unchanged (gradients flow to the input and to LoRA branches beside it).
    """

    def set_cpu_path(self, path: str) -> None:
        """Choose the inference path (bitsandbytes re-packs the weight only for ``bnb``)."""
        self.cpu_path = path
        self.support_avx512bf16_for_cpu = path == "bnb"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.__dict__.get("cpu_path", "reference")
        if (path == "reference" or self.training or x.requires_grad or not x.is_cpu
                or x.dtype is not torch.float32 or self.compute_dtype not in (None, torch.float32)):
            return super().forward(x)
        _log_once(path, "packed 4-bit linear layers on CPU: %s path (%s)", path,
                  "bitsandbytes AVX512-BF16 kernel" if path == "bnb" else "native dequantise + FP32 BLAS")
        if path == "bnb":
            return on_distinct_rows(super().forward, x)
        plan = plan_of(self)
        return on_distinct_rows(lambda rows: F.linear(rows, plan.weight_fp32(), self.bias), x)


def empty_linear4bit(in_features: int, out_features: int, bias: bool, compute_dtype: str, cfg: QuantConfig):
    """An :class:`NF4Linear` shell (weight to be set), safe on every CPU.

    On CPUs with AVX512-BF16, bitsandbytes re-packs the weight on the first inference call into
    a blocked 4-bit layout that needs ``out_features % 32 == 0`` and ``in_features % blocksize
    == 0`` and fails otherwise (e.g. d=144 with block 64, or a 150-token output layer); only
    layers on the ``bnb`` path are re-packed. Saving converts re-packed weights back, so files do
    not depend on the CPU.
    """
    q = NF4Linear(
        in_features, out_features, bias=bias, compute_dtype=_dtype(compute_dtype),
        compress_statistics=cfg.double_quant, quant_type=cfg.quant_type, device="meta",
    )
    q.set_cpu_path(cpu_inference_path(in_features, out_features, cfg.blocksize))
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
    return tensors + (module.kernel_tensors() if isinstance(module, NF4Embedding) else [])


def packed_bytes(module: torch.nn.Module) -> int:
    """Bytes the packed weight and its quantisation statistics take in memory."""
    return sum(t.numel() * t.element_size() for t in packed_tensors(module))
