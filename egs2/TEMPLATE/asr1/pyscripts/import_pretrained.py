#!/usr/bin/env python3
"""Import a pretrained ESPnet ASR model directory as a recipe's base model.

Accepted layouts of SRC:
- an unpacked ``espnet2.bin.pack`` archive or model-zoo download: ``SRC/meta.yaml`` names the
  training config (``yaml_files: asr_train_config``) and the model (``files: asr_model_file``),
  with paths relative to SRC;
- a directory with a ``config.yaml`` (at its top, or exactly one below it, e.g. an ESPnet
  ``exp/asr_*`` training directory) and a model file next to it: ``--model_file`` when given,
  else the first of valid.acc.ave.pth, valid.acc.best.pth, base.pth, model.pth, valid.loss.ave.pth,
  latest.pth, else the only ``*.pth`` other than checkpoint.pth.

Writes to ``--output_dir``: ``config.yaml`` and ``base.pth`` (a copy of the model), plus
``pretrained_files/`` holding copies of the files the config refers to that the model needs
(sentencepiece model, feature statistics, token list, ...: keys bpemodel, stats_file, token_list,
non_linguistic_symbols, *_file; training data lists and shape files stay as they are), found relative to SRC, to the config's directory or its parents up to SRC, or
absolute, or relative to SRC's parents up to three levels (an ESPnet exp/asr_* dir refers to files
relative to its recipe directory); the config is rewritten to point at the copies as ``--final_dir/pretrained_files/...``
(relative to the recipe directory, as espnet2 resolves them). ``pretrained_source.txt`` records
where everything came from. ``--final_dir`` lets the caller write into a temporary directory that it
renames afterwards.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional

import yaml

from espnet_p4q.cli import ArgumentParser, guarded

MODEL_NAMES = ("valid.acc.ave.pth", "valid.acc.best.pth", "base.pth", "model.pth",
               "valid.loss.ave.pth", "latest.pth")
PATH_SUFFIXES = (".model", ".npz", ".txt", ".pth", ".yaml", ".json", ".vocab", ".scp", ".npy")


def find_config_and_model(src: Path, model_file: Optional[str]) -> tuple[Path, Path]:
    meta = src / "meta.yaml"
    if meta.is_file():
        with open(meta, encoding="utf-8") as f:
            m = yaml.safe_load(f) or {}
        config = src / m.get("yaml_files", {}).get("asr_train_config", "")
        model = src / (model_file or m.get("files", {}).get("asr_model_file", ""))
        if not config.is_file() or not model.is_file():
            raise SystemExit(f"import_pretrained.py: {meta} does not name an existing "
                             "asr_train_config and asr_model_file")
        return config, model
    if (src / "config.yaml").is_file():
        config = src / "config.yaml"
    else:
        found = sorted(src.rglob("config.yaml"))
        if len(found) != 1:
            raise SystemExit(f"import_pretrained.py: expected one config.yaml in {src}, found "
                             f"{len(found)}: {' '.join(map(str, found)) or 'none'}")
        config = found[0]
    if model_file:
        model = Path(model_file)
        if not model.is_absolute():
            model = src / model if (src / model).is_file() else config.parent / model
        if not model.is_file():
            raise SystemExit(f"import_pretrained.py: no model file {model_file} in {src}")
        return config, model
    for name in MODEL_NAMES:
        if (config.parent / name).is_file():
            return config, config.parent / name
    pths = [p for p in sorted(config.parent.glob("*.pth")) if p.name != "checkpoint.pth"]
    if len(pths) != 1:
        raise SystemExit(f"import_pretrained.py: cannot tell which model file of {config.parent} "
                         f"to use ({len(pths)} *.pth found); pass --pretrained_model_file")
    return config, pths[0]


def needed_at_inference(key: str) -> bool:
    """Keys whose files a model needs to be rebuilt (not training data lists or shape files)."""
    if key in ("bpemodel", "stats_file", "token_list", "non_linguistic_symbols"):
        return True
    return key.endswith("_file") and not key.endswith("shape_file")


def looks_like_path(value: str) -> bool:
    return ("/" in value or value.endswith(PATH_SUFFIXES)) and "\n" not in value and " " not in value


@guarded("import_pretrained.py")
def main(argv: Optional[List[str]] = None) -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, help="pretrained model directory")
    p.add_argument("--output_dir", required=True, help="where to write (may be a temporary dir)")
    p.add_argument("--final_dir", default=None, help="the name output_dir will have at the end")
    p.add_argument("--model_file", default=None, help="model file inside SRC (default: see above)")
    args = p.parse_args(argv)

    src = Path(args.src).resolve()
    if not src.is_dir():
        raise SystemExit(f"import_pretrained.py: not a directory: {args.src}")
    out = Path(args.output_dir)
    final = Path(args.final_dir or args.output_dir)
    config_path, model_path = find_config_and_model(src, args.model_file)
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise SystemExit(f"import_pretrained.py: {config_path} is not a YAML mapping")

    # Relative paths in a packed model are relative to SRC; in an ESPnet exp/asr_* dir they are
    # relative to its recipe directory, two levels up.
    roots = [src]
    d = config_path.parent
    while d != src and src in d.parents:
        roots.append(d)
        d = d.parent
    roots += list(src.parents)[:3]
    copied = {}
    unresolved = []

    def resolve(value: str) -> Optional[Path]:
        cand = Path(value)
        if cand.is_absolute():
            return cand if cand.is_file() else None
        for r in roots:
            if (r / cand).is_file():
                return r / cand
        return None

    def rewrite(obj: Any, key: str = "") -> Any:
        if isinstance(obj, dict):
            return {k: rewrite(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, list):
            if key == "token_list":
                return obj  # the token list itself, inline
            return [rewrite(v, key) for v in obj]
        if isinstance(obj, str) and needed_at_inference(key) and looks_like_path(obj):
            found = resolve(obj)
            if found is None:
                if key in ("bpemodel", "stats_file", "token_list"):
                    unresolved.append(f"{key}: {obj}")
                return obj
            rel = Path(obj.lstrip("/")) if not Path(obj).is_absolute() else Path("abs") / found.name
            dst = out / "pretrained_files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, dst)
            copied[obj] = found
            return str(final / "pretrained_files" / rel)
        return obj

    new_config = rewrite(config)
    if unresolved:
        print("import_pretrained.py: warning: files named in the config were not found under "
              f"{src}: " + "; ".join(unresolved), file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(new_config, f, sort_keys=False, allow_unicode=True)
    shutil.copyfile(model_path, out / "base.pth")
    with open(out / "pretrained_source.txt", "w", encoding="utf-8") as f:
        f.write(f"source: {src}\nconfig: {config_path}\nmodel: {model_path}\n")
        for k, v in copied.items():
            f.write(f"file: {k} <- {v}\n")
    print(f"imported {model_path} with {config_path} ({len(copied)} referenced file(s) copied)")


if __name__ == "__main__":
    sys.exit(main())
