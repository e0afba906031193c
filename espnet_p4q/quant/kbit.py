"""Block-wise k-bit NormalFloat weights (k = 2, 3, 8) beside bitsandbytes' NF4.

Why: mixed precision gives each module the bits it needs; NF4 stays on bitsandbytes' path, the
other widths are stored here with the same construction (per-block absmax scale, NormalFloat
code book of :func:`normalfloat_codebook`, optional double quantisation of the scales).

- k = 8: bitsandbytes' block-wise 8-bit quantisation (``quantize_blockwise``) with the 8-bit
  NormalFloat code book as its ``code``; one code per byte.
- k = 2, 3: codes from the plugin's reference quantiser (nearest level after absmax scaling),
  packed by :func:`pack_codes`.

Bit layout of :func:`pack_codes` (k < 8): codes are taken in groups of 8 (the last group padded
with code 0); a group is the little-endian integer ``sum(code[j] << (k * j))`` (code 0 in the
lowest bits) written as k little-endian bytes. So 8 codes take k bytes: k = 2 puts 4 codes in a
byte (first code in bits 0-1), k = 3 puts 8 codes in 3 bytes. ``n`` codes take
``k * ceil(n / 8)`` bytes.

Double quantisation (``double_quant``) stores the per-block scales as bitsandbytes does for NF4:
``absmax - mean`` quantised block-wise (256 per block) to 8 bits with its dynamic code, plus the
FP32 scales of those blocks and the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Dict, Optional

import bitsandbytes.functional as bnbf
import torch
import torch.nn.functional as F

from espnet_p4q.quant.normalfloat import normalfloat_codebook, quantize_blockwise_codebook

KBIT_WIDTHS = (2, 3, 8)
NESTED_BLOCKSIZE = 256
_GROUP = 8  # codes per packed group: k bytes hold 8 k-bit codes


def packed_nbytes(n: int, k: int) -> int:
    """Bytes that ``n`` k-bit codes take in the packed layout."""
    return n if k == 8 else k * -(-n // _GROUP)


def pack_codes(codes: torch.Tensor, k: int) -> torch.Tensor:
    """Pack uint8 codes (each < 2**k, any shape, read flat) into the layout of the module docstring."""
    if k not in (2, 3):
        raise ValueError(f"pack_codes packs 2- or 3-bit codes, got k={k}")
    flat = codes.reshape(-1).to(torch.int32)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % _GROUP)).view(-1, _GROUP)
    shifts = torch.arange(_GROUP, dtype=torch.int32, device=flat.device) * k
    group = (flat << shifts).sum(dim=1, dtype=torch.int32)
    byte_shifts = torch.arange(k, dtype=torch.int32, device=flat.device) * 8
    return ((group[:, None] >> byte_shifts) & 0xFF).to(torch.uint8).reshape(-1)


def unpack_codes(packed: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """The first ``n`` codes of a :func:`pack_codes` byte string, as uint8."""
    if packed.numel() != packed_nbytes(n, k):
        raise ValueError(f"{packed.numel()} packed bytes do not hold {n} {k}-bit codes")
    rows = packed.reshape(-1, k).to(torch.int32)
    byte_shifts = torch.arange(k, dtype=torch.int32, device=packed.device) * 8
    group = (rows << byte_shifts).sum(dim=1, dtype=torch.int32)
    shifts = torch.arange(_GROUP, dtype=torch.int32, device=packed.device) * k
    return ((group[:, None] >> shifts) & ((1 << k) - 1)).to(torch.uint8).reshape(-1)[:n]


@lru_cache(maxsize=None)
def _codebook(k: int) -> torch.Tensor:
    """One CPU code book per k, shared by all modules (memory is counted once, as for NF4)."""
    return normalfloat_codebook(k)


def code_key(k: int) -> str:
    """State-dict leaf of the k-bit code book (one name per k, so a file stores each once)."""
    return f"nf{k}_map"


@dataclass
class KbitState:
    """Everything besides the packed codes that a k-bit weight needs to be dequantised.

    ``absmax`` is FP32 (one per block), or uint8 when ``nested_absmax`` is set (double
    quantisation: scales = dequantise(absmax, nested_absmax, nested_code) + offset).
    """

    bits: int
    shape: torch.Size
    blocksize: int
    code: torch.Tensor
    absmax: torch.Tensor
    nested_absmax: Optional[torch.Tensor] = None
    nested_code: Optional[torch.Tensor] = None
    offset: Optional[torch.Tensor] = None

    @property
    def nested(self) -> bool:
        return self.nested_absmax is not None

    def scales(self) -> torch.Tensor:
        """The per-block absmax scales as FP32."""
        if not self.nested:
            return self.absmax.float()
        state2 = bnbf.QuantState(absmax=self.nested_absmax, code=self.nested_code,
                                 blocksize=NESTED_BLOCKSIZE, dtype=torch.float32)
        return (bnbf.dequantize_blockwise(self.absmax, state2) + self.offset).float()

    def tensors(self) -> Dict[str, torch.Tensor]:
        """State-dict leaves (under ``<module>.weight.``) in the layout serialize.py stores."""
        out = {code_key(self.bits): self.code, "absmax": self.absmax}
        if self.nested:
            out.update(nested_absmax=self.nested_absmax, nested_quant_map=self.nested_code,
                       nested_offset=self.offset)
        return out

    @classmethod
    def from_tensors(cls, bits: int, shape, blocksize: int, leaves: Dict[str, torch.Tensor]) -> "KbitState":
        """Inverse of :meth:`tensors` (``leaves`` may hold other keys, which are ignored)."""
        nested = "nested_absmax" in leaves
        return cls(bits, torch.Size(shape), blocksize, leaves[code_key(bits)], leaves["absmax"],
                   leaves["nested_absmax"] if nested else None,
                   leaves["nested_quant_map"] if nested else None,
                   leaves["nested_offset"] if nested else None)

    def to(self, device) -> "KbitState":
        move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()
                if k not in ("bits", "shape", "blocksize")}
        return replace(self, **move)


@lru_cache(maxsize=None)
def _dynamic_code() -> torch.Tensor:
    """bitsandbytes' signed dynamic 8-bit code (its default for scales), one tensor for all modules."""
    return bnbf.create_dynamic_map(signed=True)


