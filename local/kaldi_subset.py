"""Kaldi data dirs with an optional ``segments`` file: write one, or copy a subset of one.

Why: the per-speaker SA dirs are subsets of a corpus's pool dir, and a TED-LIUM pool keeps Kaldi's
``segments`` + one wav.scp entry per recording, which ``espnet_p4q.data.kaldi_dir`` cannot write
yet. Both are done here once, for every corpus: ``write_dir`` writes text, utt2spk, spk2utt,
wav.scp (per utterance, or per recording with ``segments``) into a hidden sibling that is renamed
into place, so an interrupted run never leaves a half-written dir.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir
from espnet_p4q.fileio import InputError, read_kaldi_table, write_text_atomic

Segment = Tuple[str, str, str]  # recording id, start, end (seconds, as written)


def wav_path(path: os.PathLike) -> str:
    """Absolute path text for a wav.scp entry, refused if it holds whitespace (Kaldi tables split on it)."""
    text = str(Path(path).resolve())
    if re.search(r"\s", text):
        raise InputError("paths with whitespace cannot go into wav.scp", text)
    return text


def write_dir(
    data_dir: os.PathLike,
    utts: Iterable[Utterance],
    segments: Optional[Dict[str, Segment]] = None,
    recordings: Optional[Dict[str, str]] = None,
) -> Path:
    """Write a data dir; with ``segments`` (utt -> recording, start, end) wav.scp lists
    ``recordings`` (recording -> entry) instead of the utterances' own ``wav``."""
    d = Path(data_dir)
    if segments is None:
        return write_data_dir(d, utts)
    utts = list(utts)
    tmp = d.parent / f".{d.name}.segments"
    if tmp.exists():
        shutil.rmtree(tmp)
    write_data_dir(tmp, utts)
    try:
        ids = sorted(u.utt_id for u in utts)
        write_text_atomic(tmp / "segments", "".join(f"{u} {' '.join(segments[u])}\n" for u in ids))
        used = sorted({segments[u][0] for u in ids})
        write_text_atomic(tmp / "wav.scp", "".join(f"{r} {recordings[r]}\n" for r in used))
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d


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
        return write_dir(dst, chosen)
    return write_dir(dst, chosen, {u: segments[u] for u in utt_ids}, wav)
