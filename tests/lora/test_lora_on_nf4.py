"""LoRA (loralib) over the packed NF4 base: what trains, what the gradient reaches, swapping."""

import pytest
import torch

from conftest import model_outputs
from espnet_p4q.lora.adapter_io import AdapterError, load_adapter, read_adapter, save_adapter
from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.inject import count_parameters, inject_lora, reset_adapters
from espnet_p4q.lora.layers import LoRAWrapper
from espnet_p4q.models.asr_model import load_fp32_asr_model
from espnet_p4q.quant.apply import quantize_model
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.serialize import pack_state

NF4 = QuantConfig.from_yaml("conf/quant/nf4.yaml")
LORA = LoRAConfig.from_yaml("conf/lora/rank4.yaml")
LORA_WIDE = LoRAConfig(
    targets=[r"encoder\.encoders\.\d+\.(self_attn\.linear_(q|v)|conv_module\.pointwise_conv1)",
             r"decoder\.output_layer"],
    rank=2, alpha=4, bias="lora_only",
)


def nf4_model(files):
    model = load_fp32_asr_model(*files)[0]
    quantize_model(model, NF4)
    return model, pack_state(model, NF4)["fingerprint"]


def asr_loss(model, batch):
    speech, lens, ys, ys_lens = batch
    loss, _, _ = model(speech=speech, speech_lengths=lens, text=ys, text_lengths=ys_lens)
    return loss


def randomize_adapters(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_only_lora_parameters_require_grad(tiny_model_files):
    model, _ = nf4_model(tiny_model_files)
    names = inject_lora(model, LORA)
    assert names and all(isinstance(model.get_submodule(n), LoRAWrapper) for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert trainable == lora and len(lora) == 2 * len(names)


def test_bias_lora_only_adds_the_adapted_layers_biases(tiny_model_files):
    model, _ = nf4_model(tiny_model_files)
    names = inject_lora(model, LORA_WIDE)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {n for n, _ in model.named_parameters() if "lora_" in n}
    expected |= {f"{m}.base.bias" for m in names}
    assert trainable == expected


def test_gradient_reaches_only_lora(tiny_model_files, speech_batch):
    model, _ = nf4_model(tiny_model_files)
    inject_lora(model, LORA_WIDE)  # includes a point-wise NF4 conv and the output layer
    model.train()
    randomize_adapters(model, 0)  # B != 0, so A gets a gradient too
    asr_loss(model, speech_batch).backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n


def test_fresh_adapter_leaves_outputs_unchanged(tiny_model_files, speech_batch):
    model, _ = nf4_model(tiny_model_files)
    before = model_outputs(model, speech_batch)
    inject_lora(model, LORA)
    for a, b in zip(before, model_outputs(model, speech_batch)):
        assert torch.equal(a, b)


def test_adapter_share_at_rank4_is_below_one_percent_of_a_conformer(tiny_model_files):
    model, _ = nf4_model(tiny_model_files)
    inject_lora(model, LORA)
    counts = count_parameters(model)
    per_layer = 4 * (64 + 64)  # rank 4, d=64: A is 4 x 64, B is 64 x 4
    embed = 4 * (64 * 9 + 64)  # encoder.embed.out.0: 64 channels x 9 subsampled mel bins -> 64
    assert counts["adapter_params"] == per_layer * 4 * 2 + embed  # q, k, v, out in 2 encoder blocks
    assert 0 < counts["adapter_share"] < 0.05  # tiny d=64 model; the default config is checked in bin tests


def test_swap_changes_outputs_and_swapping_back_restores_them(tiny_model_files, speech_batch, tmp_path):
    model, fp = nf4_model(tiny_model_files)
    inject_lora(model, LORA)
    base_out = model_outputs(model, speech_batch)
    randomize_adapters(model, 1)
    save_adapter(model, tmp_path / "spk1.pth", fp, LORA, {"speaker": "spk1"})
    out1 = model_outputs(model, speech_batch)
    randomize_adapters(model, 2)
    save_adapter(model, tmp_path / "spk2.pth", fp, LORA, {"speaker": "spk2"})
    out2 = model_outputs(model, speech_batch)
    assert not torch.equal(out1[2], base_out[2]) and not torch.equal(out1[2], out2[2])
    base_ids = {n: p.data_ptr() for n, p in model.named_parameters() if "lora_" not in n}

    header = load_adapter(model, tmp_path / "spk1.pth", fp)
    assert header["meta"]["speaker"] == "spk1"
    for a, b in zip(model_outputs(model, speech_batch), out1):
        assert torch.equal(a, b)
    load_adapter(model, tmp_path / "spk2.pth", fp)
    for a, b in zip(model_outputs(model, speech_batch), out2):
        assert torch.equal(a, b)
    reset_adapters(model)
    for a, b in zip(model_outputs(model, speech_batch), base_out):
        assert torch.equal(a, b)
    # the base was never reloaded: same tensors in the same memory
    assert base_ids == {n: p.data_ptr() for n, p in model.named_parameters() if "lora_" not in n}


def test_adapter_file_holds_only_adapter_tensors(tiny_model_files, tmp_path):
    model, fp = nf4_model(tiny_model_files)
    inject_lora(model, LORA)
    save_adapter(model, tmp_path / "a.pth", fp, LORA)
    payload = read_adapter(tmp_path / "a.pth")
    assert payload["tensors"] and all("lora_" in k for k in payload["tensors"])
    assert payload["base_fingerprint"] == fp
    assert payload["params"]["adapter_params"] == sum(t.numel() for t in payload["tensors"].values())


def test_bad_adapters_are_refused(tiny_model_files, tmp_path):
    model, fp = nf4_model(tiny_model_files)
    inject_lora(model, LORA)
    save_adapter(model, tmp_path / "a.pth", fp, LORA)
    with pytest.raises(AdapterError, match="trained on base"):
        load_adapter(model, tmp_path / "a.pth", "0" * 64)
    data = (tmp_path / "a.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(AdapterError, match="corrupt or truncated"):
        load_adapter(model, tmp_path / "trunc.pth", fp)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(AdapterError, match="corrupt or truncated"):
        load_adapter(model, tmp_path / "junk.pth", fp)
    payload = torch.load(tmp_path / "a.pth", weights_only=True)
    next(iter(payload["tensors"].values()))[0, 0] += 1.0
    torch.save(payload, tmp_path / "tampered.pth")
    with pytest.raises(AdapterError, match="checksum"):
        load_adapter(model, tmp_path / "tampered.pth", fp)
    with pytest.raises(AdapterError, match="no such adapter"):
        load_adapter(model, tmp_path / "missing.pth", fp)
    # rank 8 adapter into a rank 4 model
    other, fp2 = nf4_model(tiny_model_files)
    inject_lora(other, LoRAConfig(targets=LORA.targets, rank=8, alpha=16))
    save_adapter(other, tmp_path / "r8.pth", fp2, LORA)
    with pytest.raises(AdapterError, match="shape"):
        load_adapter(model, tmp_path / "r8.pth", fp)


def test_injecting_twice_is_refused(tiny_model_files):
    model, _ = nf4_model(tiny_model_files)
    inject_lora(model, LORA)
    with pytest.raises(ValueError, match="already"):
        inject_lora(model, LORA)
