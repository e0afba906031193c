"""Read and write Kaldi data directories (wav.scp, text, utt2spk, spk2utt).

Writing is atomic (:func:`espnet_p4q.fileio.atomic_dir`), so an interrupted run never leaves a
half-written data dir behind. A dir may carry Kaldi's ``segments`` (utterances cut from recordings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from espnet_p4q.fileio import atomic_dir, read_kaldi_table

Segment = Tuple[str, str, str]  # recording id, start, end (seconds, as written)


@dataclass(frozen=True)
class Utterance:
    """One utterance of a data dir. ``wav`` is a path or a Kaldi pipe command (``... |``)."""

    utt_id: str
    spk_id: str
    wav: str
    text: str


def read_data_dir(data_dir: os.PathLike) -> List[Utterance]:
    """Return the utterances of a data dir, sorted by utterance id."""
    d = Path(data_dir)
    wavs = read_kaldi_table(d / "wav.scp")
    texts = read_kaldi_table(d / "text")
    spks = read_kaldi_table(d / "utt2spk")
    return [Utterance(u, spks[u], wavs[u], texts[u]) for u in sorted(wavs)]


def write_data_dir(data_dir: os.PathLike, utts: Iterable[Utterance],
                   segments: Optional[Dict[str, Segment]] = None,
                   recordings: Optional[Dict[str, str]] = None) -> Path:
    """Write wav.scp, text, utt2spk and spk2utt (sorted, C locale order) atomically.

    With ``segments`` (utterance -> recording, start, end, as Kaldi's segments file holds them),
    wav.scp lists the ``recordings`` (recording -> entry) the utterances come from instead of the
    utterances' own ``wav``.
    """
    d = Path(data_dir)
    utts = sorted(utts, key=lambda u: u.utt_id)
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{d}: duplicate utterance ids")
    spk2utt: Dict[str, List[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.spk_id, []).append(u.utt_id)
    with atomic_dir(d) as tmp:
        if segments is None:
            wav_scp = "".join(f"{u.utt_id} {u.wav}\n" for u in utts)
        else:
            (tmp / "segments").write_text("".join(f"{u} {' '.join(segments[u])}\n" for u in ids), encoding="utf-8")
            wav_scp = "".join(f"{r} {recordings[r]}\n" for r in sorted({segments[u][0] for u in ids}))
        (tmp / "wav.scp").write_text(wav_scp, encoding="utf-8")
        (tmp / "text").write_text("".join(f"{u.utt_id} {u.text}\n" for u in utts), encoding="utf-8")
        (tmp / "utt2spk").write_text("".join(f"{u.utt_id} {u.spk_id}\n" for u in utts), encoding="utf-8")
        (tmp / "spk2utt").write_text("".join(f"{s} {' '.join(spk2utt[s])}\n" for s in sorted(spk2utt)),
                                     encoding="utf-8")
    return d
