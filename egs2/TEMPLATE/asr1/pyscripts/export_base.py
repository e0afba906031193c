#!/usr/bin/env python3
"""Export a base model this recipe trained, so that it can ship and be imported with
``run.sh --pretrained_model DIR`` (stage 5 then imports it instead of training).

The model is packed with espnet2's own ``pack`` (config, model, the sentencepiece model and the
feature statistics it refers to, ``meta.yaml``) and unpacked into OUTPUT_DIR, so the directory
has the layout of an unpacked ESPnet model-zoo download. Next to it go the record of how it was
made: ``train_epochs.log`` (the per-epoch summary lines of espnet2's train.log and its accounting
line), ``scores.txt`` (the Sum/Avg line of every scored set of the fp32 system, when scored) and
``provenance.json`` (config and corpus checksums, seed, training wall time, git commit).

    export_base.py --exp_dir exp/asr_train_bpe_unigram158 --output_dir pretrained/synth_sa_base
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from espnet_p4q.cli import ArgumentParser, guarded


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--exp_dir", type=Path, required=True, help="exp/asr_<tag> of a finished stage 5")
    p.add_argument("--output_dir", type=Path, required=True)
    p.add_argument("--train_config", type=Path, help="the training YAML given to stage 5 (recorded)")
    p.add_argument("--data_dir", type=Path, default=Path("data"))
    p.add_argument("--command", default="", help="the command that reproduces this base (recorded)")
    return p


@guarded("export_base.py")
def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from espnet2.main_funcs.pack_funcs import pack

    exp = args.exp_dir
    config = exp / "config.yaml"
    model = (exp / "base.pth").resolve()
    if not config.is_file() or not model.is_file():
        raise SystemExit(f"{exp}: no config.yaml / base.pth (has stage 5 finished?)")
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    options = [cfg["bpemodel"]] if cfg.get("bpemodel") else []
    stats = (cfg.get("normalize_conf") or {}).get("stats_file")
    if stats:
        options.append(stats)
    out = args.output_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export.", dir=out.parent))  # same file system
    try:
        zpath = tmp / "model.zip"
        pack(files={"asr_model_file": model}, yaml_files={"asr_train_config": config},
             outpath=zpath, option=options)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmp / "model")
        zpath.unlink()
        pack_dir = tmp / "model"
        # train.log, preceded by the logs p4q.sh kept of interrupted runs (train.<time>.log): the
        # epoch summaries of the whole training, in order.
        logs = sorted(exp.glob("train.[0-9]*.log")) + [exp / "train.log"]
        texts = [f.read_text(encoding="utf-8", errors="replace") for f in logs if f.is_file()]
        if texts:
            keep = [ln for text in texts for ln in text.splitlines()
                    if re.search(r"\d+epoch results:|# Accounting:|# Ended|average_nbest_models.*Averaging", ln)]
            (pack_dir / "train_epochs.log").write_text("\n".join(keep) + "\n", encoding="utf-8")
        scores = []
        for res in sorted((exp / "decode_fp32").glob("*/score_wer/result.txt")):
            line = next((ln for ln in res.read_text(encoding="utf-8").splitlines() if "Sum/Avg" in ln), "")
            scores.append(f"{res.parent.parent.name}\t{' '.join(line.split())}")
        if scores:
            (pack_dir / "scores.txt").write_text("\n".join(scores) + "\n", encoding="utf-8")
        # wall time of the training: the sum over the run and its interrupted predecessors
        walls = [int(m[-1]) for m in (re.findall(r"# Accounting: time=(\d+)", t) for t in texts) if m]
        wall = sum(walls) if walls else None
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = None
        corpus = {}
        for name in ("train/text", "train/wav.scp", "dev/text", "corpus_stats.json"):
            f = args.data_dir / name
            if f.is_file():
                corpus[name] = sha256(f)
        audio_dir = args.data_dir / "local" / "audio_dir"  # written by synth_sa's local/data.sh
        corpus_name = Path(audio_dir.read_text(encoding="utf-8").strip()).name if audio_dir.is_file() else None
        prov = {
            "corpus_name": corpus_name, "exp_dir": str(exp), "model_file": model.name, "model_sha256": sha256(model),
            "train_config": str(args.train_config) if args.train_config else None,
            "train_config_sha256": sha256(args.train_config) if args.train_config else None,
            "seed": cfg.get("seed"), "train_wall_seconds": wall, "git_commit": commit,
            "corpus_sha256": corpus, "reproduce": args.command,
        }
        (pack_dir / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(pack_dir, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {exp} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
