"""End-to-end beam-search decoding on CPU: FP32 vs packed NF4 vs NF4 + a speaker adapter.

    python bench/bench_decode.py [--base egs2/synth_sa/asr1/pretrained/synth_sa_base] [--reps 3]
    python bench/bench_decode.py --model whisper [--base exp/whisper] --beam_size 4 [--reps 2]

Why: a forward pass (bench_nf4.py) hides what decoding costs (the decoder runs once per beam
step), so this times what a user waits for: the same utterances decoded with the recipe's
decoding settings (conf/decode.yaml), batch 1, one thread, by every system in ONE process, the
systems interleaved repetition by repetition (rotating order) so drifts in machine load hit all
alike. The base goes through the recipe's own steps (pyscripts/import_pretrained.py, then
``espnet_p4q.bin.quantize``); the adapter is the recipe's LoRA (conf/lora/rank4.yaml) with
seeded random non-zero ``lora_B``, saved and loaded through the project's adapter files.
``--model whisper``: Whisper base from its verified cache (``--base``, as built by
``espnet_p4q.bin.build_whisper``), made an espnet2 model directory by that CLI's --espnet_dir,
packed with conf/quant/nf4_whisper.yaml, adapter conf/lora/whisper.yaml, decoded by
espnet_p4q.decoding's Whisper Speech2Text (prompted beam search) with the Whisper recipe's
decoding config (30 s window, hypotheses cut at 8 tokens a second) and ``--beam_size``.
Utterances are synthesised offline with flite + sox (16 kHz mono) from fixed sentences.

Prints a markdown table and writes bench/out/bench_decode[_whisper][_beamN].json: decoding
seconds, CPU time of the decoding thread and wall time (median over repetitions of the per-utterance sums; systems
interleaved per utterance), RTF, ratio to FP32, peak RSS and RSS after decoding (each system in a
fresh child process: load + decode every utterance once), weight bytes, and hypotheses against
FP32 and against NF4 (identical count and WER of each against the references; run-away: more than
twice the reference's words).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "the rain in spain stays mainly in the plain",
    "please call stella and ask her to bring these things with her from the store",
    "we will meet at the station at half past seven",
    "the children played in the garden until it was dark",
    "he read the letter twice before he answered it",
]
VOICES = ["slt", "rms", "awb", "kal16"]
SYSTEMS = ("fp32", "nf4", "nf4+adapter")
# per model: pretrained source, decoding config, packing, adapter, work dir, JSON name
MODELS = {
    "conformer": {"base": "egs2/synth_sa/asr1/pretrained/synth_sa_base",
                  "decode_config": "egs2/synth_sa/asr1/conf/decode.yaml", "quant_conf": "conf/quant/nf4.yaml",
                  "lora_conf": "conf/lora/rank4.yaml", "work": "bench/out/decode_work", "out": "bench_decode"},
    "whisper": {"base": "exp/whisper", "decode_config": "egs2/synth_sa_whisper/asr1/conf/decode.yaml",
                "quant_conf": "conf/quant/nf4_whisper.yaml",
                "lora_conf": "conf/lora/whisper.yaml", "work": "bench/out/decode_whisper_work",
                "out": "bench_decode_whisper"},
}
# options a child process (peak RSS) gets again, as given or defaulted
CHILD_OPTIONS = ("model", "base", "decode_config", "quant_conf", "lora_conf", "lora_b_std", "utts", "threads",
                 "work", "beam_size")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="conformer")
    p.add_argument("--base", type=Path, help="pretrained ESPnet model directory (as the recipe's "
                   "--pretrained_dir); Whisper: its cache dir. Defaults per --model (MODELS)")
    p.add_argument("--decode_config", type=Path)
    p.add_argument("--beam_size", type=int, help="overrides the decoding config's beam size")
    p.add_argument("--quant_conf", type=Path)
    p.add_argument("--lora_conf", type=Path)
    p.add_argument("--lora_b_std", type=float, default=0.02, help="std of the random lora_B")
    p.add_argument("--utts", type=int, default=12)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    p.add_argument("--work", type=Path, help="cache: imported base, packed base, adapter, audio")
    p.add_argument("--out", type=Path, help="JSON (default bench/out/<bench_decode[_whisper]>[_beamN].json)")
    p.add_argument("--label", default="", help="free text stored in the JSON (e.g. the code state)")
    p.add_argument("--rss_probe", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in MODELS[args.model].items():
        if key != "out" and getattr(args, key) is None and value is not None:
            setattr(args, key, REPO / value if isinstance(value, str) else value)
    if args.out is None:
        beam = "" if args.beam_size is None else f"_beam{args.beam_size}"
        args.out = REPO / f"bench/out/{MODELS[args.model]['out']}{beam}.json"
    return args


def decoding_options(args) -> dict:
    import yaml

    conf = {}
    if args.decode_config is not None:
        with open(args.decode_config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
    if args.beam_size is not None:
        conf["beam_size"] = args.beam_size
    return conf


def _run(cmd):
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)


def make_audio(work: Path, n: int):
    """n (utt id, wav path, reference text) synthesised with flite voices, resampled by sox."""
    out = []
    wav_dir = work / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        text, voice = SENTENCES[i % len(SENTENCES)], VOICES[i % len(VOICES)]
        utt = f"utt{i:02d}_{voice}"
        wav = wav_dir / f"{utt}.wav"
        if not wav.is_file():
            raw = wav_dir / f".{utt}.raw.wav"
            _run(["flite", "-voice", voice, "-t", text, "-o", raw])
            _run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", wav])
            raw.unlink()
        out.append((utt, wav, text))
    return out


def prepare_models(args) -> dict:
    """Imported FP32 base, packed NF4 directory and an adapter file, built once into --work."""
    work = args.work
    base, nf4 = work / "base", work / "nf4"
    if not (base / "base.pth").is_file() and args.model == "whisper":
        _run([sys.executable, "-m", "espnet_p4q.bin.build_whisper", "--cache_dir", args.base,
              "--espnet_dir", base, "--log_level", "WARNING"])
    elif not (base / "base.pth").is_file():
        _run([sys.executable, REPO / "egs2/TEMPLATE/asr1/pyscripts/import_pretrained.py",
              "--src", args.base, "--output_dir", base, "--final_dir", base.resolve()])
    if not (nf4 / "size.json").is_file():
        _run([sys.executable, "-m", "espnet_p4q.bin.quantize", "--asr_train_config", base / "config.yaml",
              "--asr_model_file", base / "base.pth", "--quant_conf", args.quant_conf, "--output_dir", nf4,
              "--log_level", "WARNING"])
    adapter = work / f"adapter_std{args.lora_b_std:g}.pth"
    if not adapter.is_file():
        import torch

        from espnet_p4q.lora.adapter_io import save_adapter
        from espnet_p4q.lora.config import LoRAConfig
        from espnet_p4q.lora.inject import inject_lora
        from espnet_p4q.models.base import BaseSpec, load_base

        loaded = load_base(BaseSpec.parse(f"nf4:{nf4}"))
        cfg = LoRAConfig.from_yaml(args.lora_conf)
        inject_lora(loaded.model, cfg)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for n, p in loaded.model.named_parameters():
                if n.endswith("lora_B"):
                    p.copy_(torch.randn(p.shape, generator=g) * args.lora_b_std)
        save_adapter(loaded.model, adapter, loaded.fingerprint, cfg, {"made_by": "bench/bench_decode.py"})
    return {"fp32": f"fp32:{base / 'config.yaml'},{base / 'base.pth'}", "nf4": f"nf4:{nf4}",
            "adapter": adapter, "base_pth": base / "base.pth", "nf4_pth": nf4 / "model.pth"}


def load_system(name: str, paths: dict, decode_conf: dict):
    """An espnet2 Speech2Text whose model holds the system's weights (as espnet_p4q.bin.decode)."""
    from espnet_p4q.decoding import speech2text
    from espnet_p4q.lora.adapter_io import load_adapter, read_adapter
    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import inject_lora
    from espnet_p4q.models.base import BaseSpec, load_base

    spec = BaseSpec.parse(paths["fp32" if name == "fp32" else "nf4"])
    s2t = speech2text(spec.config, decode_conf)
    base = load_base(spec, into=s2t.asr_model)
    if name == "nf4+adapter":
        inject_lora(s2t.asr_model, LoRAConfig(**read_adapter(paths["adapter"])["lora_config"]))
        load_adapter(s2t.asr_model, paths["adapter"], base.fingerprint)
    s2t.asr_model.eval()
    return s2t


