"""k-bit NormalFloat codebooks and a reference block-wise codebook quantiser.

NF4 itself runs through bitsandbytes (``quant_type="nf4"``). The generator here builds the same
construction for any k (QLoRA, Dettmers et al. 2023: quantiles of N(0, 1), asymmetric so that 0 is
exactly representable, normalised to [-1, 1]) so that other bit-widths can be chosen per layer for
mixed precision; for k = 4 it reproduces bitsandbytes' codebook.
"""

from __future__ import annotations

import torch


def normalfloat_codebook(k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the 2**k sorted levels of the k-bit NormalFloat data type, in [-1, 1].

    2**(k-1) positive levels and 2**(k-1) - 1 negative levels are quantiles of N(0, 1) taken at
    evenly spaced probabilities that stop short of the tails by half a step, plus an exact zero.
    """
    if k < 2 or k > 8:
        raise ValueError(f"NormalFloat needs 2 <= k <= 8 bits, got k={k}")
    n = 2**k
    # probability at which the outermost level sits: halfway between the two half-step offsets
    offset = 0.5 * ((1 - 1 / (2 * (n - 1))) + (1 - 1 / (2 * n)))
    p = torch.float64
    n_pos, n_neg = n // 2, n // 2 - 1
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, n_pos + 1, dtype=p)[:-1])
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, n_neg + 1, dtype=p)[:-1])
    levels = torch.cat([pos, torch.zeros(1, dtype=p), neg])
    levels = levels / levels.abs().max()
    return levels.sort().values.to(dtype)


def int_absmax_codebook(k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Symmetric signed-integer levels (-(2**(k-1)-1) .. 2**(k-1)-1) scaled to [-1, 1]."""
    m = 2 ** (k - 1) - 1
    return torch.arange(-m, m + 1, dtype=dtype) / m


def quantize_blockwise_codebook(w: torch.Tensor, codebook: torch.Tensor, blocksize: int = 64):
    """Quantise ``w`` block-wise: scale each block by its absmax, snap to the nearest level.

    Returns (codes uint8 with one code per element, absmax per block). A reference for codebooks
    bitsandbytes does not ship (k != 4, integer baselines); NF4 storage uses bitsandbytes.
    """
    flat = w.detach().reshape(-1).float()
    pad = (-flat.numel()) % blocksize
    blocks = torch.nn.functional.pad(flat, (0, pad)).view(-1, blocksize)
    absmax = blocks.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    scaled = blocks / absmax[:, None]
    cb = codebook.to(scaled.dtype)
    # nearest level by searching the midpoints between sorted levels
    mids = (cb[1:] + cb[:-1]) / 2
    codes = torch.bucketize(scaled, mids).to(torch.uint8)
    return codes.view(-1)[: flat.numel()], absmax


def dequantize_blockwise_codebook(codes, absmax, codebook, shape, blocksize: int = 64):
    """Inverse of :func:`quantize_blockwise_codebook`."""
    n = int(torch.Size(shape).numel())
    pad = (-n) % blocksize
    vals = codebook.float()[torch.nn.functional.pad(codes.long(), (0, pad))].view(-1, blocksize)
    return (vals * absmax[:, None]).view(-1)[:n].view(shape)
