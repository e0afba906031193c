"""Mixed-precision NormalFloat on the tiny ESPnet Conformer: config, quantisation, files, size report."""

import pytest
import torch

from conftest import model_outputs
from espnet_p4q.fileio import InputError
from espnet_p4q.models.asr_model import build_asr_model, load_fp32_asr_model
from espnet_p4q.patterns import PatternError
from espnet_p4q.quant.apply import describe, quantize_model
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.kbit_layers import KbitConv, KbitEmbedding, KbitLinear
from espnet_p4q.quant.layers import NF4Embedding, NF4Linear
from espnet_p4q.quant.report import size_report
from espnet_p4q.quant.serialize import (
    QuantizedModelError,
    load_packed_into,
    pack_state,
    read_quantized,
    save_quantized,
)

NF4_ALL = QuantConfig.from_yaml("conf/quant/nf4.yaml")
MIXED = QuantConfig(**{**NF4_ALL.to_dict(), "bits": 3, "mixed": [
    {"pattern": r"encoder\.embed\.conv\.0", "bits": 8},
    {"pattern": r"encoder\.encoders\.0\..*", "bits": 2},
    {"pattern": r"decoder\.embed\.0|ctc\.ctc_lo", "bits": 4},
]})


def _write(tmp_path, text):
    p = tmp_path / "mixed.yaml"
    p.write_text(text)
    return p


def test_mixed_yaml_is_read_and_plain_yaml_means_nf4_everywhere(tmp_path):
    cfg = QuantConfig.from_yaml(_write(tmp_path, "targets: ['x.*']\nbits: 3\nmixed:\n"
                                                 "  - {pattern: 'x\\.a', bits: 8}\n  - {pattern: 'x.*', bits: 2}\n"))
    assert (cfg.bits_for("x.a"), cfg.bits_for("x.b"), cfg.bits_for("y")) == (8, 2, 3)
    assert NF4_ALL.bits == 4 and NF4_ALL.mixed == [] and NF4_ALL.widths() == {4}
    # the stored config of a pure-NF4 model is the dict of before mixed precision
    assert set(NF4_ALL.to_dict()) == {"targets", "exclude", "quant_type", "blocksize", "double_quant",
                                      "compute_dtype"}
    assert QuantConfig(**{**NF4_ALL.to_dict(), "bits": 4}).to_dict() == NF4_ALL.to_dict()


@pytest.mark.parametrize("text, message", [
    ("bits: 5", "bits must be one of"),
    ("bits: true", "'bits' must be an integer"),
    ("mixed: {pattern: x, bits: 2}", "'mixed' must be a list"),
    ("mixed: [x]", "'mixed[0]' must be a mapping"),
    ("mixed: [{pattern: x}]", "'mixed[0]' must be a mapping with exactly"),
    ("mixed: [{pattern: x, bits: 2, extra: 1}]", "exactly 'pattern' and 'bits'"),
    ("mixed: [{pattern: '(', bits: 2}]", "'mixed[0].pattern' is not a regular expression"),
    ("mixed: [{pattern: x, bits: 6}]", "'mixed[0].bits' must be one of"),
    ("mixed: [{pattern: 3, bits: 2}]", "'mixed[0].pattern' must be a string"),
    ("quant_type: fp4\nbits: 2", "quant_type must be nf4"),
])
def test_bad_mixed_yaml_is_one_line_naming_the_file(tmp_path, text, message):
    p = _write(tmp_path, "targets: ['x']\n" + text + "\n")
    with pytest.raises(InputError) as e:
        QuantConfig.from_yaml(p)
    assert message in str(e.value)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_a_mixed_pattern_matching_no_target_is_refused(tiny_model_files):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    cfg = QuantConfig(**{**NF4_ALL.to_dict(), "mixed": [{"pattern": r"encoder\.nothing", "bits": 2}]})
    with pytest.raises(PatternError, match="matches no quantisation target"):
        quantize_model(model, cfg)


