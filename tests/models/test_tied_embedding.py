"""TiedEmbedding: one table for lookup and output projection, packed or not."""

import bitsandbytes.functional as bnbf
import pytest
import torch

from espnet_p4q.models.tied_embedding import PackedTableWeight, TiedEmbedding
from espnet_p4q.quant import layers
from espnet_p4q.quant.apply import quantize_model
from espnet_p4q.quant.config import QuantConfig

NF4 = QuantConfig(**{**QuantConfig.from_yaml("conf/quant/nf4_whisper.yaml").to_dict(), "targets": [r"emb\.table"]})
ROWS, DIM = 2051, 128


class TinyTiedDecoder(torch.nn.Module):
    """As Whisper's decoder uses its table: embed, then ``x @ transpose(weight.to(dtype), 0, 1)``."""

    def __init__(self):
        super().__init__()
        self.emb = TiedEmbedding(torch.nn.Embedding(ROWS, DIM))
        self.mix = torch.nn.Linear(DIM, DIM)

    def forward(self, ids):
        x = self.mix(self.emb(ids))
        return (x @ torch.transpose(self.emb.weight.to(x.dtype), 0, 1)).float()


@pytest.fixture()
def packed():
    torch.manual_seed(0)
    model = TinyTiedDecoder()
    quantize_model(model, NF4)
    table = model.emb.table
    return model.eval(), bnbf.dequantize_4bit(table.weight.data, table.weight.quant_state).float()


def test_weight_stands_for_the_dequantised_table(packed):
    model, table = packed
    w = model.emb.weight
    assert isinstance(w, PackedTableWeight) and w.shape == (ROWS, DIM) and w.T.shape == (DIM, ROWS)
    assert torch.equal(w, table) and torch.equal(w.t().dense(), table.t())
    assert w.to(torch.float32) is w and torch.equal(w.to(torch.float64), table.double())
    assert torch.equal(torch.nn.functional.embedding(torch.tensor([3]), w), table[3:4])


def test_decoder_logits_and_lookup_from_the_packed_table(packed):
    model, table = packed
    ids = torch.tensor([[1, 2, 2050], [40, 41, 42]])
    with torch.inference_mode():
        hidden = model.mix(table[ids])
        logits = model(ids)
        looked_up = model.emb(ids)
    ref = hidden @ table.t()
    assert logits.shape == ref.shape
    if layers.has_avx512bf16():  # bitsandbytes' bf16 kernel
        assert model.emb.table.kernel_layout()
        assert ((logits - ref).norm() / ref.norm()).item() < 1e-2
    else:
        assert torch.equal(logits, ref)
    assert torch.equal(looked_up, table[ids])


def test_gradients_reach_the_inputs_not_the_table(packed):
    model, table = packed
    model.train()
    ids = torch.tensor([[1, 2, 3]])
    model(ids).logsumexp(-1).sum().backward()
    assert model.mix.weight.grad is not None and model.mix.weight.grad.abs().sum() > 0
    assert not model.emb.table.weight.requires_grad and model.emb.table.weight.grad is None


def test_fp32_table_is_the_parameter():
    tied = TiedEmbedding(torch.nn.Embedding(5, 4))
    assert tied.weight is tied.table.weight
