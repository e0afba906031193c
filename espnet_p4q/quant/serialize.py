"""Save and load quantised models with their weights packed to 4 bits on disk.

File layout (one ``torch.save`` dict, no pickled classes):
- ``format``/``version``: identifies the file;
- ``quant_config``: the QuantConfig used;
- ``modules``: {module name: kind and hyper-parameters} for every packed module (NF4 kinds
  ``linear``/``conv1d``/``conv2d``/``embedding``; k-bit NormalFloat kinds ``kbit_*`` with their
  ``bits`` and ``blocksize``, see espnet_p4q.quant.kbit_layers);
- ``tensors``: the model's state dict in which packed modules keep bitsandbytes' layout
  (``weight`` uint8 plus ``weight.absmax`` etc.), except that the code books every layer shares
  (``quant_map``, ``nested_quant_map``, ``nf<k>_map``) are stored once under ``shared``. On disk all tensors are
  concatenated into one byte blob with an index: a zip entry per tensor costs about 300 bytes,
  which for a small model is 8% of the 4-bit file;
- ``fingerprint``: SHA-256 over all tensors, so adapters can name the base they were trained on.

Loading rebuilds the packed modules from these tensors (no re-quantisation), so packed weights
are bit-identical after a round trip.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Tuple

import bitsandbytes as bnb
import torch

from espnet_p4q.patterns import replace_module
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.kbit import KBIT_WIDTHS, code_key
from espnet_p4q.quant.kbit_layers import is_kbit, kbit_kind, restore_kbit
from espnet_p4q.quant.layers import NF4Conv, NF4Embedding, empty_linear4bit, is_packed, restore_weight

FORMAT = "espnet_p4q.packed4bit"
VERSION = 1
_SHARED_KEYS = ("quant_map", "nested_quant_map") + tuple(code_key(k) for k in KBIT_WIDTHS)


class QuantizedModelError(RuntimeError):
    """A quantised model file is missing, corrupt, or does not fit the model structure."""

    user_facing = True  # its message names the file: a CLI prints it as one line


def non_finite_names(tensors: Dict[str, torch.Tensor]) -> list:
    """Names of floating-point tensors holding NaN or infinity (a diverged run must not be saved)."""
    return sorted(k for k, t in tensors.items()
                  if torch.is_floating_point(t) and t.numel() and not bool(torch.isfinite(t).all()))


def tensor_fingerprint(tensors: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` in sorted key order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().reshape(-1).contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _module_kind(m: torch.nn.Module) -> Dict[str, Any]:
    if is_kbit(m):
        return kbit_kind(m)
    if isinstance(m, bnb.nn.Linear4bit):
        return {"kind": "linear", "compute_dtype": str(m.compute_dtype).replace("torch.", "")}
    if isinstance(m, NF4Conv):
        return {"kind": f"conv{m.ndim}d", "compute_dtype": m.compute_dtype}
    if isinstance(m, NF4Embedding):
        return {"kind": "embedding", "compute_dtype": m.compute_dtype}
    raise TypeError(type(m).__name__)


def base_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The model's state dict without LoRA tensors (what defines the base)."""
    return {k: v for k, v in model.state_dict().items() if "lora_" not in k}


def pack_state(model: torch.nn.Module, quant_config: QuantConfig) -> Dict[str, Any]:
    """The serialisable dict of a quantised model (see module docstring)."""
    modules = {n: _module_kind(m) for n, m in model.named_modules() if is_packed(m) or is_kbit(m)}
    tensors, shared = {}, {}
    for key, t in base_state(model).items():
        owner, _, leaf = key.partition(".weight.")
        if leaf in _SHARED_KEYS and owner in modules:
            if leaf in shared and not torch.equal(shared[leaf], t):
                raise QuantizedModelError(f"layers disagree on the shared code book {leaf}")
            shared[leaf] = t.detach().clone()
            continue
        tensors[key] = t.detach().clone()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "quant_config": quant_config.to_dict(),
        "modules": modules,
        "shared": shared,
        "tensors": tensors,
    }
    payload["fingerprint"] = tensor_fingerprint({**tensors, **{"shared." + k: v for k, v in shared.items()}})
    return payload


def _to_blob(tensors: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, list]:
    """Concatenate tensors into one uint8 blob; index rows are (name, dtype, shape, offset, nbytes)."""
    parts, index, offset = [], [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)
        index.append([name, str(t.dtype).replace("torch.", ""), list(t.shape), offset, raw.numel()])
        parts.append(raw)
        offset += raw.numel()
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.uint8), index


def _from_blob(blob: torch.Tensor, index: list) -> Dict[str, torch.Tensor]:
    out = {}
    for name, dtype, shape, offset, nbytes in index:
        if offset + nbytes > blob.numel():
            raise QuantizedModelError(f"tensor {name} lies outside the stored data")
        raw = blob[offset: offset + nbytes].clone()
        out[name] = raw.view(getattr(torch, dtype)).reshape(shape)
    return out


