import bitsandbytes.functional as bnbf
import pytest
import torch

from espnet_p4q.quant.normalfloat import (
    dequantize_blockwise_codebook,
    int_absmax_codebook,
    normalfloat_codebook,
    quantize_blockwise_codebook,
)

FIELD_NOTES_NF4 = [-1.0, -0.6961928, -0.5250731, -0.3949175, -0.2844414, -0.1847734, -0.0910500, 0.0,
                   0.0795803, 0.1609302, 0.2461123, 0.3379152, 0.4407098, 0.5626170, 0.7229568, 1.0]


def test_nf4_codebook_equals_bitsandbytes():
    ours = normalfloat_codebook(4)
    theirs = bnbf.get_4bit_type("nf4", device="cpu").float().sort().values
    assert ours.shape == (16,)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, torch.tensor(FIELD_NOTES_NF4), atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_k_bit_codebooks_are_normalfloat(k):
    cb = normalfloat_codebook(k)
    assert cb.numel() == 2**k
    assert torch.all(cb[1:] > cb[:-1])
    assert cb[0] == -1.0 and cb[-1] == 1.0
    assert (cb == 0).sum() == 1
    assert (cb > 0).sum() == 2 ** (k - 1) and (cb < 0).sum() == 2 ** (k - 1) - 1


def test_bad_bit_width_is_refused():
    with pytest.raises(ValueError, match="2 <= k <= 8"):
        normalfloat_codebook(1)


def test_reference_quantiser_reproduces_bitsandbytes_nf4_codes():
    """Our codebook quantiser with the NF4 levels picks the same values as bitsandbytes."""
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    codes, absmax = quantize_blockwise_codebook(w, normalfloat_codebook(4), 64)
    ours = dequantize_blockwise_codebook(codes, absmax, normalfloat_codebook(4), w.shape, 64)
    packed, state = bnbf.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type="nf4")
    theirs = bnbf.dequantize_4bit(packed, state)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("blocksize", [64, 128])
@pytest.mark.parametrize("dist", ["normal", "laplace"])
def test_nf4_error_below_int4_absmax(blocksize, dist):
    torch.manual_seed(0)
    # trained weights are bell-shaped (NF4's premise); for uniform weights int4 would win
    if dist == "normal":
        w = torch.randn(512, 512)
    else:
        w = torch.distributions.Laplace(0.0, 1.0).sample((512, 512))
    packed, state = bnbf.quantize_4bit(w, blocksize=blocksize, compress_statistics=False, quant_type="nf4")
    assert packed.dtype == torch.uint8 and packed.numel() == w.numel() // 2  # two weights a byte
    nf4_mse = (bnbf.dequantize_4bit(packed, state) - w).pow(2).mean()
    cb = int_absmax_codebook(4)
    codes, absmax = quantize_blockwise_codebook(w, cb, blocksize)
    int4_mse = (dequantize_blockwise_codebook(codes, absmax, cb, w.shape, blocksize) - w).pow(2).mean()
    assert nf4_mse < 0.9 * int4_mse  # N(0,1), block 64: 0.0085 vs 0.0116 (FIELD_NOTES)
