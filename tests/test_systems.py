"""espnet_p4q.systems: the registry of the comparison's systems (conf/systems.yaml)."""

from __future__ import annotations

import json

import pytest
import yaml

from espnet_p4q.bin import systems as systems_cli
from espnet_p4q.fileio import InputError
from espnet_p4q.systems import DEFAULT_REGISTRY, Layout, load_registry, select

LAYOUT = Layout("exp/asr_x", "exp/asr_x/nf4", "exp/asr_x/lora_pretrain/pretrain/adapter.pth")


def test_shipped_registry_has_the_papers_rows():
    reg = load_registry()
    assert list(reg) == ["fp32", "nf4", "lora_pretrain_nf4", "p4q", "p4q_unsup", "lora_scratch_nf4",
                         "fft_nf4", "fft_fp32"]
    assert reg["p4q"].per_speaker == "adapters" and reg["p4q"].adapt.init == "pretrained"
    assert reg["fft_fp32"].per_speaker == "models" and reg["lora_pretrain_nf4"].per_speaker == "adapter"
    assert reg["p4q_unsup"].adapt.labels == "lora_pretrain_nf4"


def test_layout_places_every_kind_of_system():
    reg = load_registry()
    assert LAYOUT.per_speaker(reg["nf4"]) == ""
    assert LAYOUT.per_speaker(reg["lora_pretrain_nf4"]) == "adapter:exp/asr_x/lora_pretrain/pretrain/adapter.pth"
    assert LAYOUT.per_speaker(reg["fft_nf4"]) == "models:exp/asr_x/adapt_fft_nf4"
    assert LAYOUT.model(reg["fft_fp32"]) == "exp/asr_x/base.pth"
    assert LAYOUT.manifest_entry(reg["fft_nf4"]) == {
        "name": "fft_nf4", "label": "FFT-NF4 per speaker (re-quantised)", "decode_dir": "exp/asr_x/decode_fft_nf4",
        "model_files": [], "speaker_dir": "exp/asr_x/adapt_fft_nf4"}


@pytest.mark.parametrize("entry, message", [
    ({"label": "x", "base": "int8"}, "base must be fp32 or nf4"),
    ({"label": "x", "base": "nf4", "adapt": {"mode": "lora", "train_conf": "c", "init": "warm"}}, "adapt init must be"),
    ({"label": "x", "base": "fp32", "adapt": {"mode": "lora", "train_conf": "c"}}, "LoRA adaptation is on the NF4 base"),
    ({"label": "x", "base": "nf4", "adapt": {"mode": "lora", "train_conf": "c", "labels": "nobody"}},
     "labels come from 'nobody', which is not a system"),
    ({"label": "x", "base": "nf4", "colour": "red"}, r"unknown 'new' option\(s\) colour"),
])
def test_bad_entries_name_the_file(entry, message, tmp_path):
    p = tmp_path / "systems.yaml"
    p.write_text(yaml.safe_dump({"new": entry}))
    with pytest.raises(InputError, match=message) as e:
        load_registry(p)
    assert str(e.value).endswith(f"({p})")


def test_select_names_unknown_systems():
    with pytest.raises(InputError, match="unknown system.s. p4qq; registered: fp32, nf4"):
        select(load_registry(), ["fp32", "p4qq"])


def test_cli_table_and_manifest(tmp_path, capsys):
    args = ["--asr_exp", "exp/asr_x", "--nf4_dir", "exp/asr_x/nf4", "--pretrained_adapter", "A"]
    assert systems_cli.main(["table", *args]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert all(len(r) == 10 and "" not in r for r in rows)
    assert rows[0][:5] == ["fp32", "fp32", "exp/asr_x/config.yaml", "exp/asr_x/base.pth", "-"]
    out = tmp_path / "systems.json"
    assert systems_cli.main(["manifest", *args, "--systems", "fp32 nf4 p4q", "--output", str(out)]) == 0
    m = json.loads(out.read_text())
    assert [s["name"] for s in m["systems"]] == ["fp32", "nf4", "p4q"] and m["reference_system"] == "fp32"
    assert systems_cli.main(["manifest", *args, "--systems", "nf4 p4q", "--output", str(out)]) == 1
    assert "needs --reference_system fp32" in capsys.readouterr().err
    assert DEFAULT_REGISTRY.is_file()