def test_mixed_model_quantises_saves_loads_and_reports(tiny_model_files, tmp_path, speech_batch):
    fp32 = load_fp32_asr_model(*tiny_model_files)[0]
    ref = model_outputs(fp32, speech_batch)
    quantize_model(fp32, MIXED)
    mods = dict(fp32.named_modules())
    assert isinstance(mods["encoder.embed.conv.0"], KbitConv) and mods["encoder.embed.conv.0"].bits == 8
    assert isinstance(mods["encoder.encoders.0.self_attn.linear_q"], KbitLinear)
    assert mods["encoder.encoders.0.self_attn.linear_q"].bits == 2
    assert mods["encoder.encoders.1.self_attn.linear_q"].bits == 3
    assert isinstance(mods["ctc.ctc_lo"], NF4Linear)
    assert isinstance(mods["decoder.decoders.0.feed_forward.w_1"], KbitLinear)
    out = model_outputs(fp32, speech_batch)
    enc_err = ((out[0] - ref[0]).norm() / ref[0].norm()).item()
    assert 0 < enc_err < 0.6, enc_err  # 2/3-bit on a random-init model: coarse but not broken

    report = describe(fp32)
    bits = {n: b["bits"] for n, b in report.module_bits.items()}
    assert bits["encoder.embed.conv.0"] == 8 and bits["ctc.ctc_lo"] == 4 and bits["decoder.embed.0"] == 4
    assert bits["encoder.encoders.0.feed_forward.w_1"] == 2 and bits["encoder.encoders.1.feed_forward.w_1"] == 3
    per = report.module_bits["encoder.encoders.1.feed_forward.w_1"]
    assert 3.0 < 8 * per["bytes"] / per["params"] < 3.3  # 3 bits + double-quantised scales

    fp = save_quantized(fp32, MIXED, tmp_path / "mixed.pth")
    payload = read_quantized(tmp_path / "mixed.pth")
    assert payload["fingerprint"] == fp
    assert payload["modules"]["encoder.encoders.0.self_attn.linear_q"] == {
        "kind": "kbit_linear", "bits": 2, "blocksize": 64, "compute_dtype": "float32"}
    assert {"nf2_map", "nf3_map", "nf8_map", "quant_map", "nested_quant_map"} <= set(payload["shared"])
    fresh, _ = build_asr_model(tiny_model_files[0])
    cfg = load_packed_into(fresh, payload)
    assert cfg == MIXED
    again = model_outputs(fresh, speech_batch)
    assert all(torch.equal(a, b) for a, b in zip(again, out))
    assert pack_state(fresh, cfg)["fingerprint"] == fp
    assert isinstance(dict(fresh.named_modules())["decoder.embed.0"], NF4Embedding)
    assert isinstance(dict(fresh.named_modules())["encoder.embed.conv.0"], KbitConv)

    size = size_report(describe(fresh), tiny_model_files[1], tmp_path / "mixed.pth", fp)
    assert size["bits_per_module"]["encoder.encoders.0.self_attn.linear_q"]["bits"] == 2
    assert size["bits_per_quantized_param"] < 4.0


def test_pure_nf4_file_is_unchanged_by_mixed_support(tiny_model_files):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, NF4_ALL)
    payload = pack_state(model, NF4_ALL)
    assert "bits" not in payload["quant_config"] and "mixed" not in payload["quant_config"]
    assert all(not s["kind"].startswith("kbit_") for s in payload["modules"].values())
    assert set(payload["shared"]) == {"quant_map", "nested_quant_map"}


def test_truncated_kbit_data_is_refused(tiny_model_files, tmp_path):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, MIXED)
    save_quantized(model, MIXED, tmp_path / "m.pth")
    payload = read_quantized(tmp_path / "m.pth")
    key = "encoder.encoders.1.feed_forward.w_1.weight"
    payload["tensors"][key] = payload["tensors"][key][:-3]
    fresh, _ = build_asr_model(tiny_model_files[0])
    with pytest.raises(QuantizedModelError, match="feed_forward.w_1"):
        load_packed_into(fresh, payload)


def test_kbit_embedding_in_a_model(tiny_model_files, speech_batch):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    cfg = QuantConfig(targets=[r"decoder\.embed\.0"], bits=8)
    quantize_model(model, cfg)
    assert isinstance(model.decoder.embed[0], KbitEmbedding)
    model_outputs(model, speech_batch)


def test_dequantize_once_gives_the_same_outputs_and_reuses_the_weight(tiny_model_files, speech_batch, monkeypatch):
    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, MIXED)
    per_call = model_outputs(model, speech_batch)
    lin = model.decoder.decoders[0].feed_forward.w_1
    assert isinstance(lin, KbitLinear) and lin.dequantized_weight() is not lin.dequantized_weight()
    monkeypatch.setenv("P4Q_KBIT_DEQUANT", "once")
    for a, b in zip(per_call, model_outputs(model, speech_batch)):
        assert torch.equal(a, b)
    first = lin.dequantized_weight()
    assert lin.dequantized_weight() is first
    with torch.no_grad():
        lin.weight.zero_()  # new codes (as load_state_dict copies them): dequantised again
    assert not torch.equal(lin.dequantized_weight(), first)
    monkeypatch.setenv("P4Q_KBIT_DEQUANT", "always")
    with pytest.raises(ValueError, match="P4Q_KBIT_DEQUANT must be one of per_call, once"):
        lin.dequantized_weight()


