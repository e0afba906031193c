"""Decode data dirs with espnet2's beam search, one base loaded once, per-set adapters swapped in.

    python -m espnet_p4q.bin.decode --base nf4:exp/asr/nf4 --decode_config conf/decode.yaml \\
        --data_dirs data/spk1_test data/spk2_test --output_dir exp/decode_p4q \\
        [--adapter_dir exp/p4q]      # LoRA: ADAPTER_DIR/<speaker>/adapter.pth swapped in per set
        [--model_dir exp/fft_fp32]   # full fine-tuning: MODEL_DIR/<speaker>/ holds that speaker's model

The speaker of a set is the one speaker of its utt2spk. Writes OUTPUT_DIR/<set>/text (Kaldi
text, atomically) and OUTPUT_DIR/<set>/decode.json (audio seconds, decoding seconds, real-time
factor); a set whose text exists is skipped unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="nf4:DIR or fp32:CONFIG,MODEL")
    p.add_argument("--decode_config", type=Path, required=True, help="YAML of Speech2Text options (beam_size, ctc_weight ...)")
    p.add_argument("--data_dirs", type=Path, nargs="+", required=True)
    p.add_argument("--output_dir", type=Path, required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--adapter_dir", type=Path, help="per-speaker LoRA adapters: DIR/<spk>/adapter.pth")
    g.add_argument("--adapter", type=Path, help="one adapter for every set (e.g. the pretrained LoRA)")
    g.add_argument("--model_dir", type=Path, help="per-speaker full models: DIR/<spk>/model.pth or packed DIR/<spk>/")
    p.add_argument("--ngpu", type=int, default=0, help="1: decode on the GPU")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--log_level", default="INFO")
    return p


def set_speaker(data_dir: Path) -> str:
    spks = {line.split()[1] for line in open(data_dir / "utt2spk", encoding="utf-8") if line.strip()}
    if len(spks) != 1:
        raise SystemExit(f"decode: {data_dir}/utt2spk: per-speaker models need one speaker per set, found {len(spks)}")
    return spks.pop()


def write_text_atomic(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [decode] %(message)s")
    todo = [d for d in args.data_dirs if args.overwrite or not (args.output_dir / d.name / "text").is_file()]
    if not todo:
        logging.info("all %d sets already decoded in %s", len(args.data_dirs), args.output_dir)
        return 0

    import torch
    from espnet2.bin.asr_inference import Speech2Text

    from espnet_p4q.lora.adapter_io import load_adapter, read_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.tasks.asr_model import resolved_config
    from espnet_p4q.tasks.systems import BaseSpec, load_base
    from espnet_p4q.train.data import read_audio

    with open(args.decode_config, encoding="utf-8") as f:
        decode_conf = yaml.safe_load(f) or {}

    def new_speech2text(spec: BaseSpec):
        cfg = resolved_config(spec.config)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
            yaml.safe_dump(cfg, tmp)
        try:
            s2t = Speech2Text(asr_train_config=tmp.name, asr_model_file=None, device=device,
                              bpemodel=cfg.get("bpemodel"), **decode_conf)
        finally:
            os.unlink(tmp.name)
        base = load_base(spec, into=s2t.asr_model)
        s2t.asr_model.to(s2t.device)
        return s2t, base

    device = "cuda" if args.ngpu > 0 else "cpu"
    spec = BaseSpec.parse(args.base)
    s2t, base = new_speech2text(spec)
    single = args.adapter or (args.adapter_dir and
                              args.adapter_dir / set_speaker(todo[0]) / "adapter.pth")
    if single:
        lcfg = LoRAConfig(**read_adapter(single)["lora_config"])
        inject_lora(s2t.asr_model, lcfg)
        if args.adapter:
            load_adapter(s2t.asr_model, args.adapter, base.fingerprint)
    s2t.asr_model.eval()

    for i, data_dir in enumerate(todo, 1):
        spk = set_speaker(data_dir) if (args.adapter_dir or args.model_dir) else None
        if args.adapter_dir:
            load_adapter(s2t.asr_model, args.adapter_dir / spk / "adapter.pth", base.fingerprint)
        elif args.model_dir:
            own = args.model_dir / spk
            own_spec = (BaseSpec("fp32", spec.config, own / "model.pth") if (own / "model.pth").is_file()
                        and not (own / "config.yaml").is_file() else BaseSpec.parse(f"nf4:{own}"))
            if own_spec.kind == "fp32":
                load_base(own_spec, into=s2t.asr_model)
                s2t.asr_model.to(device)
            else:
                s2t, _ = new_speech2text(own_spec)
        audio = read_audio(data_dir / "wav.scp")
        t0 = time.perf_counter()
        lines = []
        with torch.inference_mode():
            for utt in sorted(audio):
                results = s2t(audio[utt])
                text = results[0][0].strip() if results else ""
                lines.append(f"{utt} {text}\n" if text else f"{utt}\n")
        seconds = time.perf_counter() - t0
        audio_seconds = sum(len(a) for a in audio.values()) / 16000.0
        write_text_atomic(args.output_dir / data_dir.name / "text", lines)
        (args.output_dir / data_dir.name / "decode.json").write_text(json.dumps({
            "data_dir": str(data_dir), "base": args.base, "utterances": len(lines),
            "audio_seconds": audio_seconds, "decode_seconds": seconds, "rtf": seconds / max(audio_seconds, 1e-9),
            "adapter": str(args.adapter_dir / spk / "adapter.pth") if args.adapter_dir else (str(args.adapter) if args.adapter else None),
            "model_dir": str(args.model_dir / spk) if args.model_dir else None,
        }, indent=2) + "\n")
        logging.info("[%d/%d] %s: %d utterances, RTF %.3f -> %s", i, len(todo), data_dir.name, len(lines),
                     seconds / max(audio_seconds, 1e-9), args.output_dir / data_dir.name / "text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
