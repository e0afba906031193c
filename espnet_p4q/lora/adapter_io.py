"""Adapter files: only the speaker-specific tensors plus the fingerprint of their base.

One base is loaded once; adapters are swapped in place (``copy_`` into the existing LoRA
parameters), so switching speakers never reloads or re-quantises the base. A file trained on
another base, a corrupt or truncated file, or one whose tensors do not fit the model is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.lora.inject import adapter_state, count_parameters
from espnet_p4q.quant.serialize import atomic_torch_save, non_finite_names, tensor_fingerprint

FORMAT = "espnet_p4q.adapter"
VERSION = 1
ADAPTER_NAME = "adapter.pth"


class AdapterError(RuntimeError):
    """An adapter file cannot be used with this model."""

    user_facing = True  # its message names the file: a CLI prints it as one line


def save_adapter(
    model: torch.nn.Module,
    path: os.PathLike,
    base_fingerprint: str,
    lora_config: LoRAConfig,
    meta: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Write the model's adapter tensors to ``path`` atomically; return the header written."""
    tensors = adapter_state(model, bias=lora_config.bias)
    if not tensors:
        raise AdapterError(f"{path}: the model has no LoRA tensors to save")
    bad = non_finite_names(tensors)
    if bad:
        raise AdapterError(f"{path}: refusing to save an adapter with NaN/inf in {', '.join(bad[:3])}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "base_fingerprint": base_fingerprint,
        "lora_config": lora_config.to_dict(),
        "checksum": tensor_fingerprint(tensors),
        "params": count_parameters(model),
        "meta": dict(meta or {}),
    }
    atomic_torch_save({**header, "tensors": tensors}, path)
    return header


def read_adapter(path: os.PathLike) -> Dict[str, Any]:
    """Read an adapter file and check its format and checksum."""
    path = Path(path)
    if path.is_dir():
        path = path / ADAPTER_NAME
    if not path.is_file():
        raise AdapterError(f"{path}: no such adapter file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise AdapterError(f"{path}: corrupt or truncated adapter file ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AdapterError(f"{path}: not an espnet_p4q adapter file")
    if not isinstance(payload.get("tensors"), dict) or "checksum" not in payload:
        raise AdapterError(f"{path}: adapter file without tensors or checksum")
    if payload.get("version") != VERSION:
        raise AdapterError(f"{path}: unsupported adapter version {payload.get('version')}")
    if tensor_fingerprint(payload["tensors"]) != payload["checksum"]:
        raise AdapterError(f"{path}: checksum mismatch, the adapter file is corrupt")
    bad = non_finite_names(payload["tensors"])
    if bad:
        raise AdapterError(f"{path}: the adapter holds NaN/inf in {', '.join(bad[:3])}")
    payload["path"] = str(path)
    return payload


def load_adapter(model: torch.nn.Module, path: os.PathLike, base_fingerprint: str) -> Dict[str, Any]:
    """Swap the adapter at ``path`` into ``model`` in place; return the adapter's header.

    Every LoRA tensor of the model must be in the file with the same shape (a partial swap would
    mix two speakers' adapters), and the file must name this base's fingerprint.
    """
    payload = read_adapter(path)
    where = payload["path"]
    if payload["base_fingerprint"] != base_fingerprint:
        raise AdapterError(
            f"{where}: trained on base {payload['base_fingerprint'][:12]}, but the loaded base is "
            f"{base_fingerprint[:12]}; adapters only work on the base they were trained on"
        )
    bias_mode = payload["lora_config"].get("bias", "none")
    current = {
        n: p for n, p in list(model.named_parameters())
        if "lora_" in n or (bias_mode != "none" and n in payload["tensors"])
    }
    if not any("lora_" in n for n in current):
        raise AdapterError(f"{where}: the model carries no LoRA layers to load it into")
    stored = payload["tensors"]
    missing = sorted(set(n for n in current if "lora_" in n) - set(stored))
    unexpected = sorted(set(stored) - set(current))
    if missing or unexpected:
        raise AdapterError(f"{where}: does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for n, t in stored.items():
        if current[n].shape != t.shape:
            raise AdapterError(f"{where}: {n} has shape {tuple(t.shape)}, the model {tuple(current[n].shape)}")
    with torch.no_grad():
        for n, t in stored.items():
            current[n].copy_(t)
    return {k: v for k, v in payload.items() if k != "tensors"}
