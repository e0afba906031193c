"""Build ESPnet ASR models from their training config and load FP32 or packed 4-bit weights.

A model directory made by ``espnet_p4q.bin.quantize`` holds ``config.yaml`` (the espnet2 training
config), ``model.pth`` (packed weights), and copies of the files the config points to (feature
statistics, BPE model), so it can be moved and loaded anywhere.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from espnet_p4q.config_check import read_yaml_mapping
from espnet_p4q.fileio import InputError
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.serialize import QuantizedModelError, load_packed_into, read_quantized

PACKED_MODEL_NAME = "model.pth"
CONFIG_NAME = "config.yaml"


def read_train_config(path: Path) -> Dict[str, Any]:
    """An espnet2 config.yaml as a dict (missing file, bad YAML: InputError naming it)."""
    return read_yaml_mapping(path)


def _referenced_files(cfg: Dict[str, Any]):
    """(setter, path) pairs for the files an espnet2 ASR config points to."""
    out = []
    stats = (cfg.get("normalize_conf") or {}).get("stats_file")
    if stats:
        out.append((lambda c, v: c["normalize_conf"].__setitem__("stats_file", v), stats))
    if cfg.get("bpemodel"):
        out.append((lambda c, v: c.__setitem__("bpemodel", v), cfg["bpemodel"]))
    return out


def copy_config_with_files(config_path: Path, out_dir: Path) -> Path:
    """Copy an espnet2 config into ``out_dir`` with the files it references, paths made local.

    References may be relative to the working directory (as asr_train writes them) or to the
    config's own directory (as in configs this module wrote).
    """
    cfg = resolved_config(Path(config_path))
    for setter, ref in _referenced_files(cfg):
        src = Path(ref)
        if not src.is_file():
            raise FileNotFoundError(f"{config_path}: referenced file {ref} does not exist")
        shutil.copy2(src, out_dir / src.name)
        setter(cfg, src.name)
    out = out_dir / CONFIG_NAME
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    return out


def resolved_config(config_path: Path) -> Dict[str, Any]:
    """The config with references resolved against its own directory when they are relative."""
    cfg = read_train_config(config_path)
    for setter, ref in _referenced_files(cfg):
        p = Path(ref)
        if not p.is_absolute() and not p.exists() and (config_path.parent / p).exists():
            setter(cfg, str(config_path.parent / p))
    return cfg


def espnet_config_from_train_yaml(
    train_yaml: Path, token_list, out_path: Path, overrides: Optional[Dict[str, Any]] = None
) -> Path:
    """Write a full espnet2 config.yaml (as asr_train writes it) from a training YAML.

    For building models without training them (benchmarks, tests, size checks). ``overrides``
    replace top-level options, e.g. ``{"normalize": "utterance_mvn"}`` where no statistics exist.
    """
    from espnet2.tasks.asr import ASRTask

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    train = read_train_config(Path(train_yaml))
    train.update(overrides or {})
    tmp_yaml = out_path.with_name(f".{out_path.stem}.in.yaml")
    tok = out_path.with_name(f".{out_path.stem}.tokens.txt")
    tmp_yaml.write_text(yaml.safe_dump(train), encoding="utf-8")
    tok.write_text("\n".join(token_list) + "\n", encoding="utf-8")
    try:
        args = ASRTask.get_parser().parse_args(
            ["--config", str(tmp_yaml), "--token_list", str(tok), "--output_dir", str(out_path.parent)]
        )
    finally:
        tmp_yaml.unlink(missing_ok=True)
        tok.unlink(missing_ok=True)
    cfg = vars(args)
    cfg["token_list"] = list(token_list)
    out_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return out_path


def uses_whisper(config: Any) -> bool:
    """Whether an espnet2 config (a Namespace or a dict) has a Whisper encoder or decoder; such
    models come with Whisper's weights, tokenizer and decoding (espnet_p4q.models.whisper_asr)."""
    get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k, None))
    return "whisper" in (get("encoder"), get("decoder"))


def build_asr_model(config_path: Path) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """An ESPnet ASR model with the structure ``config_path`` describes (random weights; a Whisper
    encoder/decoder comes with the verified local Whisper weights its options name)."""
    from espnet2.tasks.asr import ASRTask

    args = argparse.Namespace(**resolved_config(Path(config_path)))
    try:
        if uses_whisper(args):
            from espnet_p4q.models.whisper_asr import build_whisper_model  # imports openai-whisper

            model = build_whisper_model(args)
        else:
            model = ASRTask.build_model(args)
    except (TypeError, ValueError, KeyError, AttributeError, AssertionError, FileNotFoundError) as e:
        raise InputError(f"cannot build an ESPnet ASR model from this config ({type(e).__name__}: {e})",
                         config_path) from e
    return model, args


def load_fp32_asr_model(config_path: Path, model_file: Path) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """An ESPnet ASR model with weights from an espnet2 checkpoint, every tensor checked."""
    model, args = build_asr_model(config_path)
    load_checkpoint_into(model, model_file, config_path)
    return model, args


def load_checkpoint_into(model: torch.nn.Module, model_file: Path, config_path: Path) -> None:
    """Load an espnet2 FP32 checkpoint with every tensor checked; errors name both files."""
    if not Path(model_file).is_file():
        raise InputError("no such model file", model_file)
    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, ...
        raise InputError(f"corrupt or truncated model file ({type(e).__name__})", model_file) from e
    if isinstance(state, dict) and isinstance(state.get("module"), dict):
        state = state["module"]
    if not isinstance(state, dict):
        raise InputError("not an espnet2 model checkpoint (no state dict)", model_file)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise InputError(f"the checkpoint does not fit the model of {config_path}: {first}", model_file) from e


def load_quantized_asr_model(
    model_dir: Path, into: Optional[torch.nn.Module] = None
) -> Tuple[torch.nn.Module, QuantConfig, str]:
    """Load a packed model directory: (model, quant config, base fingerprint).

    With ``into``, the packed weights are loaded in place into an already built model (e.g. the
    ``asr_model`` of an espnet2 Speech2Text, whose beam search keeps references to its parts).
    """
    model_dir = Path(model_dir)
    payload = read_quantized(model_dir / PACKED_MODEL_NAME)
    model = into if into is not None else build_asr_model(model_dir / CONFIG_NAME)[0]
    try:
        cfg = load_packed_into(model, payload)
    except QuantizedModelError as e:
        raise InputError(f"the packed model does not fit the model of {model_dir / CONFIG_NAME}: {e}",
                         model_dir / PACKED_MODEL_NAME) from e
    model.eval()
    logging.info("loaded packed model %s (fingerprint %s)", model_dir, payload["fingerprint"][:12])
    return model, cfg, payload["fingerprint"]


def save_packed_dir(model: torch.nn.Module, quant_config: QuantConfig, config_path: Path, out_dir: Path) -> str:
    """Write a packed model directory: model.pth, config.yaml (+ the files it references) and,
    last, quant.yaml, which marks the directory as packed. Returns the base fingerprint."""
    from espnet_p4q.fileio import write_text_atomic
    from espnet_p4q.quant.serialize import save_quantized

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "quant.yaml").unlink(missing_ok=True)
    fingerprint = save_quantized(model, quant_config, out_dir / PACKED_MODEL_NAME)
    copy_config_with_files(config_path, out_dir)
    write_text_atomic(out_dir / "quant.yaml", yaml.safe_dump(quant_config.to_dict(), sort_keys=False))
    return fingerprint
