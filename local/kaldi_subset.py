"""Kaldi data dirs with an optional ``segments`` file: write one, or copy a subset of one.

Why: the per-speaker SA dirs are subsets of a corpus's pool dir, and a TED-LIUM pool keeps Kaldi's
``segments`` + one wav.scp entry per recording. ``read_dir`` reads either kind and ``subset_dir``
copies a subset (written by espnet_p4q.data.kaldi_dir.write_data_dir, atomically), for every corpus.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

if __name__ == "__main__":  # run as a script: the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from espnet_p4q.cli import ArgumentParser, guarded  # noqa: E402
from espnet_p4q.data.kaldi_dir import Segment, Utterance, write_data_dir  # noqa: E402
from espnet_p4q.fileio import InputError, read_kaldi_table  # noqa: E402



def wav_path(path: os.PathLike) -> str:
    """Absolute path text for a wav.scp entry, refused if it holds whitespace (Kaldi tables split on it)."""
    text = str(Path(path).resolve())
    if re.search(r"\s", text):
        raise InputError("paths with whitespace cannot go into wav.scp", text)
    return text


def read_dir(data_dir: os.PathLike) -> Tuple[Dict[str, Utterance], Optional[Dict[str, Segment]], Dict[str, str]]:
    """(utterances by id, segments or None, wav.scp table) of a data dir."""
    d = Path(data_dir)
    wav = read_kaldi_table(d / "wav.scp")
    text = read_kaldi_table(d / "text", allow_empty_value=True)
    spk = read_kaldi_table(d / "utt2spk")
    segments = None
    if (d / "segments").is_file():
        segments = {}
        for u, rest in read_kaldi_table(d / "segments").items():
            fields = rest.split()
            if len(fields) != 3:
                raise InputError(f"'{u}': expected RECORDING START END", d / "segments")
            segments[u] = tuple(fields)
    missing = sorted(set(spk) - set(text))
    if missing:
        raise InputError(f"utterances without text: {' '.join(missing[:10])}", d / "text")
    utts = {u: Utterance(u, s, "" if segments is not None else wav[u], text[u]) for u, s in spk.items()}
    return utts, segments, wav


def subset_dir(src: os.PathLike, dst: os.PathLike, utt_ids: Sequence[str]) -> Path:
    """Copy the utterances ``utt_ids`` of data dir ``src`` (with or without segments) to ``dst``."""
    utts, segments, wav = read_dir(src)
    unknown = [u for u in utt_ids if u not in utts]
    if unknown:
        raise InputError(f"utterances not in this dir: {' '.join(unknown[:10])}", Path(src) / "utt2spk")
    chosen = [utts[u] for u in utt_ids]
    if segments is None:
        return write_data_dir(dst, chosen)
    return write_data_dir(dst, chosen, {u: segments[u] for u in utt_ids}, wav)


def first_per_speaker(src: os.PathLike, n: int) -> List[str]:
    """The first ``n`` utterance ids of every speaker of ``src`` (id order; all of a smaller one)."""
    if n < 1:
        raise InputError(f"--per_speaker must be at least 1, got {n}")
    by_spk: Dict[str, List[str]] = {}
    for utt, spk in sorted(read_kaldi_table(Path(src) / "utt2spk").items()):
        by_spk.setdefault(spk, []).append(utt)
    return sorted(u for utts in by_spk.values() for u in utts[:n])


@guarded("local/kaldi_subset.py")
def main(argv=None) -> int:
    p = ArgumentParser(prog="local/kaldi_subset.py",
                       description="Copy the first N utterances of every speaker of a Kaldi data dir "
                                   "(e.g. a smaller training set for a large model on a CPU).")
    p.add_argument("--src", required=True, type=Path, help="Kaldi data dir to read")
    p.add_argument("--dst", required=True, type=Path, help="data dir to write (replaced atomically)")
    p.add_argument("--per_speaker", required=True, type=int, help="utterances kept per speaker")
    a = p.parse_args(argv)
    ids = first_per_speaker(a.src, a.per_speaker)
    subset_dir(a.src, a.dst, ids)
    print(f"local/kaldi_subset.py: {len(ids)} utterances -> {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
