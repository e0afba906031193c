"""FP32 vs packed NF4 on CPU: forward time, weight memory and file size of an ESPnet Conformer AED.

    python bench/bench_nf4.py [--train_config egs2/synth_sa/asr1/conf/train.yaml] [--threads 1 2]

Random weights (sizes and speed do not depend on training). Times one 10 s utterance through the
encoder plus one teacher-forced decoder pass, median of --runs runs after --warmup runs, for each
thread count. Prints a markdown table and writes bench/out/bench_nf4.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_config", type=Path, default=REPO / "egs2/synth_sa/asr1/conf/train.yaml")
    p.add_argument("--quant_conf", type=Path, default=REPO / "conf/quant/nf4.yaml")
    p.add_argument("--vocab_size", type=int, default=158, help="token list size (the recipe's --nbpe)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length")
    p.add_argument("--decoder_tokens", type=int, default=30, help="tokens in the decoder pass")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compute_dtypes", nargs="+", default=["float32", "bfloat16"],
                   help="NF4 compute dtypes to time besides FP32")
    p.add_argument("--out", type=Path, default=REPO / "bench/out/bench_nf4.json")
    return p.parse_args(argv)


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def weight_bytes(model):
    from espnet_p4q.quant.apply import describe

    r = describe(model)
    return r.weight_bytes, r


def main(argv=None):
    args = parse_args(argv)
    import torch

    from espnet_p4q.quant.apply import quantize_model
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.quant.serialize import save_quantized
    from espnet_p4q.models.asr_model import build_asr_model, espnet_config_from_train_yaml

    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(args.vocab_size - 3)] + ["<sos/eos>"]
    tmp = tempfile.TemporaryDirectory(prefix="bench_nf4.")
    work = Path(tmp.name)
    config = espnet_config_from_train_yaml(
        args.train_config, tokens, work / "config.yaml",
        {"normalize": "utterance_mvn", "normalize_conf": {}, "specaug": None, "specaug_conf": {}},
    )
    torch.manual_seed(0)
    models = {"fp32": build_asr_model(config)[0].eval()}
    qcfg = QuantConfig.from_yaml(args.quant_conf)
    for dt in args.compute_dtypes:
        m = build_asr_model(config)[0].eval()
        m.load_state_dict(models["fp32"].state_dict())
        quantize_model(m, QuantConfig(**{**qcfg.to_dict(), "compute_dtype": dt}))
        models[f"nf4-{dt}"] = m

    fp32_file, nf4_file = work / "fp32.pth", work / "nf4.pth"
    torch.save(models["fp32"].state_dict(), fp32_file)
    save_quantized(models[f"nf4-{args.compute_dtypes[0]}"], qcfg, nf4_file)
    n = int(args.seconds * 16000)
    speech = torch.randn(1, n) * 0.1
    lens = torch.tensor([n])
    ys = torch.randint(1, len(tokens) - 1, (1, args.decoder_tokens))
    ys_lens = torch.tensor([args.decoder_tokens])

    def forward(model):
        def run():
            with torch.inference_mode():
                enc, enc_lens = model.encode(speech, lens)
                model.decoder(enc, enc_lens, ys, ys_lens)
        return run

    rows = []
    fp32_mem, _ = weight_bytes(models["fp32"])
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = {name: median_ms(forward(m), args.runs, args.warmup) for name, m in models.items()}
        for name, ms in times.items():
            mem, _ = weight_bytes(models[name])  # after the forward passes (bitsandbytes may re-pack)
            rows.append({
                "system": name, "threads": threads, "forward_ms": round(ms, 2),
                "time_ratio_vs_fp32": round(ms / times["fp32"], 3),
                "weights_bytes": mem, "weights_ratio_vs_fp32": round(fp32_mem / mem, 3),
            })
    n_params = sum(p.numel() for p in models["fp32"].parameters())
    result = {
        "train_config": str(args.train_config), "params": n_params, "vocab_size": args.vocab_size,
        "utterance_seconds": args.seconds, "decoder_tokens": args.decoder_tokens,
        "fp32_file_bytes": os.path.getsize(fp32_file), "nf4_file_bytes": os.path.getsize(nf4_file),
        "file_ratio": round(os.path.getsize(fp32_file) / os.path.getsize(nf4_file), 3),
        "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" :\t"),
        "torch": torch.__version__, "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    tmp.cleanup()

    print(f"model: {args.train_config} ({n_params / 1e6:.2f} M params, vocab {args.vocab_size}); "
          f"{args.seconds:g} s utterance, encoder + decoder pass over {args.decoder_tokens} tokens; "
          f"median of {args.runs}; CPU: {result['cpu']}")
    print(f"files: FP32 {result['fp32_file_bytes'] / 1e6:.2f} MB, NF4 {result['nf4_file_bytes'] / 1e6:.2f} MB, "
          f"ratio {result['file_ratio']:.2f}x")
    print()
    print("| system | threads | forward ms | time vs FP32 | weights MB | weights FP32/x |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['threads']} | {r['forward_ms']:.1f} | {r['time_ratio_vs_fp32']:.2f}x | "
              f"{r['weights_bytes'] / 1e6:.3f} | {r['weights_ratio_vs_fp32']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
