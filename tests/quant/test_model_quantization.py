"""Packed NF4 on a real (tiny) ESPnet Conformer AED: storage, accuracy, round trip, errors."""

import bitsandbytes as bnb
import pytest
import torch

from conftest import model_outputs
from espnet_p4q.models.asr_model import build_asr_model, load_fp32_asr_model
from espnet_p4q.patterns import PatternError
from espnet_p4q.quant.apply import describe, quantize_model
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.layers import NF4Conv, NF4Embedding, is_packed
from espnet_p4q.quant.serialize import QuantizedModelError, load_packed_into, read_quantized, save_quantized

NF4_ALL = QuantConfig.from_yaml("conf/quant/nf4.yaml")


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture()
def fp32_model(tiny_model_files):
    return load_fp32_asr_model(*tiny_model_files)[0].eval()


def test_targets_are_packed_4bit_in_memory(fp32_model):
    names = quantize_model(fp32_model, NF4_ALL)
    mods = dict(fp32_model.named_modules())
    assert "encoder.embed.conv.2" in names and "decoder.embed.0" in names and "ctc.ctc_lo" in names
    for n in names:
        m = mods[n]
        assert is_packed(m)
        assert m.weight.dtype == torch.uint8  # packed, not dequantised FP32
        assert m.weight.numel() * 2 >= m.weight.quant_state.shape.numel()
    assert isinstance(mods["encoder.encoders.0.self_attn.linear_q"], bnb.nn.Linear4bit)
    assert isinstance(mods["encoder.encoders.0.conv_module.pointwise_conv1"], NF4Conv)
    assert isinstance(mods["decoder.embed.0"], NF4Embedding)
    # depth-wise convolutions and norms are not targets and stay FP32
    assert isinstance(mods["encoder.encoders.0.conv_module.depthwise_conv"], torch.nn.Conv1d)
    report = describe(fp32_model)
    assert report.bits_per_quantized_param < 6.0
    assert "encoder.encoders.0.norm_ff.weight" in report.fp_params


def test_quantized_outputs_close_to_fp32(tiny_model_files, speech_batch):
    """Bound: relative L2 error <= 0.25 on encoder output and decoder logits.

    A random-init tiny model has near-uniform weights (NF4's worst case) and errors add up over
    every layer; measured 0.10-0.16 here. A broken quantiser (wrong code book, scales, layout)
    gives errors near 1.
    """
    fp32 = load_fp32_asr_model(*tiny_model_files)[0]
    ref = model_outputs(fp32, speech_batch)
    quantize_model(fp32, NF4_ALL)
    out = model_outputs(fp32, speech_batch)
    enc_err, ctc_err, dec_err = (_rel(o, r) for o, r in zip(out, ref))
    assert enc_err <= 0.25 and dec_err <= 0.25 and ctc_err <= 0.25, (enc_err, ctc_err, dec_err)
    assert enc_err > 0  # it really is quantised


def test_save_load_round_trip_is_bit_identical(tiny_model_files, speech_batch, tmp_path):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, NF4_ALL)
    fingerprint = save_quantized(model, NF4_ALL, tmp_path / "model.pth")
    fresh, _ = build_asr_model(tiny_model_files[0])
    load_packed_into(fresh, read_quantized(tmp_path / "model.pth"))
    a, b = model.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    for x, y in zip(model_outputs(model, speech_batch), model_outputs(fresh, speech_batch)):
        assert torch.equal(x, y)
    assert read_quantized(tmp_path / "model.pth")["fingerprint"] == fingerprint


def test_pattern_matching_nothing_lists_module_names(fp32_model):
    cfg = QuantConfig(targets=[r"encoder\.no_such_layer"])
    with pytest.raises(PatternError) as e:
        quantize_model(fp32_model, cfg)
    assert "encoder.encoders.0.self_attn.linear_q" in str(e.value)
    assert "no_such_layer" in str(e.value)


def test_corrupt_and_truncated_files_are_refused(tiny_model_files, tmp_path):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, NF4_ALL)
    good = tmp_path / "model.pth"
    save_quantized(model, NF4_ALL, good)
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(QuantizedModelError, match="corrupt or truncated"):
        read_quantized(tmp_path / "trunc.pth")
    with pytest.raises(QuantizedModelError, match="no such"):
        read_quantized(tmp_path / "absent.pth")
    # a flipped payload byte inside a tensor is caught by the checksum
    payload = torch.load(good, weights_only=True)
    payload["blob"][len(payload["blob"]) // 2] ^= 0xFF
    torch.save(payload, tmp_path / "flipped.pth")
    with pytest.raises(QuantizedModelError, match="checksum"):
        read_quantized(tmp_path / "flipped.pth")


def test_file_for_another_structure_is_refused(tiny_model_files, tmp_path):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, NF4_ALL)
    save_quantized(model, NF4_ALL, tmp_path / "model.pth")
    payload = read_quantized(tmp_path / "model.pth")
    other, _ = build_asr_model(tiny_model_files[0])
    del other.decoder.decoders[0]  # structure differs from the file
    with pytest.raises(QuantizedModelError):
        load_packed_into(other, payload)


def test_bad_quant_config_is_refused(tmp_path):
    p = tmp_path / "q.yaml"
    p.write_text("targets: ['x']\nblocksize: 48\n")
    with pytest.raises(ValueError, match="blocksize"):
        QuantConfig.from_yaml(p)
    p.write_text("targets: ['x']\nblock_size: 64\n")
    with pytest.raises(ValueError, match="unknown quantisation option"):
        QuantConfig.from_yaml(p)