def atomic_torch_save(obj: Any, path: os.PathLike) -> None:
    """torch.save to a temporary file in the same directory, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_quantized(model: torch.nn.Module, quant_config: QuantConfig, path: os.PathLike) -> str:
    """Write the packed model to ``path`` atomically; return its fingerprint."""
    payload = pack_state(model, quant_config)
    bad = non_finite_names({**payload["tensors"], **payload["shared"]})
    if bad:
        raise QuantizedModelError(f"{path}: refusing to save a model with NaN/inf in {', '.join(bad[:5])}")
    blob, index = _to_blob({**payload.pop("tensors"), **{"shared." + k: v for k, v in payload.pop("shared").items()}})
    atomic_torch_save({**payload, "blob": blob, "index": index}, path)
    return payload["fingerprint"]


def read_quantized(path: os.PathLike) -> Dict[str, Any]:
    """Read and check a packed model file (format and fingerprint)."""
    path = Path(path)
    if not path.is_file():
        raise QuantizedModelError(f"{path}: no such quantised model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, ...
        raise QuantizedModelError(f"{path}: corrupt or truncated quantised model file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise QuantizedModelError(f"{path}: not an espnet_p4q packed 4-bit model file")
    if payload.get("version") != VERSION:
        raise QuantizedModelError(f"{path}: unsupported version {payload.get('version')}")
    try:
        everything = _from_blob(payload.pop("blob"), payload.pop("index"))
    except (RuntimeError, ValueError, TypeError, AttributeError) as e:
        raise QuantizedModelError(f"{path}: corrupt tensor data ({e})") from e
    if tensor_fingerprint(everything) != payload["fingerprint"]:
        raise QuantizedModelError(f"{path}: checksum mismatch, the file is corrupt")
    bad = non_finite_names(everything)
    if bad:
        raise QuantizedModelError(f"{path}: the model holds NaN/inf in {', '.join(bad[:5])}")
    payload["shared"] = {k[len("shared."):]: v for k, v in everything.items() if k.startswith("shared.")}
    payload["tensors"] = {k: v for k, v in everything.items() if not k.startswith("shared.")}
    return payload


def _packed_stats(tensors: Dict[str, torch.Tensor], shared, name: str, kbit: bool) -> Tuple[torch.Tensor, Dict]:
    prefix = f"{name}.weight."
    stats = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    kbit_maps = {code_key(k) for k in KBIT_WIDTHS}  # bitsandbytes refuses keys it does not know
    stats.update({k: v for k, v in shared.items()
                  if (k != "nested_quant_map" or "nested_absmax" in stats) and (kbit or k not in kbit_maps)})
    return tensors[f"{name}.weight"], stats


def load_packed_into(model: torch.nn.Module, payload: Dict[str, Any]) -> QuantConfig:
    """Turn a freshly built FP model into the packed model described by ``payload``, in place.

    Target modules are rebuilt from the stored packed tensors; every other tensor is loaded from
    the file. Any tensor missing from the file or left over is an error (no silent random weights).
    """
    cfg = QuantConfig(**payload["quant_config"])
    tensors, shared = payload["tensors"], payload["shared"]
    for name, spec in payload["modules"].items():
        try:
            old = model.get_submodule(name)
        except AttributeError as e:
            raise QuantizedModelError(f"the model has no module {name!r} stored in the file") from e
        kind = spec["kind"]
        packed, stats = _packed_stats(tensors, shared, name, kind.startswith("kbit_"))
        if kind.startswith("kbit_"):
            try:
                new = restore_kbit(old, spec, packed, stats)
            except (KeyError, ValueError) as e:
                raise QuantizedModelError(f"{name}: incomplete k-bit module data ({e})") from e
        elif kind == "linear":
            new = empty_linear4bit(old.in_features, old.out_features, old.bias is not None, spec["compute_dtype"], cfg)
            new.weight = restore_weight(packed, stats, module=new)
            if old.bias is not None:
                new.bias = torch.nn.Parameter(torch.empty_like(old.bias, device="cpu"))
        elif kind in ("conv1d", "conv2d"):
            new = NF4Conv(old, restore_weight(packed, stats), spec["compute_dtype"])
        elif kind == "embedding":
            new = NF4Embedding(old, restore_weight(packed, stats), spec["compute_dtype"])
        else:
            raise QuantizedModelError(f"unknown packed module kind {kind!r} for {name}")
        stored = new.kstate.shape if is_kbit(new) else new.weight.quant_state.shape
        if tuple(stored) != tuple(old.weight.shape):
            raise QuantizedModelError(
                f"{name}: stored shape {tuple(stored)} does not fit the "
                f"model's {tuple(old.weight.shape)}"
            )
        replace_module(model, name, new)
    plain = {}
    for key, t in tensors.items():
        owner = key.split(".weight", 1)[0]
        if owner in payload["modules"] and (key == f"{owner}.weight" or key.startswith(f"{owner}.weight.")):
            continue
        plain[key] = t
    missing, unexpected = model.load_state_dict(plain, strict=False)
    missing = [
        k for k in missing
        if "lora_" not in k and not (k.rsplit(".weight", 1)[0] in payload["modules"] and k.endswith(".weight"))
    ]
    if missing or unexpected:
        raise QuantizedModelError(
            f"the file does not fit the model: missing {missing[:10]}, unexpected {unexpected[:10]}"
        )
    return cfg
