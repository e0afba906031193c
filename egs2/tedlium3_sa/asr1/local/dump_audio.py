#!/usr/bin/env python3
"""Cut the utterances of TED-LIUM data dirs into one audio file each (local/data.sh stage 4).

    dump_audio.py --dump_dir dump/audio [--nj 8] [--format flac] data/train data/dev ...

Why: p4q.sh gives espnet2 `wav.scp,speech,sound`, and espnet2's 'sound' reader opens each entry
with soundfile: it reads neither Kaldi `segments` nor `cmd |` pipes (the two layouts stage 2 of
local/data.sh writes). This plays ESPnet's `format_wav_scp.sh`: every utterance becomes
DUMP_DIR/<dir name>/<utt>.<format> (16 kHz 16-bit, as the pipes give it), and the data dir is
rewritten with a wav.scp of those paths and no `segments` (text, utt2spk, spk2utt unchanged).

A dir with segments is read one recording (talk) at a time: its wav.scp pipe runs once and every
segment is cut from the array (start/end rounded to the nearest sample). A dir of per-utterance
pipes (`--segments false`) runs one pipe per utterance. Recordings are spread over --nj processes.
A dir whose wav.scp already lists existing files and that has no segments is left alone, so a
re-run skips finished dirs; the audio of a dir is written under DUMP_DIR/.<name>.tmp and renamed
into place before the data dir is rewritten (an interrupted dump is redone from scratch).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from decimal import Decimal
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[4]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir  # noqa: E402
from espnet_p4q.fileio import read_kaldi_table  # noqa: E402

SAMPLE_RATE = 16000
# (wav.scp entry, [(utt, start seconds or None, end seconds or None)], output dir, format)
Job = Tuple[str, List[Tuple[str, Optional[str], Optional[str]]], str, str]


def is_plain(data_dir: Path) -> bool:
    """True when the dir needs no dump: no segments, every wav.scp entry an existing file."""
    if (data_dir / "segments").exists():
        return False
    for entry in read_kaldi_table(data_dir / "wav.scp").values():
        if entry.rstrip().endswith("|") or not Path(entry).is_file():
            return False
    return True


def load(entry: str) -> np.ndarray:
    """One recording as a 1-D int16 array (kaldiio runs 'cmd |' pipes and reads files)."""
    import kaldiio

    rate, wav = kaldiio.load_mat(entry)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{entry}: {rate} Hz, expected {SAMPLE_RATE}")
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"{entry}: {wav.shape[1]} channels, expected 1")
    if wav.dtype != np.int16:  # floats in [-1, 1] from a file that soundfile decoded
        wav = np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)
    return wav


def cut(job: Job) -> int:
    """Write every utterance of one recording; returns the number written."""
    import soundfile as sf

    entry, utts, out_dir, fmt = job
    wav = load(entry)
    for utt, start, end in utts:
        if start is None:
            piece = wav
        else:
            s = int((Decimal(start) * SAMPLE_RATE).to_integral_value())
            e = min(int((Decimal(end) * SAMPLE_RATE).to_integral_value()), len(wav))
            piece = wav[s:e]
        if len(piece) == 0:
            raise ValueError(f"{utt}: empty audio ({start}-{end} s of {len(wav) / SAMPLE_RATE:.2f} s)")
        sf.write(os.path.join(out_dir, f"{utt}.{fmt}"), piece, SAMPLE_RATE, subtype="PCM_16", format=fmt.upper())
    return len(utts)


def jobs_of(data_dir: Path, out_dir: Path, fmt: str) -> List[Job]:
    wav_scp = read_kaldi_table(data_dir / "wav.scp")
    texts = read_kaldi_table(data_dir / "text")
    if (data_dir / "segments").exists():
        by_rec: Dict[str, List[Tuple[str, Optional[str], Optional[str]]]] = {}
        with open(data_dir / "segments", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                utt, rec, start, end = line.split()
                if rec not in wav_scp:
                    raise ValueError(f"{data_dir}/segments: recording {rec} is not in wav.scp")
                by_rec.setdefault(rec, []).append((utt, start, end))
        jobs = [(wav_scp[rec], segs, str(out_dir), fmt) for rec, segs in sorted(by_rec.items())]
        covered = {u for _, segs, _, _ in jobs for u, _, _ in segs}
    else:
        jobs = [(wav_scp[u], [(u, None, None)], str(out_dir), fmt) for u in sorted(wav_scp)]
        covered = set(wav_scp)
    if covered != set(texts):
        raise ValueError(f"{data_dir}: utterances of text and of the audio tables differ")
    return jobs


def dump_dir_of(data_dir: Path, dump_root: Path, nj: int, fmt: str) -> str:
    if is_plain(data_dir):
        return f"{data_dir}: already plain audio files; left alone"
    final = dump_root / data_dir.name
    tmp = dump_root / f".{data_dir.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    jobs = jobs_of(data_dir, tmp, fmt)
    n = 0
    if nj > 1 and len(jobs) > 1:
        with Pool(min(nj, len(jobs))) as pool:
            for k in pool.imap_unordered(cut, jobs):
                n += k
    else:
        for job in jobs:
            n += cut(job)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    texts = read_kaldi_table(data_dir / "text")
    spk = read_kaldi_table(data_dir / "utt2spk")
    utts = [Utterance(u, spk[u], str(final / f"{u}.{fmt}"), texts[u]) for u in sorted(texts)]
    write_data_dir(data_dir, utts)  # atomic: a new dir without segments replaces the old one
    return f"{data_dir}: {n} utterances from {len(jobs)} recordings -> {final}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump_dir", type=Path, required=True, help="where the audio files go (DIR/<data dir name>/)")
    p.add_argument("--nj", type=int, default=4, help="parallel processes (recordings are spread over them)")
    p.add_argument("--format", default="flac", choices=["flac", "wav"], help="audio file format")
    p.add_argument("data_dirs", nargs="+", type=Path)
    args = p.parse_args(argv)
    for d in args.data_dirs:
        print(dump_dir_of(d, args.dump_dir, args.nj, args.format), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
