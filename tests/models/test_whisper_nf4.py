"""NF4 Whisper (conf/quant/nf4_whisper.yaml): one packed tied table, file round trip, LoRA swap."""

import dataclasses
import os
import re

import bitsandbytes as bnb
import pytest
import torch

from espnet_p4q.lora.adapter_io import load_adapter, save_adapter
from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.inject import count_parameters, inject_lora, reset_adapters
from espnet_p4q.models.asr_model import load_quantized_asr_model
from espnet_p4q.models.tied_embedding import TiedEmbedding
from espnet_p4q.models.whisper_asr import TOKEN_EMBEDDING, build_whisper_asr_model
from espnet_p4q.models.whisper_tokens import tokenizer_for
from espnet_p4q.quant.apply import describe, quantize_model
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.kbit_layers import KbitConv, KbitEmbedding, KbitLinear
from espnet_p4q.quant.layers import NF4Conv, NF4Embedding, is_packed
from espnet_p4q.quant.serialize import pack_state, save_quantized
from tiny_whisper import DIMS, noise_clip, real_base_config, tiny_whisper, tiny_whisper_config  # noqa: F401

NF4 = QuantConfig.from_yaml("conf/quant/nf4_whisper.yaml")
LORA = LoRAConfig(targets=[r"(encoder\.encoders|decoder\.decoders)\.blocks\.\d+\.attn\.(query|value)"], rank=2, alpha=4)
PROMPT = list(tokenizer_for(DIMS.n_vocab).sot_sequence_including_notimestamps)
# what may stay in full precision: biases, LayerNorms, positional tables, the causal mask
FP_ALLOWED = re.compile(r".*\.bias|.*(_ln|\.ln|\.ln_post)\.weight|.*\.positional_embedding|decoder\.decoders\.mask")


def batch():
    speech = torch.stack([noise_clip(1.0, seed=5), noise_clip(1.0, seed=6)])
    ys = torch.tensor([PROMPT[1:] + [440, 1002, 13], PROMPT[1:] + [291, 50257, -1]])  # -1: padding
    return speech, torch.tensor([16000, 12000]), ys, torch.tensor([6, 5])


def outputs(model):
    speech, lens, ys, ys_lens = batch()
    model.eval()
    with torch.no_grad():
        enc, enc_lens = model.encode(speech, lens)
        dec, _ = model.decoder(enc, enc_lens, ys.clamp(min=0), ys_lens)
    return enc, dec


@pytest.fixture()
def nf4_whisper(tiny_whisper_config):
    model, _ = build_whisper_asr_model(tiny_whisper_config)
    quantize_model(model.eval(), NF4)
    return model


def test_every_linear_conv_and_the_tied_table_are_packed(nf4_whisper):
    model = nf4_whisper
    plain = [n for n, m in model.named_modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding)) and not is_packed(m)]
    assert plain == []
    assert isinstance(model.encoder.encoders.conv1, NF4Conv)
    assert isinstance(model.decoder.decoders.blocks[0].cross_attn.key, bnb.nn.Linear4bit)
    tied = model.get_submodule(TOKEN_EMBEDDING)
    assert isinstance(tied, TiedEmbedding) and isinstance(tied.table, NF4Embedding)
    state = model.state_dict()
    tables = [k for k in state if k.startswith(TOKEN_EMBEDDING) and k.endswith("weight")]
    assert tables == [f"{TOKEN_EMBEDDING}.table.weight"] and state[tables[0]].dtype == torch.uint8
    report = describe(model)
    assert sorted(n for n in report.fp_params if not FP_ALLOWED.fullmatch(n)) == []


def test_output_projection_reads_the_packed_table(nf4_whisper):
    model = nf4_whisper
    tied = model.get_submodule(TOKEN_EMBEDDING)
    table = tied.table.dequantized_weight(torch.float32)
    assert torch.equal(tied.weight, table)
    hidden = {}
    model.decoder.decoders.ln.register_forward_hook(lambda m, i, o: hidden.setdefault("x", o))
    _, dec = outputs(model)
    ref = hidden["x"] @ table.t()
    # bitsandbytes' bf16 kernel where the CPU has AVX512-BF16 (tests/quant/test_kernel_layout.py)
    assert ((dec - ref).norm() / ref.norm()).item() < 1e-2
    assert torch.equal(tied(torch.tensor([[PROMPT[0]]]))[0, 0], table[PROMPT[0]])


def test_nf4_stays_close_to_fp32(nf4_whisper, tiny_whisper_config):
    fp32, _ = build_whisper_asr_model(tiny_whisper_config)
    (enc32, dec32), (enc4, dec4) = outputs(fp32), outputs(nf4_whisper)
    assert torch.nn.functional.cosine_similarity(enc32.flatten(), enc4.flatten(), dim=0) > 0.95
    assert not torch.equal(enc32, enc4)


def test_file_round_trip_is_exact(nf4_whisper, tiny_whisper_config, tmp_path):
    fingerprint = save_quantized(nf4_whisper, NF4, tmp_path / "model.pth")
    fresh, _ = build_whisper_asr_model(tiny_whisper_config)
    loaded, _, fp2 = load_quantized_asr_model(tmp_path, into=fresh)
    assert fp2 == fingerprint
    assert isinstance(loaded.get_submodule(TOKEN_EMBEDDING).table, NF4Embedding)
    for a, b in zip(outputs(nf4_whisper), outputs(loaded)):
        assert torch.equal(a, b)


