"""Write an edge package: one self-contained directory a device decodes with.

Layout (every file listed with size and SHA-256 in manifest.json, written last):
- ``model.pth``: the packed NF4 base, as ``espnet_p4q.bin.quantize`` wrote it (fingerprinted);
- ``adapter.pth``: one speaker's LoRA adapter (optional), checked against the base's fingerprint;
- ``config.yaml`` + the files it refers to (BPE model, feature statistics; token list inline);
- ``decode.yaml``: the decoding options (beam size, CTC weight, ...);
- ``lib/espnet_p4q/``: the plugin modules the runtime imports (found from its imports), so the
  device needs only pip packages, listed with the versions used at export in requirements.txt;
- ``decode.py``: the entry point (``python decode.py --help``).

Why ESPnet stays in the installed set: the model classes (Conformer encoder, Transformer decoder,
front end) and the joint CTC/attention beam search are ESPnet's; carrying them without ESPnet would
mean copying them. Its cost is measured by bench/bench_edge.py.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set

import yaml

from espnet_p4q.config_check import read_yaml_mapping
from espnet_p4q.edge.runtime import ADAPTER, DECODE_CONFIG, MANIFEST
from espnet_p4q.fileio import InputError, write_json_atomic, write_text_atomic

RUNTIME = "espnet_p4q.edge.runtime"
REQUIREMENTS = ("torch", "bitsandbytes", "espnet", "sentencepiece", "loralib", "soundfile", "PyYAML", "numpy")
ENTRY_POINT = '''#!/usr/bin/env python3
"""Decode 16 kHz mono audio with this edge package: python decode.py FILE... [--stats out.json]"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lib"))
from espnet_p4q.edge.runtime import main  # noqa: E402

sys.exit(main(["--package", str(HERE), *sys.argv[1:]]))
'''


def _module_file(name: str, root: Path) -> Optional[Path]:
    base = root.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imported_plugin_modules(path: Path, name: str) -> Set[str]:
    """Names of espnet_p4q modules imported anywhere in one source file (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = package.split(".")
                mod = ".".join(parts[: len(parts) - node.level + 1] + ([mod] if mod else []))
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # "from pkg import module"
    return {m for m in found if m == "espnet_p4q" or m.startswith("espnet_p4q.")}


def plugin_closure(entry: str = RUNTIME) -> List[Path]:
    """Source files of ``entry`` and every espnet_p4q module it imports, transitively (with the
    ``__init__.py`` of each package on the way)."""
    import espnet_p4q

    root = Path(espnet_p4q.__file__).resolve().parent.parent
    todo, seen, files = [entry], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name, root)
        if path is None:
            continue  # "from pkg import function": not a module
        files.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imported_plugin_modules(path, name))
    return sorted(files)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _requirements() -> Dict[str, str]:
    out = {}
    for name in REQUIREMENTS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    return out


def export_edge(base_dir: Path, output_dir: Path, decode_config: Path, adapter: Optional[Path] = None) -> Dict:
    """Write the edge package of ``base_dir`` (a packed model directory) to ``output_dir``.

    The directory appears complete or not at all (written beside it, then renamed). Returns the
    manifest.
    """
    from espnet_p4q.lora.adapter_io import AdapterError, read_adapter
    from espnet_p4q.quant.serialize import QuantizedModelError, read_quantized
    from espnet_p4q.models.asr_model import CONFIG_NAME, PACKED_MODEL_NAME, copy_config_with_files

    base_dir, output_dir = Path(base_dir), Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise InputError("output directory exists and is not empty", output_dir)
    try:
        payload = read_quantized(base_dir / PACKED_MODEL_NAME)
    except QuantizedModelError as e:
        raise InputError(f"not a packed base: {e}", base_dir / PACKED_MODEL_NAME) from e
    decode_conf = read_yaml_mapping(decode_config)
    adapter_header = None
    if adapter is not None:
        try:
            adapter_header = read_adapter(adapter)
        except AdapterError as e:
            raise InputError(str(e), adapter) from e
        if adapter_header["base_fingerprint"] != payload["fingerprint"]:
            raise InputError(
                f"the adapter was trained on base {adapter_header['base_fingerprint'][:12]}, not on this "
                f"base ({payload['fingerprint'][:12]})", adapter)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        shutil.copyfile(base_dir / PACKED_MODEL_NAME, tmp / PACKED_MODEL_NAME)
        copy_config_with_files(base_dir / CONFIG_NAME, tmp)
        if adapter_header is not None:
            shutil.copyfile(adapter_header["path"], tmp / ADAPTER)
        write_text_atomic(tmp / DECODE_CONFIG, yaml.safe_dump(decode_conf, sort_keys=False))
        import espnet_p4q

        src_root = Path(espnet_p4q.__file__).resolve().parent.parent
        for f in plugin_closure():
            dest = tmp / "lib" / f.relative_to(src_root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        write_text_atomic(tmp / "decode.py", ENTRY_POINT)
        (tmp / "decode.py").chmod(0o755)
        reqs = _requirements()
        write_text_atomic(tmp / "requirements.txt", "".join(f"{k}=={v}\n" for k, v in reqs.items() if v))
        files = {
            str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        manifest = {
            "format": "espnet_p4q.edge", "version": 1,
            "base_fingerprint": payload["fingerprint"], "quant_config": payload["quant_config"],
            "adapter": None if adapter_header is None else {
                "source": str(adapter_header["path"]), "lora_config": adapter_header["lora_config"],
                "params": adapter_header.get("params"), "meta": adapter_header.get("meta")},
            "decode_config": decode_conf, "requirements": reqs, "python": platform.python_version(),
            "files": files, "total_bytes": sum(f["bytes"] for f in files.values()),
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        if output_dir.exists():
            output_dir.rmdir()  # empty (checked above)
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
