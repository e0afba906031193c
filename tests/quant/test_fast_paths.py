"""The fast CPU inference paths of packed modules against the reference (dequantise + F.linear)."""

import bitsandbytes.functional as bnbf
import pytest
import torch
import torch.nn.functional as F

from conftest import model_outputs
from espnet_p4q.quant import layers
from espnet_p4q.quant.apply import quantize_model
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.layers import (
    DequantPlan,
    NF4Embedding,
    NF4Linear,
    cpu_inference_path,
    dequantize_fp32,
    linear_to_4bit,
    on_distinct_rows,
    quantize_module,
)
from espnet_p4q.models.asr_model import load_fp32_asr_model

BF16 = layers.has_avx512bf16()
NF4 = QuantConfig.from_yaml("conf/quant/nf4.yaml")


def _cfg(**kw):
    return QuantConfig(**{**NF4.to_dict(), **kw})


def _reference(q, x):
    """What the packed layer means: its dequantised weight through F.linear, in FP32."""
    w = bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float()
    return F.linear(x, w, q.bias)


@pytest.mark.parametrize("shape", [(128, 128), (158, 128), (144, 144), (37, 64), (5, 8)])
@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_native_dequantisation_equals_bitsandbytes(shape, double_quant, quant_type):
    torch.manual_seed(0)
    w = torch.randn(*shape) * 0.05
    q = linear_to_4bit(torch.nn.Linear(shape[1], shape[0]), _cfg(double_quant=double_quant, quant_type=quant_type))
    q.weight = layers.quantize_weight(w, _cfg(double_quant=double_quant, quant_type=quant_type), module=q)
    ref = bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float()
    assert torch.equal(dequantize_fp32(q.weight), ref)
    assert (dequantize_fp32(q.weight) - w).abs().max() > 0  # it is really 4-bit


@pytest.mark.parametrize("in_out", [(128, 128), (128, 158), (512, 128), (144, 150)])
def test_dequant_path_is_exact(in_out):
    torch.manual_seed(1)
    q = linear_to_4bit(torch.nn.Linear(*in_out), NF4).eval()
    q.set_cpu_path("dequant")
    x = torch.randn(3, 7, in_out[0])
    with torch.inference_mode():
        assert torch.equal(q(x), _reference(q, x))
    assert q.weight.dtype == torch.uint8 and not getattr(q.weight.quant_state, "packing_format_for_cpu", False)


@pytest.mark.skipif(not BF16, reason="this CPU lacks AVX512-BF16")
def test_bnb_path_close_to_reference_in_bf16():
    torch.manual_seed(2)
    q = linear_to_4bit(torch.nn.Linear(256, 1024), NF4).eval()
    q.set_cpu_path("bnb")
    x = torch.randn(4, 256)
    ref = _reference(q, x)
    with torch.inference_mode():
        y = q(x)
    assert q.weight.quant_state.packing_format_for_cpu  # bitsandbytes' blocked layout is in use
    assert ((y - ref).norm() / ref.norm()).item() < 1e-2  # bf16 activations
    assert not torch.equal(y, ref)


@pytest.mark.parametrize("path", ["dequant"] + (["bnb"] if BF16 else []))
def test_expanded_rows_computed_once_with_same_result(path, monkeypatch):
    q = linear_to_4bit(torch.nn.Linear(128, 256), NF4).eval()
    q.set_cpu_path(path)
    mem = torch.randn(1, 9, 128)
    expanded = mem.expand(5, 9, 128)  # what batch beam search passes to source attention
    seen = []
    original = layers.dequantize_fp32 if path == "dequant" else None
    if original:
        monkeypatch.setattr(layers, "F", _CountingF(seen))
    with torch.inference_mode():
        y = q(expanded)
        y_full = q(expanded.contiguous())
    assert y.shape == (5, 9, 256) and y.is_contiguous()
    assert torch.equal(y, y_full)
    if original:
        assert seen[0] == (1, 9, 128) and seen[1] == (5, 9, 128)


class _CountingF:
    """torch.nn.functional with linear() recording its input shapes."""

    def __init__(self, seen):
        self.seen = seen

    def linear(self, x, w, b=None):
        self.seen.append(tuple(x.shape))
        return F.linear(x, w, b)

    def __getattr__(self, name):
        return getattr(F, name)


def test_copies_and_pickles_after_use_rebuild_their_plan():
    import copy
    import io

    q = linear_to_4bit(torch.nn.Linear(64, 64), NF4).eval()
    x = torch.randn(2, 64)
    with torch.inference_mode():
        y = q(x)  # builds the plan (ctypes pointers into q's tensors)
    buf = io.BytesIO()
    torch.save(q, buf)
    buf.seek(0)
    for other in (copy.deepcopy(q), torch.load(buf, weights_only=False)):
        with torch.inference_mode():
            assert torch.equal(other(x), y)
        assert other.__dict__["_dequant_plan"].weight is other.weight  # its own, not q's