def test_lora_injection_wraps_kbit_linears_and_trains(tiny_model_files, speech_batch):
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.lora.layers import LoRAWrapper

    model = load_fp32_asr_model(*tiny_model_files)[0]
    quantize_model(model, MIXED)
    names = inject_lora(model, LoRAConfig.from_yaml("conf/lora/rank4.yaml"))
    wrapped = dict(model.named_modules())["encoder.encoders.0.self_attn.linear_q"]
    assert "encoder.encoders.0.self_attn.linear_q" in names and isinstance(wrapped, LoRAWrapper)
    assert isinstance(wrapped.base, KbitLinear) and wrapped.base.bits == 2
    speech, lens, ys, ys_lens = speech_batch
    model.train()
    loss, _, _ = model(speech=speech, speech_lengths=lens, text=ys, text_lengths=ys_lens)
    loss.backward()
    assert wrapped.lora_B.grad.abs().sum() > 0  # B starts at zero, so the gradient reaches B first
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_quantize_cli_with_a_mixed_yaml(tiny_model_files, tmp_path, speech_batch):
    import json

    import yaml

    from espnet_p4q.bin import quantize
    from espnet_p4q.models.asr_model import load_quantized_asr_model

    conf = tmp_path / "mixed.yaml"
    conf.write_text(yaml.safe_dump(MIXED.to_dict()))
    out = tmp_path / "mixed"
    config, model_file = tiny_model_files
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model_file),
                          "--quant_conf", str(conf), "--output_dir", str(out)]) == 0
    size = json.loads((out / "size.json").read_text())
    per = size["bits_per_module"]
    assert per["encoder.encoders.0.feed_forward.w_1"]["bits"] == 2 and per["ctc.ctc_lo"]["bits"] == 4
    assert set(per) == set(size["quantized_modules"])
    model, qcfg, fingerprint = load_quantized_asr_model(out)
    assert qcfg == MIXED and fingerprint == size["fingerprint"]
    assert isinstance(model.encoder.encoders[0].feed_forward.w_1, KbitLinear)
    model_outputs(model, speech_batch)

    # espnet2's beam search decodes it as it decodes an NF4 base
    import numpy as np

    from espnet_p4q.decoding import SpeakerDecoder
    from espnet_p4q.models.base import BaseSpec

    decoder = SpeakerDecoder(BaseSpec.parse(f"nf4:{out}"), {"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.3})
    assert isinstance(decoder.s2t.asr_model.encoder.encoders[0].feed_forward.w_1, KbitLinear)
    with torch.inference_mode():  # (the tiny config has no tokeniser: look at the token ids)
        results = decoder.s2t(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    assert results and len(results[0][2]) > 0


def test_dequantized_weight_of_either_family(tiny_model_files):
    from espnet_p4q.quant.apply import dequantized_weight, is_quantized

    fp32 = load_fp32_asr_model(*tiny_model_files)[0]
    originals = {n: m.weight.detach().clone() for n, m in fp32.named_modules() if hasattr(m, "weight")}
    quantize_model(fp32, MIXED)
    packed = {n: m for n, m in fp32.named_modules() if is_quantized(m)}
    assert {type(m).__name__ for m in packed.values()} >= {"KbitLinear", "KbitConv", "NF4Linear", "NF4Embedding"}
    for n, m in packed.items():
        w = dequantized_weight(m)
        assert w.dtype == torch.float32 and w.shape == originals[n].shape
        bound = {2: 0.9, 3: 0.4, 4: 0.2, 8: 0.04}[MIXED.bits_for(n)]  # 8 bits measured 0.025 (3x3 conv)
        assert ((w - originals[n]).norm() / originals[n].norm()).item() < bound, n


def test_lora_on_kbit_convs_counts_logical_weights_and_fft_starts_from_dequantised(tiny_model_files):
    """Point-wise k-bit convolutions take LoRA too; the base is counted in logical weights; full
    fine-tuning from a mixed model starts from its dequantised weights (models.base)."""
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import count_parameters, inject_lora
    from espnet_p4q.models.base import dequantized_state

    config, model_file = tiny_model_files
    fp32, _ = load_fp32_asr_model(config, model_file)
    n_fp32 = sum(p.numel() for p in fp32.parameters())
    model, _ = load_fp32_asr_model(config, model_file)
    quantize_model(model, MIXED)
    state = dequantized_state(model)
    fresh, _ = build_asr_model(config)
    fresh.load_state_dict(state, strict=True)
    conv = "encoder.encoders.0.conv_module.pointwise_conv1"
    assert isinstance(model.get_submodule(conv), KbitConv)
    assert torch.allclose(state[f"{conv}.weight"], fp32.get_submodule(conv).weight, atol=0.5)
    names = inject_lora(model, LoRAConfig(targets=[r"encoder\.encoders\.0\.conv_module\.pointwise_conv1"]))
    assert names == [conv]
    counts = count_parameters(model)
    assert counts["base_params"] == n_fp32 and counts["adapter_params"] > 0
