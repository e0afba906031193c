#!/usr/bin/env python3
"""Split decoding sets into parallel jobs, and merge the jobs' hypotheses back per set.

Every decoding process pays the espnet import (seconds), so one job decodes several sets (several
speakers) in one process: ``split`` writes, for job J, one combined ``wav.J.scp`` over the
utterances of its sets (plus ``utt2spk.J`` and ``sets.J``, the data dirs it covers, for decoders
that need the speaker of each utterance, e.g. to swap per-speaker adapters). With at least as many
sets as jobs, whole sets go to jobs (balanced by utterance count); with fewer, the concatenated
utterance list is cut into contiguous chunks. ``merge`` reads ``output.J/1best_recog/text`` (the
layout ``espnet2.bin.asr_inference`` writes) of every job and writes ``<output_dir>/<set>/text``
for each set, atomically, in the order of the set's wav.scp; an utterance without a hypothesis
gets an empty one (and is counted in a warning).

    decode_jobs.py split --nj N --logdir LOGDIR DATA_DIR...      (prints the number of jobs made)
    decode_jobs.py merge --nj N --logdir LOGDIR --output_dir DIR DATA_DIR...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from espnet_p4q.cli import ArgumentParser, guarded
from espnet_p4q.fileio import InputError, read_kaldi_table, write_text_atomic


def write_atomic(path: Path, lines: Sequence[str]) -> None:
    write_text_atomic(path, "".join(lines))


def set_name(data_dir: str) -> str:
    return Path(data_dir.rstrip("/")).name


def plan(data_dirs: Sequence[str], nj: int) -> List[List[Tuple[str, str, str, str]]]:
    """Return, per job, its utterances as (data_dir, utt, wav, spk)."""
    sets = []
    seen: Dict[str, str] = {}
    names = [set_name(d) for d in data_dirs]
    if len(set(names)) != len(names):
        raise InputError(f"two data dirs share a name: {' '.join(data_dirs)}")
    for d in data_dirs:
        wavs = read_kaldi_table(Path(d) / "wav.scp").items()
        spk = read_kaldi_table(Path(d) / "utt2spk")
        utts = []
        for utt, wav in wavs:
            if utt in seen:
                raise InputError(f"utterance {utt} is in both {seen[utt]} and {d}; sets decoded "
                                 "together need distinct utterance ids", Path(d) / "wav.scp")
            seen[utt] = d
            utts.append((d, utt, wav, spk.get(utt, utt.split("-")[0])))
        if not utts:
            raise InputError("no utterances", Path(d) / "wav.scp")
        sets.append(utts)
    nj = max(1, min(nj, len(seen)))
    if len(sets) >= nj:
        jobs: List[List[int]] = [[] for _ in range(nj)]
        load = [0] * nj
        for i in sorted(range(len(sets)), key=lambda i: -len(sets[i])):
            j = min(range(nj), key=lambda j: (load[j], j))
            jobs[j].append(i)
            load[j] += len(sets[i])
        return [[u for i in sorted(job) for u in sets[i]] for job in jobs]
    flat = [u for s in sets for u in s]
    size, extra = divmod(len(flat), nj)
    out, start = [], 0
    for j in range(nj):
        end = start + size + (1 if j < extra else 0)
        out.append(flat[start:end])
        start = end
    return out


def cmd_split(args: argparse.Namespace) -> None:
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    jobs = plan(args.data_dirs, args.nj)
    for j, utts in enumerate(jobs, start=1):
        write_atomic(logdir / f"wav.{j}.scp", [f"{u} {w}\n" for _, u, w, _ in utts])
        write_atomic(logdir / f"utt2spk.{j}", [f"{u} {s}\n" for _, u, _, s in utts])
        dirs = list(dict.fromkeys(d for d, _, _, _ in utts))
        write_atomic(logdir / f"sets.{j}", [f"{d}\n" for d in dirs])
    print(len(jobs))


def cmd_merge(args: argparse.Namespace) -> None:
    logdir = Path(args.logdir)
    hyps: Dict[str, str] = {}
    for j in range(1, args.nj + 1):
        path = logdir / f"output.{j}" / "1best_recog" / "text"
        if not path.exists():
            # A job whose every hypothesis came out empty may write no text file at all.
            print(f"decode_jobs.py: warning: {path} is missing", file=sys.stderr)
            continue
        hyps.update(read_kaldi_table(path))
    out = Path(args.output_dir)
    for d in args.data_dirs:
        missing = 0
        lines = []
        for utt in read_kaldi_table(Path(d) / "wav.scp"):
            if utt not in hyps:
                missing += 1
            lines.append(f"{utt} {hyps.get(utt, '')}".rstrip() + "\n")
        if missing:
            print(f"decode_jobs.py: warning: {missing} utterance(s) of {d} have no hypothesis; "
                  "written as empty", file=sys.stderr)
        write_atomic(out / set_name(d) / "text", lines)
    write_speed(logdir, args.nj, out, args.data_dirs)


def write_speed(logdir: Path, nj: int, out: Path, data_dirs) -> None:
    """<set>/decode.json from the jobs' decode.json (espnet_p4q.bin.decode writes one; espnet2's
    asr_inference does not): the real-time factor of the jobs that decoded the set."""
    import json

    for d in data_dirs:
        audio = seconds = 0.0
        for j in range(1, nj + 1):
            info, sets = logdir / f"output.{j}" / "decode.json", logdir / f"sets.{j}"
            if info.exists() and sets.exists() and d in sets.read_text().split():
                facts = json.loads(info.read_text())
                audio += facts["audio_seconds"]
                seconds += facts["decode_seconds"]
        if audio > 0:
            write_atomic(out / set_name(d) / "decode.json", [json.dumps(
                {"audio_seconds": audio, "decode_seconds": seconds, "rtf": seconds / audio,
                 "note": "over the decoding jobs that covered this set"}, indent=2) + "\n"])


@guarded("decode_jobs.py")
def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="write wav.J.scp, utt2spk.J, sets.J per job")
    s.add_argument("--nj", type=int, required=True)
    s.add_argument("--logdir", required=True)
    s.add_argument("data_dirs", nargs="+")
    s.set_defaults(func=cmd_split)
    m = sub.add_parser("merge", help="write <output_dir>/<set>/text from the jobs' outputs")
    m.add_argument("--nj", type=int, required=True)
    m.add_argument("--logdir", required=True)
    m.add_argument("--output_dir", required=True)
    m.add_argument("data_dirs", nargs="+")
    m.set_defaults(func=cmd_merge)
    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