def test_on_distinct_rows_leaves_ordinary_inputs_alone():
    x = torch.randn(2, 3, 4)
    calls = []
    y = on_distinct_rows(lambda t: calls.append(t.shape) or t * 2, x)
    assert calls == [(2, 3, 4)] and torch.equal(y, x * 2)


def test_path_selection_and_fallback(monkeypatch):
    assert cpu_inference_path(128, 512, 64, bf16_kernel=True) == "dequant"  # small: dispatch cost
    assert cpu_inference_path(512, 2048, 64, bf16_kernel=True) == "bnb"  # large: weight bandwidth
    assert cpu_inference_path(512, 2048, 64, bf16_kernel=False) == "dequant"  # no AVX512-BF16
    assert cpu_inference_path(512, 51865, 64, bf16_kernel=True) == "dequant"  # out % 32 != 0
    assert cpu_inference_path(144, 4096, 64, bf16_kernel=True) == "dequant"  # in % block != 0
    assert cpu_inference_path(512, 2048, 64, bf16_kernel=False, requested="bnb") == "dequant"
    assert cpu_inference_path(128, 128, 64, requested="reference") == "reference"
    monkeypatch.setenv(layers.PATH_ENV, "reference")
    assert cpu_inference_path(512, 2048, 64, bf16_kernel=True) == "reference"
    monkeypatch.setenv(layers.PATH_ENV, "fastest")
    with pytest.raises(ValueError, match="P4Q_NF4_CPU_PATH"):
        cpu_inference_path(128, 128, 64)


def test_without_native_kernels_falls_back_to_bitsandbytes(monkeypatch):
    q = linear_to_4bit(torch.nn.Linear(128, 96), NF4).eval()
    ref = bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float()
    monkeypatch.setattr(layers, "_native", lambda name: None)
    assert torch.equal(dequantize_fp32(q.weight), ref)
    assert torch.equal(DequantPlan(q.weight).absmax(),
                       (bnbf.dequantize_blockwise(q.weight.quant_state.absmax, q.weight.quant_state.state2)
                        + q.weight.quant_state.offset).float())


class _Records:
    """Stands in for the module's logger and keeps the formatted messages."""

    def __init__(self):
        self.messages = []

    def info(self, msg, *args):
        self.messages.append(msg % args)


def test_path_is_logged_once(monkeypatch):
    records = _Records()
    monkeypatch.setattr(layers, "_logged", set())
    monkeypatch.setattr(layers, "_log", records)
    q = linear_to_4bit(torch.nn.Linear(64, 64), NF4).eval()
    q.set_cpu_path("dequant")
    with torch.inference_mode():
        q(torch.randn(2, 64))
        q(torch.randn(2, 64))
    msgs = [m for m in records.messages if "packed 4-bit linear" in m]
    assert len(msgs) == 1 and "dequant" in msgs[0]


def test_training_and_grad_inputs_take_bitsandbytes_path():
    q = linear_to_4bit(torch.nn.Linear(64, 32), NF4)
    q.set_cpu_path("dequant")
    x = torch.randn(3, 64, requires_grad=True)
    q.eval()
    y = q(x)  # eval, but the input needs a gradient: reference path, differentiable
    y.sum().backward()
    w = bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float()
    torch.testing.assert_close(x.grad, w.sum(0).expand(3, -1))


@pytest.mark.parametrize("dim,block", [(128, 64), (64, 64), (96, 64)])
@pytest.mark.parametrize("n_ids", [6, 200])
def test_embedding_equals_full_table(dim, block, n_ids, monkeypatch):
    """Few ids gather packed rows (when rows are whole blocks), many dequantise the table."""
    torch.manual_seed(3)
    q = quantize_module(torch.nn.Embedding(40, dim), _cfg(blocksize=block))
    assert isinstance(q, NF4Embedding)
    assert q.rows_are_blocks() == (dim % block == 0)
    gathered = []
    original = NF4Embedding.gather_rows
    monkeypatch.setattr(NF4Embedding, "gather_rows", lambda self, x, plan: gathered.append(1) or original(self, x, plan))
    ids = torch.randint(0, 40, (2, n_ids // 2))
    ids[0, 0], ids[-1, -1] = 0, 39
    table = bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state)
    assert torch.equal(q(ids), F.embedding(ids, table))
    assert bool(gathered) == (dim % block == 0 and n_ids * 4 <= 40)


def test_fast_model_outputs_equal_reference_model(tiny_model_files, speech_batch, monkeypatch):
    """The whole tiny Conformer on the fast paths computes what the reference paths compute."""
    fast = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(fast, NF4)
    assert all(m.cpu_path == "dequant" for m in fast.modules() if isinstance(m, NF4Linear))
    monkeypatch.setenv(layers.PATH_ENV, "reference")
    ref = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(ref, NF4)
    assert all(m.cpu_path == "reference" for m in ref.modules() if isinstance(m, NF4Linear))
    for a, b in zip(model_outputs(fast, speech_batch), model_outputs(ref, speech_batch)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
