"""k-bit NormalFloat (2, 3, 8 bits): packing layout, round trips, error bounds, layers, LoRA."""

import pytest
import torch
import torch.nn.functional as F

from espnet_p4q.lora.layers import LoRAWrapper
from espnet_p4q.quant.kbit import (
    dequantize_kbit,
    pack_codes,
    packed_nbytes,
    quantize_kbit,
    unpack_codes,
)
from espnet_p4q.quant.kbit_layers import KbitConv, KbitEmbedding, KbitLinear
from espnet_p4q.quant.normalfloat import (
    dequantize_blockwise_codebook,
    normalfloat_codebook,
    quantize_blockwise_codebook,
)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 4099])
def test_pack_round_trip_is_bit_exact(k, n):
    g = torch.Generator().manual_seed(n)
    codes = torch.randint(0, 2**k, (n,), generator=g).to(torch.uint8)
    packed = pack_codes(codes, k)
    assert packed.dtype == torch.uint8 and packed.numel() == packed_nbytes(n, k) == k * -(-n // 8)
    assert torch.equal(unpack_codes(packed, k, n), codes)


def test_pack_layout_is_the_documented_one():
    # 2 bits: 4 codes per byte, first code in the lowest bits
    assert pack_codes(torch.tensor([1, 2, 3, 0, 3, 3, 3, 3], dtype=torch.uint8), 2).tolist() == [
        1 | 2 << 2 | 3 << 4, 0xFF]
    # 3 bits: 8 codes in 3 little-endian bytes, code j at bits 3j..3j+2
    codes = [1, 2, 3, 4, 5, 6, 7, 0]
    value = sum(c << (3 * j) for j, c in enumerate(codes))
    packed = pack_codes(torch.tensor(codes, dtype=torch.uint8), 3)
    assert packed.tolist() == [value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF]


def test_unpack_refuses_a_wrong_length():
    with pytest.raises(ValueError, match="do not hold"):
        unpack_codes(torch.zeros(5, dtype=torch.uint8), 3, 16)


@pytest.mark.parametrize("k", [2, 3, 8])
@pytest.mark.parametrize("double_quant", [False, True])
def test_weight_round_trip_stores_k_bits_and_snaps_to_the_codebook(k, double_quant):
    torch.manual_seed(k)
    w = torch.randn(96, 80)  # 7680 weights: 120 blocks of 64
    packed, state = quantize_kbit(w, k, 64, double_quant)
    assert packed.dtype == torch.uint8 and packed.numel() == w.numel() * k // 8
    assert state.nested == double_quant and state.absmax.numel() == w.numel() // 64
    out = dequantize_kbit(packed, state)
    assert out.shape == w.shape
    # every value is a code-book level times its block's scale
    scaled = out.reshape(-1, 64) / state.scales()[:, None]
    levels = normalfloat_codebook(k)
    assert torch.allclose((scaled[..., None] - levels).abs().min(-1).values, torch.zeros(()), atol=1e-5)
    # and re-quantising the dequantised weight gives the same codes (idempotent)
    packed2, _ = quantize_kbit(out, k, 64, double_quant)
    assert (packed2 != packed).float().mean() < 0.01


def test_error_shrinks_with_bits_and_8_bit_is_close():
    torch.manual_seed(0)
    w = torch.randn(256, 256)
    mse = {k: ((dequantize_kbit(*quantize_kbit(w, k, 64, True)) - w) ** 2).mean().item() for k in (2, 3, 8)}
    assert mse[2] > mse[3] > mse[8]
    assert mse[3] < 0.06 and mse[8] < 5e-4  # measured 0.039, 0.0002 (block 64, N(0,1))
    # 8 bits: bitsandbytes' codes are the nearest NF8 level but for rounding ties
    ref_codes, _ = quantize_blockwise_codebook(w, normalfloat_codebook(8), 64)
    packed, _ = quantize_kbit(w, 8, 64, False)
    assert (packed == ref_codes).float().mean() > 0.99


@pytest.mark.parametrize("k", [2, 3, 8])
def test_linear_forward_is_dequantise_then_linear(k):
    torch.manual_seed(1)
    lin = torch.nn.Linear(64, 48)
    q = KbitLinear.from_linear(lin, k, 64, True)
    assert q.weight.dtype == torch.uint8 and not q.weight.requires_grad
    x = torch.randn(3, 5, 64)
    assert torch.equal(q(x), F.linear(x, q.dequantized_weight(), q.bias))
    assert torch.equal(q.bias, lin.bias)
    assert ((q(x) - lin(x)).norm() / lin(x).norm()).item() < {2: 0.8, 3: 0.35, 8: 0.05}[k]


def test_conv_and_embedding_forward_are_dequantise_then_op():
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(1, 8, 3, stride=2)
    qc = KbitConv.from_conv(conv, 3, 64, False)
    x = torch.randn(2, 1, 9, 9)
    assert torch.equal(qc(x), F.conv2d(x, qc.dequantized_weight(), qc.bias, 2))
    emb = torch.nn.Embedding(30, 16, padding_idx=0)
    qe = KbitEmbedding.from_embedding(emb, 2, 64, True)
    ids = torch.tensor([[0, 5, 29]])
    assert torch.equal(qe(ids), qe.dequantized_weight()[ids])


def test_state_dict_holds_packed_codes_and_stats():
    q = KbitLinear.from_linear(torch.nn.Linear(64, 16), 3, 64, True)
    sd = q.state_dict()
    assert sd["weight"].dtype == torch.uint8 and sd["weight"].numel() == 64 * 16 * 3 // 8
    assert {"weight.nf3_map", "weight.absmax", "weight.nested_absmax", "weight.nested_offset"} <= set(sd)


def test_lora_on_a_kbit_linear_trains_only_the_adapter():
    torch.manual_seed(3)
    base = KbitLinear.from_linear(torch.nn.Linear(32, 8), 2, 64, True)
    packed = base.weight.detach().clone()
    layer = LoRAWrapper(base, r=2, alpha=4, dropout=0.0)
    x, target = torch.randn(16, 32), torch.randn(16, 8)
    opt = torch.optim.SGD([layer.lora_A, layer.lora_B], lr=0.1)
    losses = []
    for _ in range(20):
        loss = ((layer(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert torch.equal(base.weight, packed)  # the packed base is frozen


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("shape, blocksize", [((96, 80), 64), ((7, 9), 64), ((33, 10), 32), ((5, 300), 128)])
def test_fast_dequantisation_equals_the_reference(k, shape, blocksize):
    torch.manual_seed(sum(shape))
    w = torch.randn(shape)
    packed, state = quantize_kbit(w, k, blocksize, True)
    ref = dequantize_blockwise_codebook(unpack_codes(packed, k, w.numel()), state.scales(), state.code,
                                        state.shape, blocksize)
    assert torch.equal(dequantize_kbit(packed, state), ref)
