"""A packed table as output projection: bitsandbytes' kernel layout, exact lookups, files unchanged."""

import copy

import bitsandbytes.functional as bnbf
import pytest
import torch

from espnet_p4q.quant import layers
from espnet_p4q.quant.apply import describe, dequantized_weight
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.layers import (
    block_scales,
    from_kernel_layout,
    kernel_layout_rows,
    quantize_module,
    to_kernel_layout,
)

BF16 = layers.has_avx512bf16()
NF4 = QuantConfig.from_yaml("conf/quant/nf4_whisper.yaml")
ROWS, DIM = 2051, 128  # rows not a multiple of 32; 2080 x 128 padded weights: large enough for the kernel


def _table(rows=ROWS, dim=DIM, seed=0, **cfg):
    torch.manual_seed(seed)
    q = quantize_module(torch.nn.Embedding(rows, dim), QuantConfig(**{**NF4.to_dict(), **cfg})).eval()
    return q, bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float()


@pytest.mark.parametrize("rows", [64, 70, 2051])
def test_layout_round_trip_and_lookup(rows):
    q, table = _table(rows)
    codes = q.weight.data
    k = to_kernel_layout(codes, rows, DIM)
    assert k.shape == (-(-rows // 32) * 32, DIM // 2)
    assert torch.equal(from_kernel_layout(k, rows, DIM), codes)
    ids = torch.tensor([0, 15, 16, 31, 32, 47, rows - 1])
    nibbles = kernel_layout_rows(k, ids, DIM)
    high_first = torch.stack([codes.view(rows, DIM // 2) >> 4, codes.view(rows, DIM // 2) & 15], -1).reshape(rows, DIM)
    assert torch.equal(nibbles, high_first[ids])


def test_layout_is_bitsandbytes_converters():
    q, _ = _table(96)
    theirs, _ = bnbf._convert_weight_packed_for_cpu(q.weight.data.clone(), copy.deepcopy(q.weight.quant_state))
    assert torch.equal(to_kernel_layout(q.weight.data, 96, DIM), theirs)


@pytest.mark.parametrize("double_quant", [True, False])
def test_block_scales_equal_the_full_dequantisation(double_quant):
    q, _ = _table(70, double_quant=double_quant)
    qs = q.weight.quant_state
    blocks = torch.tensor([0, 1, 5, qs.absmax.numel() - 1])
    assert torch.equal(block_scales(qs, blocks), layers.DequantPlan(q.weight).absmax()[blocks])


@pytest.mark.skipif(not BF16, reason="this CPU lacks AVX512-BF16")
def test_projection_through_the_kernel_keeps_one_exact_table(tmp_path):
    q, table = _table()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    bytes_before = describe(q).weight_bytes
    x = torch.randn(4, DIM)
    with torch.inference_mode():
        y = q.output_projection(x)
    ref = x @ table.t()
    assert q.kernel_layout() and y.shape == (4, ROWS)
    assert ((y - ref).norm() / ref.norm()).item() < 1e-2 and not torch.equal(y, ref)  # bf16 kernel
    # lookups, the full table and the state dict are those of the original layout, bit for bit
    ids = torch.tensor([[0, 31, 32, ROWS - 1], [7, 16, 15, 2048]])
    assert torch.equal(q(ids), table[ids])
    assert torch.equal(q(torch.arange(ROWS)), table)  # many ids: the whole table
    assert torch.equal(dequantized_weight(q), table)
    after = q.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    # the codes are moved, not copied: only the padding rows and the bf16 scales are added
    extra = describe(q).weight_bytes - bytes_before
    assert extra == (2080 - ROWS) * DIM // 2 + 2080 * DIM // 64 * 2
    q.train()
    assert not q.kernel_layout() and torch.equal(q.weight.data, before["weight"])


@pytest.mark.skipif(not BF16, reason="this CPU lacks AVX512-BF16")
def test_beam_expanded_rows_once():
    q, _ = _table()
    x = torch.randn(1, DIM)
    with torch.inference_mode():
        one = q.output_projection(x)
        many = q.output_projection(x.expand(5, DIM))
    assert torch.equal(many, one.expand(5, ROWS))


def test_training_and_grad_inputs_are_exact(monkeypatch):
    q, table = _table()
    x = torch.randn(3, DIM, requires_grad=True)
    y = q.output_projection(x)
    assert torch.equal(y, x @ table.t()) and not q.kernel_layout()
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3, ROWS) @ table)
    monkeypatch.setenv(layers.PATH_ENV, "dequant")
    with torch.no_grad():
        assert torch.equal(q.output_projection(x.detach()), x.detach() @ table.t())
    assert not q.kernel_layout()