def _nest(absmax: torch.Tensor):
    """Double quantisation of the scales, as bitsandbytes does it for NF4."""
    offset = absmax.mean()
    code = _dynamic_code().to(absmax.device)
    q, state2 = bnbf.quantize_blockwise(absmax - offset, code=code, blocksize=NESTED_BLOCKSIZE)
    return q, state2.absmax, code, offset.reshape(())  # bitsandbytes copies the code: keep the shared one


def quantize_kbit(weight: torch.Tensor, bits: int, blocksize: int, double_quant: bool):
    """(packed uint8 codes, :class:`KbitState`) of ``weight`` at ``bits`` in {2, 3, 8}."""
    if bits not in KBIT_WIDTHS:
        raise ValueError(f"k-bit NormalFloat here is {KBIT_WIDTHS} bits, got {bits}")
    w = weight.detach().float().contiguous()
    code = _codebook(bits).to(w.device)
    if bits == 8:
        codes, st = bnbf.quantize_blockwise(w, code=code, blocksize=blocksize)
        packed, absmax = codes.reshape(-1), st.absmax.float()
    else:
        codes, absmax = quantize_blockwise_codebook(w, code, blocksize)
        packed = pack_codes(codes, bits)
    state = KbitState(bits, w.shape, blocksize, code, absmax)
    if double_quant:
        state.absmax, state.nested_absmax, state.nested_code, state.offset = _nest(absmax)
    return packed, state


@lru_cache(maxsize=16)
def _level_table(k: int, levels: tuple, device: str) -> torch.Tensor:
    """(2**(4k), 4) FP32: the code-book levels of the 4 codes packed in every 4k-bit value."""
    idx = torch.arange(1 << (4 * k))
    codes = (idx[:, None] >> (torch.arange(4) * k)) & ((1 << k) - 1)
    return torch.tensor(levels, dtype=torch.float32)[codes].to(device)


def _levels_of_packed(packed: torch.Tensor, state: KbitState) -> torch.Tensor:
    """The code-book level of every packed code (padding included), one table look-up per 4 codes.

    Why: shifting out each code and then looking it up costs 10x NF4's dequantisation per call;
    a group of 8 codes is two 4-code halves, each read from a table of all 2**(4k) values.
    """
    k = state.bits
    table = _level_table(k, tuple(state.code.tolist()), str(packed.device))
    if k == 2:  # a 4-code half is one byte
        return F.embedding(packed.long(), table).reshape(-1)
    b = packed.reshape(-1, 3).long()  # k = 3: 12-bit halves, byte 1 split in the middle
    halves = torch.stack([b[:, 0] | ((b[:, 1] & 0xF) << 8), (b[:, 1] >> 4) | (b[:, 2] << 4)], dim=1)
    return F.embedding(halves, table).reshape(-1)


def dequantize_kbit(packed: torch.Tensor, state: KbitState) -> torch.Tensor:
    """The FP32 weight of ``packed`` codes, in its original shape.

    Equal bit for bit to the reference ``dequantize_blockwise_codebook(unpack_codes(...))``.
    """
    n = state.shape.numel()
    scales = state.scales()
    if state.bits == 8:
        st = bnbf.QuantState(absmax=scales, code=state.code, blocksize=state.blocksize, dtype=torch.float32)
        return bnbf.dequantize_blockwise(packed.reshape(state.shape), st).float()
    if packed.numel() != packed_nbytes(n, state.bits):
        raise ValueError(f"{packed.numel()} packed bytes do not hold {n} {state.bits}-bit codes")
    vals = _levels_of_packed(packed, state)
    padded = scales.numel() * state.blocksize
    vals = F.pad(vals, (0, padded - vals.numel())) if vals.numel() < padded else vals[:padded]
    return (vals.view(-1, state.blocksize) * scales[:, None]).view(-1)[:n].view(state.shape)
