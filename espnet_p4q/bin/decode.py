"""Decode with espnet2's beam search: one base loaded once, per-speaker adapters swapped in place.

Two ways to name the audio:

  --data_dirs data/spk1_test data/spk2_test --output_dir OUT
      writes OUT/<set>/text, then OUT/<set>/decode.json (audio seconds, decoding seconds, RTF),
      which marks the set done: a set with both is skipped unless --overwrite.
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
import logging
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from espnet_p4q.cli import ArgumentParser, add_job_options, guarded, parse_and_log
from espnet_p4q.fileio import InputError, read_kaldi_table, write_json_atomic, write_text_atomic


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m espnet_p4q.bin.decode", description=__doc__)
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
    add_job_options(p, ngpu_help="1: decode on the GPU")
    return p


def base_spec_from_args(args):
    from espnet_p4q.models.base import BaseSpec

    if args.base:
        return BaseSpec.parse(args.base)
    if not (args.asr_train_config and args.asr_model_file):
        raise InputError("give --base, or --asr_train_config and --asr_model_file")
    if (args.asr_model_file.parent / "quant.yaml").is_file():
        return BaseSpec.parse(f"nf4:{args.asr_model_file.parent}")
    return BaseSpec("fp32", args.asr_train_config, args.asr_model_file)


Job = Tuple[Path, Path, Path, Dict[str, str], Dict[str, str]]


def jobs(args) -> List[Job]:
    """(text output, json output, wav.scp, {utt: wav}, {utt: spk}) per output; done ones left out.

    decode.json is written after the text and marks the output finished.
    """
    if args.data_path_and_name_and_type:
        scp = Path(args.data_path_and_name_and_type.split(",")[0])
        spk = read_kaldi_table(args.utt2spk) if args.utt2spk else {}
        return [(args.output_dir / "1best_recog" / "text", args.output_dir / "decode.json", scp,
                 read_kaldi_table(scp), spk)]
    if not args.data_dirs:
        raise InputError("give --data_dirs or --data_path_and_name_and_type")
    out = []
    for d in args.data_dirs:
        text, info = args.output_dir / d.name / "text", args.output_dir / d.name / "decode.json"
        if text.is_file() and info.is_file() and not args.overwrite:
            continue
        out.append((text, info, d / "wav.scp", read_kaldi_table(d / "wav.scp"), read_kaldi_table(d / "utt2spk")))
    return out


@guarded("decode")
def main(argv=None) -> int:
    args = parse_and_log(get_parser(), argv, "decode", quiet_autocast=True)
    if (args.adapter_dir or args.model_dir) and args.data_path_and_name_and_type and not args.utt2spk:
        raise InputError("per-speaker models need --utt2spk")
    todo = jobs(args)
    if not todo:
        logging.info("every set already decoded in %s", args.output_dir)
        return 0

    from espnet_p4q.config_check import read_yaml_mapping
    from espnet_p4q.decoding import SpeakerDecoder, decode_utterances

    first_spk = next(iter(todo[0][4].values()), None) if args.adapter_dir else None
    decoder = SpeakerDecoder(base_spec_from_args(args), read_yaml_mapping(args.decode_config),
                             device="cuda" if args.ngpu > 0 else "cpu", adapter=args.adapter,
                             adapter_dir=args.adapter_dir, model_dir=args.model_dir, first_speaker=first_spk)
    for k, (text_out, json_out, scp, wavs, utt2spk) in enumerate(todo, 1):
        json_out.unlink(missing_ok=True)  # the marker goes first, and comes back last
        hyps, audio_seconds, seconds = decode_utterances(decoder, wavs, utt2spk, scp)
        write_text_atomic(text_out, "".join(f"{u} {hyps[u]}\n" if hyps[u] else f"{u}\n" for u in wavs))
        rtf = seconds / max(audio_seconds, 1e-9)
        write_json_atomic(json_out, {
            "base": str(decoder.spec.model), "utterances": len(hyps), "audio_seconds": audio_seconds,
            "decode_seconds": seconds, "rtf": rtf,
            "adapter_dir": str(args.adapter_dir) if args.adapter_dir else None,
            "adapter": str(args.adapter) if args.adapter else None,
            "model_dir": str(args.model_dir) if args.model_dir else None,
        })
        logging.info("[%d/%d] %d utterances, RTF %.3f -> %s", k, len(todo), len(hyps), rtf, text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