def read_wav(path: Path):
    import numpy as np
    import soundfile

    wav, rate = soundfile.read(str(path), dtype="int16")
    return wav.astype(np.float32) / 32768.0, rate


def decode_one(s2t, speech):
    """(hypothesis, wall seconds, CPU seconds of this thread) of one utterance.

    Why CPU time too: on a shared machine wall time includes waiting for a core; the decoding
    thread's CPU time (one intra-op thread, so all the work is on it) does not.
    """
    import torch

    t0, c0 = time.perf_counter(), time.thread_time()
    with torch.inference_mode():
        res = s2t(speech)
    c1, t1 = time.thread_time(), time.perf_counter()
    return (res[0][0].strip() if res else ""), t1 - t0, c1 - c0


def decode_all(s2t, audio):
    """{utt: hypothesis} of every utterance, in order."""
    return {utt: decode_one(s2t, speech)[0] for utt, speech in audio}


def wer(refs, hyps) -> float:
    """Word error rate in %, case-insensitive (the token list is upper case)."""
    import jiwer

    keys = sorted(refs)
    return 100.0 * jiwer.wer([refs[k].upper() for k in keys], [hyps[k].upper() or "<EMPTY>" for k in keys])


def rss_now_and_peak() -> tuple:
    """(resident bytes now, peak resident bytes) of this process's own memory.

    Why /proc and not getrusage: Linux carries ``ru_maxrss`` over fork + exec, so a child started
    by the (large) benchmark process would report the parent's peak.
    """
    with open("/proc/self/status") as f:
        kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmRSS", "VmHWM")}
    return kb["VmRSS"] * 1024, kb["VmHWM"] * 1024