def test_lora_trains_on_the_packed_model_and_adapters_swap(nf4_whisper, tmp_path):
    model = nf4_whisper
    fp = pack_state(model, NF4)["fingerprint"]
    names = inject_lora(model, LORA)
    assert len(names) == 2 * (DIMS.n_audio_layer + DIMS.n_text_layer)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if "lora_" in n}
    counts = count_parameters(model)
    assert counts["adapter_params"] == len(names) * 2 * (DIMS.n_audio_state + DIMS.n_audio_state)
    base_out = outputs(model)

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    model.train()
    speech, lens, ys, ys_lens = batch()
    loss, _, _ = model(speech=speech, speech_lengths=lens, text=ys, text_lengths=ys_lens)
    loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) if p.requires_grad else p.grad is None, n

    save_adapter(model, tmp_path / "a.pth", fp, LORA)
    out_a = outputs(model)
    reset_adapters(model)
    for x, y in zip(outputs(model), base_out):
        assert torch.equal(x, y)
    load_adapter(model, tmp_path / "a.pth", fp)
    for x, y in zip(outputs(model), out_a):
        assert torch.equal(x, y)
    assert not torch.equal(out_a[1], base_out[1])


# a mixed allocation: the tied table at 2 bits, the first MLP layers at 8, the rest at 3
MIXED = dataclasses.replace(NF4, bits=3, mixed=[{"pattern": r"decoder\.decoders\.token_embedding\.table", "bits": 2},
                                                {"pattern": r".*\.mlp\.0", "bits": 8}])


def test_mixed_widths_keep_the_table_tied_and_the_file_exact(tiny_whisper_config, tmp_path):
    model, _ = build_whisper_asr_model(tiny_whisper_config)
    quantize_model(model.eval(), MIXED)
    tied = model.get_submodule(TOKEN_EMBEDDING)
    assert isinstance(tied.table, KbitEmbedding) and tied.table.bits == 2
    assert isinstance(model.encoder.encoders.conv1, KbitConv) and model.encoder.encoders.conv1.bits == 3
    assert model.decoder.decoders.blocks[0].mlp[0].bits == 8
    assert isinstance(model.decoder.decoders.blocks[0].cross_attn.key, KbitLinear)
    assert [k for k in model.state_dict() if k.startswith(TOKEN_EMBEDDING) and k.endswith("weight")] == [
        f"{TOKEN_EMBEDDING}.table.weight"]  # one packed copy: embedding and output layer
    table = tied.table.dequantized_weight(torch.float32)
    hidden = {}
    model.decoder.decoders.ln.register_forward_hook(lambda m, i, o: hidden.setdefault("x", o))
    _, dec = outputs(model)
    assert torch.allclose(dec, hidden["x"] @ table.t(), atol=1e-5)
    assert torch.equal(tied(torch.tensor([[PROMPT[0]]]))[0, 0], table[PROMPT[0]])

    fingerprint = save_quantized(model, MIXED, tmp_path / "model.pth")
    fresh, _ = build_whisper_asr_model(tiny_whisper_config)
    loaded, _, fp2 = load_quantized_asr_model(tmp_path, into=fresh)
    assert fp2 == fingerprint and isinstance(loaded.get_submodule(TOKEN_EMBEDDING).table, KbitEmbedding)
    for a, b in zip(outputs(model), outputs(loaded)):
        assert torch.equal(a, b)


def test_sensitivity_of_whisper_modules_including_the_tied_table(tiny_whisper_config):
    """Attention-only model: KL from the teacher-forced decoder alone, tied table measured like a layer."""
    from espnet_p4q.quant.sensitivity import by_module, measure_sensitivity

    model, _ = build_whisper_asr_model(tiny_whisper_config)
    speech, lens, ys, ys_lens = batch()
    cfg = dataclasses.replace(NF4, targets=[r"encoder\.encoders\.conv1", r"decoder\.decoders\.token_embedding\.table",
                                            r"decoder\.decoders\.blocks\.0\.mlp\.0"])
    table = by_module(measure_sensitivity(model, cfg, [(speech, lens, ys.clamp(min=0), ys_lens)], widths=(2, 8)))
    assert sorted(table) == ["decoder.decoders.blocks.0.mlp.0", "decoder.decoders.token_embedding.table",
                             "encoder.encoders.conv1"]
    for name, rows in table.items():
        assert rows[2].kl_ctc == rows[8].kl_ctc == 0.0  # no CTC branch
        assert rows[2].kl_att > max(rows[8].kl_att, 0.0), name  # 8 bits: about 0 (float noise either side)
    assert isinstance(model.get_submodule(TOKEN_EMBEDDING).table, torch.nn.Embedding)  # FP32 restored


def test_real_whisper_base_file_ratio(tmp_path):
    """Whisper base: the NF4 file is at least 7.25x smaller than the FP32 state dict."""
    config = real_base_config(tmp_path)
    model, _ = build_whisper_asr_model(config)
    torch.save(model.state_dict(), tmp_path / "fp32.pth")
    quantize_model(model.eval(), NF4)
    save_quantized(model, NF4, tmp_path / "nf4.pth")
    ratio = os.path.getsize(tmp_path / "fp32.pth") / os.path.getsize(tmp_path / "nf4.pth")
    assert ratio >= 7.25, ratio
    report = describe(model)
    assert report.quantized_params > 0.98 * report.total_params
