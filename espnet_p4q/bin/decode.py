"""Decode with espnet2's beam search: one base loaded once, per-speaker adapters swapped in place.

Two ways to name the audio:

  --data_dirs data/spk1_test data/spk2_test --output_dir OUT
      writes OUT/<set>/text and OUT/<set>/decode.json (audio seconds, decoding seconds, RTF);
      a set whose text exists is skipped unless --overwrite.
  --data_path_and_name_and_type wav.scp,speech,sound --utt2spk utt2spk --output_dir OUT
      the layout of espnet2.bin.asr_inference (used by the recipe's decoding jobs):
      writes OUT/1best_recog/text and OUT/decode.json.

The model: --base nf4:DIR | fp32:CONFIG,MODEL, or --asr_train_config C --asr_model_file M
(packed when M lies in a directory written by espnet_p4q.bin.quantize). Per speaker:
  --adapter_dir DIR   LoRA adapters DIR/<spk>/adapter.pth, swapped in when the speaker changes
  --adapter FILE      one adapter for everything (e.g. the pretrained LoRA without adaptation)
  --model_dir DIR     full fine-tuning: DIR/<spk>/model.pth (FP32) or a packed DIR/<spk>/
Decoding options (beam_size, ctc_weight, ...) come from --config YAML, as for asr_inference.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import yaml


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="nf4:DIR or fp32:CONFIG,MODEL")
    p.add_argument("--asr_train_config", type=Path)
    p.add_argument("--asr_model_file", type=Path)
    p.add_argument("--config", "--decode_config", dest="decode_config", type=Path, required=True,
                   help="YAML of Speech2Text options (beam_size, ctc_weight ...)")
    p.add_argument("--data_dirs", type=Path, nargs="+")
    p.add_argument("--data_path_and_name_and_type", help="WAV_SCP,speech,sound (asr_inference layout)")
    p.add_argument("--utt2spk", type=Path, help="speaker of each utterance (with --data_path_and_name_and_type)")
    p.add_argument("--output_dir", type=Path, required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--adapter_dir", type=Path, help="per-speaker LoRA adapters: DIR/<spk>/adapter.pth")
    g.add_argument("--adapter", type=Path, help="one adapter for every utterance")
    g.add_argument("--model_dir", type=Path, help="per-speaker full models: DIR/<spk>/model.pth or packed DIR/<spk>/")
    p.add_argument("--ngpu", type=int, default=0, help="1: decode on the GPU")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--log_level", default="INFO")
    return p


def read_pairs(path: Path) -> "OrderedDict[str, str]":
    out = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise SystemExit(f"decode: {path}:{n}: expected 'key value'")
            out[parts[0]] = parts[1].strip()
    return out


def write_text_atomic(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def base_spec_from_args(args):
    from espnet_p4q.tasks.systems import BaseSpec

    if args.base:
        return BaseSpec.parse(args.base)
    if not (args.asr_train_config and args.asr_model_file):
        raise SystemExit("decode: give --base, or --asr_train_config and --asr_model_file")
    if (args.asr_model_file.parent / "quant.yaml").is_file():
        return BaseSpec.parse(f"nf4:{args.asr_model_file.parent}")
    return BaseSpec("fp32", args.asr_train_config, args.asr_model_file)


def jobs(args) -> List[Tuple[Path, Path, "OrderedDict[str, str]", Dict[str, str]]]:
    """(text output, json output, {utt: wav}, {utt: spk}) per output file."""
    if args.data_path_and_name_and_type:
        scp = Path(args.data_path_and_name_and_type.split(",")[0])
        wavs = read_pairs(scp)
        spk = read_pairs(args.utt2spk) if args.utt2spk else {}
        return [(args.output_dir / "1best_recog" / "text", args.output_dir / "decode.json", wavs, spk)]
    if not args.data_dirs:
        raise SystemExit("decode: give --data_dirs or --data_path_and_name_and_type")
    out = []
    for d in args.data_dirs:
        text = args.output_dir / d.name / "text"
        if text.is_file() and not args.overwrite:
            continue
        out.append((text, args.output_dir / d.name / "decode.json", read_pairs(d / "wav.scp"),
                    read_pairs(d / "utt2spk")))
    return out


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [decode] %(message)s")
    # espnet2 calls the deprecated torch.cuda.amp.autocast; its warning is only noise in job logs
    warnings.filterwarnings("ignore", message=".*autocast.*", category=FutureWarning)
    per_speaker = args.adapter_dir or args.model_dir
    if per_speaker and args.data_path_and_name_and_type and not args.utt2spk:
        raise SystemExit("decode: per-speaker models need --utt2spk")
    todo = jobs(args)
    if not todo:
        logging.info("every set already decoded in %s", args.output_dir)
        return 0

    import kaldiio
    import numpy as np
    import torch
    from espnet2.bin.asr_inference import Speech2Text

    from espnet_p4q.lora.adapter_io import load_adapter, read_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.tasks.asr_model import resolved_config
    from espnet_p4q.tasks.systems import BaseSpec, load_base

    with open(args.decode_config, encoding="utf-8") as f:
        decode_conf = yaml.safe_load(f) or {}
    device = "cuda" if args.ngpu > 0 else "cpu"
    spec = base_spec_from_args(args)

    def new_speech2text(s: BaseSpec):
        cfg = resolved_config(s.config)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
            yaml.safe_dump(cfg, tmp)
        try:
            s2t = Speech2Text(asr_train_config=tmp.name, asr_model_file=None, device=device,
                              bpemodel=cfg.get("bpemodel"), **decode_conf)
        finally:
            os.unlink(tmp.name)
        base = load_base(s, into=s2t.asr_model)
        s2t.asr_model.to(device).eval()
        return s2t, base

    s2t, base = new_speech2text(spec)
    first_adapter = args.adapter
    if args.adapter_dir:
        first_spk = next(iter(todo[0][3].values()))
        first_adapter = args.adapter_dir / first_spk / "adapter.pth"
    if first_adapter:
        inject_lora(s2t.asr_model, LoRAConfig(**read_adapter(first_adapter)["lora_config"]))
        if args.adapter:
            load_adapter(s2t.asr_model, args.adapter, base.fingerprint)
        s2t.asr_model.eval()
    current = None

    def switch_to(spk: str):
        nonlocal s2t, current
        if spk == current:
            return
        if args.adapter_dir:
            load_adapter(s2t.asr_model, args.adapter_dir / spk / "adapter.pth", base.fingerprint)
        elif args.model_dir:
            own = args.model_dir / spk
            if (own / "quant.yaml").is_file():
                s2t, _ = new_speech2text(BaseSpec.parse(f"nf4:{own}"))
            else:
                load_base(BaseSpec("fp32", spec.config, own / "model.pth"), into=s2t.asr_model)
                s2t.asr_model.to(device).eval()
        current = spk
        logging.info("speaker %s", spk)

    for k, (text_out, json_out, wavs, utt2spk) in enumerate(todo, 1):
        order = sorted(wavs, key=lambda u: (utt2spk.get(u, ""), u)) if per_speaker else list(wavs)
        hyps, audio_seconds, t0 = {}, 0.0, time.perf_counter()
        for utt in order:
            if per_speaker:
                if utt not in utt2spk:
                    raise SystemExit(f"decode: no speaker for {utt} in the utt2spk")
                switch_to(utt2spk[utt])
            rate, wav = kaldiio.load_mat(wavs[utt])
            speech = wav.astype(np.float32) / 32768.0 if wav.dtype == np.int16 else wav.astype(np.float32)
            audio_seconds += len(speech) / rate
            with torch.inference_mode():
                results = s2t(speech)
            hyps[utt] = results[0][0].strip() if results else ""
        seconds = time.perf_counter() - t0
        write_text_atomic(text_out, [f"{u} {hyps[u]}\n" if hyps[u] else f"{u}\n" for u in wavs])
        write_text_atomic(json_out, [json.dumps({
            "base": str(spec.model), "utterances": len(hyps), "audio_seconds": audio_seconds,
            "decode_seconds": seconds, "rtf": seconds / max(audio_seconds, 1e-9),
            "adapter_dir": str(args.adapter_dir) if args.adapter_dir else None,
            "adapter": str(args.adapter) if args.adapter else None,
            "model_dir": str(args.model_dir) if args.model_dir else None,
        }, indent=2) + "\n"])
        logging.info("[%d/%d] %d utterances, RTF %.3f -> %s", k, len(todo), len(hyps),
                     seconds / max(audio_seconds, 1e-9), text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
