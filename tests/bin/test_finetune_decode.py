"""LoRA pretraining, per-speaker adaptation, full fine-tuning and decoding on the CI corpus."""

import json

import pytest
import torch
import yaml

from espnet_p4q.bin import decode, finetune, quantize
from espnet_p4q.lora.adapter_io import read_adapter
from espnet_p4q.models.asr_model import load_quantized_asr_model


@pytest.fixture(scope="module")
def nf4_base(tiny_char_model_files, tmp_path_factory):
    config, model = tiny_char_model_files
    out = tmp_path_factory.mktemp("nf4") / "nf4"
    quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                   "--quant_conf", "conf/quant/nf4.yaml", "--output_dir", str(out)])
    return out


@pytest.fixture(scope="module")
def train_conf(tmp_path_factory):
    p = tmp_path_factory.mktemp("conf") / "ft.yaml"
    p.write_text(yaml.safe_dump({"epochs": 3, "batch_size": 4, "lr": 0.005, "seed": 0}))
    return p


def speakers(data, role):
    return (data / f"sa_{role}.list").read_text().split()


def test_lora_pretrain_then_adapt_then_decode(ci_corpus, nf4_base, train_conf, tmp_path):
    spks = speakers(ci_corpus, "tune") + speakers(ci_corpus, "eval")
    assert finetune.main(["--base", f"nf4:{nf4_base}", "--mode", "lora", "--lora_conf", "conf/lora/rank4.yaml",
                          "--train_conf", str(train_conf), "--data_dirs", str(ci_corpus / "train"),
                          "--names", "pretrain", "--output_dir", str(tmp_path / "lora")]) == 0
    pre = tmp_path / "lora" / "pretrain"
    summary = json.loads((pre / "train.json").read_text())
    assert summary["last_loss"] < summary["first_loss"]
    assert 0 < summary["adapter_share"] < 0.1
    fingerprint = load_quantized_asr_model(nf4_base)[2]
    assert read_adapter(pre / "adapter.pth")["base_fingerprint"] == fingerprint

    adapt_dirs = [str(ci_corpus / f"{s}_adapt") for s in spks]
    args = ["--base", f"nf4:{nf4_base}", "--mode", "lora", "--lora_conf", "conf/lora/rank4.yaml",
            "--init_adapter", str(pre / "adapter.pth"), "--train_conf", str(train_conf),
            "--data_dirs", *adapt_dirs, "--names", *spks, "--n_utts", "3", "--output_dir", str(tmp_path / "p4q")]
    assert finetune.main(args) == 0
    files = {s: tmp_path / "p4q" / s / "adapter.pth" for s in spks}
    first = {s: f.stat().st_mtime_ns for s, f in files.items()}
    a0, a1 = (read_adapter(files[s])["tensors"] for s in spks[:2])
    assert any(not torch.equal(a0[k], a1[k]) for k in a0)  # each speaker got its own adapter
    assert finetune.main(args) == 0  # finished speakers are skipped
    assert first == {s: f.stat().st_mtime_ns for s, f in files.items()}

    test_dirs = [str(ci_corpus / f"{s}_test") for s in spks]
    dec = tmp_path / "decode_p4q"
    assert decode.main(["--base", f"nf4:{nf4_base}", "--decode_config", str(_decode_conf(tmp_path)),
                        "--data_dirs", *test_dirs, "--adapter_dir", str(tmp_path / "p4q"),
                        "--output_dir", str(dec)]) == 0
    for s in spks:
        ref_ids = [line.split()[0] for line in open(ci_corpus / f"{s}_test" / "text")]
        hyp_ids = [line.split()[0] for line in open(dec / f"{s}_test" / "text")]
        assert hyp_ids == ref_ids
        info = json.loads((dec / f"{s}_test" / "decode.json").read_text())
        assert info["adapter_dir"] and info["rtf"] > 0


def test_full_finetuning_from_nf4_is_requantised(ci_corpus, nf4_base, train_conf, tmp_path):
    spk = speakers(ci_corpus, "eval")[0]
    assert finetune.main(["--base", f"nf4:{nf4_base}", "--mode", "full", "--train_conf", str(train_conf),
                          "--data_dirs", str(ci_corpus / f"{spk}_adapt"), "--names", spk,
                          "--n_utts", "3", "--output_dir", str(tmp_path / "fft")]) == 0
    model, _, fp = load_quantized_asr_model(tmp_path / "fft" / spk)  # a packed 4-bit model again
    assert (tmp_path / "fft" / spk / "quant.yaml").is_file()  # marks it packed for the decoder
    assert fp != load_quantized_asr_model(nf4_base)[2]
    assert json.loads((tmp_path / "fft" / spk / "train.json").read_text())["adapter_share"] == 1.0
    dec = tmp_path / "dec"
    assert decode.main(["--base", f"nf4:{nf4_base}", "--decode_config", str(_decode_conf(tmp_path)),
                        "--data_dirs", str(ci_corpus / f"{spk}_test"), "--model_dir", str(tmp_path / "fft"),
                        "--output_dir", str(dec)]) == 0
    assert (dec / f"{spk}_test" / "text").is_file()


def test_unsupervised_labels_come_from_a_text_dir(ci_corpus, nf4_base, train_conf, tmp_path):
    spk = speakers(ci_corpus, "eval")[0]
    hyp = tmp_path / "hyp" / f"{spk}_adapt"
    hyp.mkdir(parents=True)
    ids = [line.split()[0] for line in open(ci_corpus / f"{spk}_adapt" / "text")]
    hyp.joinpath("text").write_text("".join(f"{u} HELLO\n" for u in ids))
    assert finetune.main(["--base", f"nf4:{nf4_base}", "--mode", "lora", "--lora_conf", "conf/lora/rank4.yaml",
                          "--train_conf", str(train_conf), "--data_dirs", str(ci_corpus / f"{spk}_adapt"),
                          "--names", spk, "--text_dir", str(tmp_path / "hyp"),
                          "--output_dir", str(tmp_path / "unsup")]) == 0
    assert json.loads((tmp_path / "unsup" / spk / "train.json").read_text())["labels"].endswith("text")


def _decode_conf(tmp_path):
    p = tmp_path / "decode.yaml"
    p.write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.3}))
    return p
