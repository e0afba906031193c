"""Read and write Kaldi data directories (wav.scp, text, utt2spk, spk2utt).

Writing is atomic: files go to a temporary sibling directory that is renamed into place, so an
interrupted run never leaves a half-written data dir behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List

from espnet_p4q.fileio import read_kaldi_table


@dataclass(frozen=True)
class Utterance:
    """One utterance of a data dir. ``wav`` is a path or a Kaldi pipe command (``... |``)."""

    utt_id: str
    spk_id: str
    wav: str
    text: str


def read_table(path: Path) -> Dict[str, str]:
    """A two-column Kaldi table as an ordered dict (:func:`espnet_p4q.fileio.read_kaldi_table`)."""
    return read_kaldi_table(path)


def read_data_dir(data_dir: os.PathLike) -> List[Utterance]:
    """Return the utterances of a data dir, sorted by utterance id."""
    d = Path(data_dir)
    wavs = read_table(d / "wav.scp")
    texts = read_table(d / "text")
    spks = read_table(d / "utt2spk")
    return [Utterance(u, spks[u], wavs[u], texts[u]) for u in sorted(wavs)]


def write_data_dir(data_dir: os.PathLike, utts: Iterable[Utterance]) -> Path:
    """Write wav.scp, text, utt2spk and spk2utt (sorted, C locale order) atomically."""
    d = Path(data_dir)
    utts = sorted(utts, key=lambda u: u.utt_id)
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{d}: duplicate utterance ids")
    spk2utt: Dict[str, List[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.spk_id, []).append(u.utt_id)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
    try:
        with open(tmp / "wav.scp", "w", encoding="utf-8") as f:
            f.writelines(f"{u.utt_id} {u.wav}\n" for u in utts)
        with open(tmp / "text", "w", encoding="utf-8") as f:
            f.writelines(f"{u.utt_id} {u.text}\n" for u in utts)
        with open(tmp / "utt2spk", "w", encoding="utf-8") as f:
            f.writelines(f"{u.utt_id} {u.spk_id}\n" for u in utts)
        with open(tmp / "spk2utt", "w", encoding="utf-8") as f:
            f.writelines(f"{s} {' '.join(spk2utt[s])}\n" for s in sorted(spk2utt))
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d
