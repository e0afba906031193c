"""The edge package of the shipped base: file sizes, RAM and RTF on one thread, and what ESPnet costs.

    python bench/bench_edge.py   # after bench/bench_decode.py (reuses its packed base, adapter, audio)

Exports the packed base + the bench adapter with ``espnet_p4q.bin.export_edge`` into
bench/out/edge, then decodes the bench utterances with the package's own decode.py in a fresh
process (OMP_NUM_THREADS=1) and reads its --stats (peak RSS, RTF). ESPnet's share: peak RSS of a
process that only imports torch + bitsandbytes + sentencepiece against one that also imports
espnet2's inference module, and the installed size of the espnet/espnet2 packages.
Prints a markdown table and writes bench/out/bench_edge.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROBE = ("import resource, sys, time; t=time.perf_counter(); {imports}; "
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter() - t)")


def _rss_of_imports(imports: str):
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports)], check=True,
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    rss, secs = out.strip().splitlines()[-1].split()
    return int(rss), float(secs)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=REPO / "bench/out/decode_work")
    p.add_argument("--decode_config", type=Path, default=REPO / "egs2/synth_sa/asr1/conf/decode.yaml")
    p.add_argument("--out", type=Path, default=REPO / "bench/out/bench_edge.json")
    args = p.parse_args(argv)
    adapters = sorted(args.work.glob("adapter_*.pth"))
    wavs = sorted((args.work / "wav").glob("utt*.wav"))
    if not (args.work / "nf4" / "model.pth").is_file() or not adapters or not wavs:
        sys.exit("bench_edge.py: run bench/bench_decode.py first (it builds the packed base, adapter, audio)")
    edge = args.out.parent / "edge"
    shutil.rmtree(edge, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "espnet_p4q.bin.export_edge", "--base_dir", str(args.work / "nf4"),
                    "--adapter", str(adapters[0]), "--decode_config", str(args.decode_config),
                    "--output_dir", str(edge), "--log_level", "WARNING"], check=True, cwd=REPO)
    stats = args.out.parent / "edge_stats.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, str(edge / "decode.py"), *map(str, wavs), "--stats", str(stats)],
                   check=True, cwd=args.out.parent, env=env, stdout=subprocess.DEVNULL)
    run = json.loads(stats.read_text())
    manifest = json.loads((edge / "manifest.json").read_text())
    sizes = {}
    for name, f in manifest["files"].items():
        key = "lib/ (plugin code)" if name.startswith("lib/") else name
        sizes[key] = sizes.get(key, 0) + f["bytes"]
    base_rss, base_s = _rss_of_imports("import torch, bitsandbytes, sentencepiece")
    esp_rss, esp_s = _rss_of_imports("import torch, bitsandbytes, sentencepiece, espnet2.bin.asr_inference")
    import espnet
    import espnet2

    installed = {"espnet": _du(Path(espnet.__file__).parent), "espnet2": _du(Path(espnet2.__file__).parent)}
    result = {"edge_dir": str(edge), "run": run, "sizes": sizes, "total_bytes": manifest["total_bytes"],
              "requirements": manifest["requirements"],
              "import_rss_bytes": {"torch+bitsandbytes+sentencepiece": base_rss, "+espnet2 inference": esp_rss},
              "import_seconds": {"torch+bitsandbytes+sentencepiece": base_s, "+espnet2 inference": esp_s},
              "espnet_installed_bytes": installed}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"edge package {edge}: {manifest['total_bytes'] / 1e6:.2f} MB in {len(manifest['files'])} files; "
          f"{run['files']} utterances, {run['audio_seconds']:.1f} s audio, 1 thread")
    print()
    print("| file | bytes |")
    print("|---|---|")
    for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:,} |")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| load s | {run['load_seconds']:.2f} |")
    print(f"| RTF (CPU) / RTF (wall) | {run['rtf_cpu']:.3f} / {run['rtf_wall']:.3f} |")
    print(f"| peak RSS of decode.py | {run['peak_rss_bytes'] / 1e6:.0f} MB |")
    print(f"| RSS after importing torch+bitsandbytes+sentencepiece | {base_rss / 1e6:.0f} MB ({base_s:.1f} s) |")
    print(f"| ... + espnet2 inference modules | {esp_rss / 1e6:.0f} MB ({esp_s:.1f} s) |")
    print(f"| installed espnet + espnet2 packages | {sum(installed.values()) / 1e6:.1f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