def rss_probe(args, paths, decode_conf, audio) -> None:
    """Child process: load one system, decode every utterance once, print peak RSS (load included)
    and the RSS after decoding, in bytes."""
    import gc

    s2t = load_system(args.rss_probe, paths, decode_conf)
    gc.collect()
    decode_all(s2t, audio)
    now, peak = rss_now_and_peak()
    print(json.dumps({"peak_rss_bytes": peak, "rss_after_bytes": now}))


def rss_of(args, name: str) -> dict:
    """{peak_rss_bytes, rss_after_bytes} of one system alone in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--rss_probe", name]
    for key in CHILD_OPTIONS:
        if getattr(args, key) is not None:
            cmd += [f"--{key}", str(getattr(args, key))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import logging
    import warnings

    import torch

    from espnet_p4q.quant.apply import describe

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    decode_conf = decoding_options(args)
    utts = make_audio(args.work, args.utts)
    paths = prepare_models(args)
    audio = [(u, read_wav(w)[0]) for u, w, _ in utts]
    if args.rss_probe:
        return rss_probe(args, paths, decode_conf, audio)
    refs = {u: t for u, _, t in utts}
    audio_seconds = sum(len(a) for _, a in audio) / 16000

    systems = {name: load_system(name, paths, decode_conf) for name in args.systems}
    for s2t in systems.values():  # warm-up (allocator, one-time re-packing), not timed
        decode_all(s2t, audio[:1])
    names = list(systems)
    wall = {n: [0.0] * args.reps for n in names}
    cpu = {n: [0.0] * args.reps for n in names}
    hyps = {n: {} for n in names}
    k = 0
    for rep in range(args.reps):
        for utt, speech in audio:  # systems interleaved per utterance, order rotating
            for name in names[k % len(names):] + names[: k % len(names)]:
                h, w, c = decode_one(systems[name], speech)
                wall[name][rep] += w
                cpu[name][rep] += c
                if hyps[name].setdefault(utt, h) != h:
                    raise RuntimeError(f"{name}: hypothesis of {utt} changed between repetitions")
            k += 1

    ref_sys = "fp32" if "fp32" in systems else names[0]
    fp32_w = describe(systems[ref_sys].asr_model).weight_bytes
    med = {n: (statistics.median(cpu[n]), statistics.median(wall[n])) for n in names}
    rows = []
    for name in names:
        c, w = med[name]
        wb = describe(systems[name].asr_model).weight_bytes
        row = {
            "system": name, "cpu_seconds": round(c, 3), "wall_seconds": round(w, 3),
            "cpu_seconds_per_rep": [round(t, 3) for t in cpu[name]],
            "wall_seconds_per_rep": [round(t, 3) for t in wall[name]],
            "rtf_cpu": round(c / audio_seconds, 4), "rtf_wall": round(w / audio_seconds, 4),
            "cpu_ratio_vs_fp32": round(c / med[ref_sys][0], 3), "wall_ratio_vs_fp32": round(w / med[ref_sys][1], 3),
            **rss_of(args, name), "weight_bytes": wb, "weight_fraction_of_fp32": round(wb / fp32_w, 4),
            "wer": round(wer(refs, hyps[name]), 2),
            "runaway": sum(len(hyps[name][u].split()) > 2 * len(refs[u].split()) for u in refs),
        }
        for other in ("fp32", "nf4"):
            if other in hyps:
                row[f"identical_to_{other}"] = sum(hyps[name][u] == hyps[other][u] for u in refs)
                row[f"wer_diff_vs_{other}"] = round(row["wer"] - wer(refs, hyps[other]), 2)
        rows.append(row)

    result = {
        "label": args.label, "model": args.model, "base": str(args.base), "decode_config": decode_conf,
        "threads": args.threads,
        "utterances": len(audio), "audio_seconds": round(audio_seconds, 2), "reps": args.reps,
        "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" :\t"),
        "cpu_avx512_bf16": "avx512_bf16" in open("/proc/cpuinfo").read(),
        "torch": torch.__version__, "rows": rows, "hypotheses": hyps, "references": refs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.model} ({args.base.name}): {len(audio)} utterances, {audio_seconds:.1f} s audio, beam "
          f"{decode_conf.get('beam_size')}, ctc_weight {decode_conf.get('ctc_weight')}, batch 1, "
          f"{args.threads} thread(s), median of {args.reps} interleaved repetitions; CPU {result['cpu']}"
          f" (AVX512-BF16: {result['cpu_avx512_bf16']}) {args.label}")
    print()
    print("| system | CPU s | RTF (CPU) | CPU vs FP32 | wall s | wall vs FP32 | peak RSS MB | RSS after MB "
          "| weights MB | weights / FP32 | WER % | run-away hyps | identical to FP32 | identical to NF4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    n = len(audio)
    for r in rows:
        print(f"| {r['system']} | {r['cpu_seconds']:.2f} | {r['rtf_cpu']:.3f} | {r['cpu_ratio_vs_fp32']:.2f}x | "
              f"{r['wall_seconds']:.2f} | {r['wall_ratio_vs_fp32']:.2f}x | {r['peak_rss_bytes'] / 1e6:.0f} | "
              f"{r['rss_after_bytes'] / 1e6:.0f} | "
              f"{r['weight_bytes'] / 1e6:.3f} | {r['weight_fraction_of_fp32']:.3f} | {r['wer']:.1f} | "
              f"{r['runaway']}/{n} | "
              f"{r.get('identical_to_fp32', '-')}/{n} | {r.get('identical_to_nf4', '-')}/{n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
