"""Deterministic, disjoint splits of sentences and utterances.

Why: speaker-adaptation results mean something only if adaptation and test sentences never occur in
the base model's training text, and if "the first N adaptation utterances" is the same set on every
machine. Everything here is a pure function of its inputs and a seed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Set

from espnet_p4q.data.kaldi_dir import Utterance, read_data_dir, write_data_dir


def disjoint_draw(pool: Sequence[str], sizes: Mapping[str, int], seed: int) -> Dict[str, List[str]]:
    """Shuffle ``pool`` with ``seed`` and cut consecutive, non-overlapping slices of ``sizes``.

    The pool is sorted and de-duplicated first, so the result does not depend on input order.
    Slices are cut in the iteration order of ``sizes``.
    """
    items = sorted(set(pool))
    need = sum(sizes.values())
    if need > len(items):
        raise ValueError(f"need {need} distinct items, pool has {len(items)}")
    random.Random(seed).shuffle(items)
    out: Dict[str, List[str]] = {}
    start = 0
    for name, n in sizes.items():
        if n < 0:
            raise ValueError(f"negative size for {name}")
        out[name] = items[start:start + n]
        start += n
    return out


def first_n_per_speaker(utts: Iterable[Utterance], n: int) -> List[Utterance]:
    """Keep the first ``n`` utterances (utterance-id order) of every speaker."""
    by_spk: Dict[str, List[Utterance]] = {}
    for u in sorted(utts, key=lambda u: u.utt_id):
        by_spk.setdefault(u.spk_id, []).append(u)
    short = [s for s, us in by_spk.items() if len(us) < n]
    if short:
        raise ValueError(f"speakers with fewer than {n} utterances: {', '.join(sorted(short))}")
    return [u for s in sorted(by_spk) for u in by_spk[s][:n]]


def subset_data_dir(src: os.PathLike, dst: os.PathLike, n: int) -> Path:
    """Write the first ``n`` utterances per speaker of data dir ``src`` to ``dst`` (nested sets:
    the 10-utterance subset is contained in the 20-utterance one)."""
    return write_data_dir(dst, first_n_per_speaker(read_data_dir(src), n))


def texts_of(data_dirs: Iterable[os.PathLike]) -> Set[str]:
    """All transcripts of some data dirs."""
    return {u.text for d in data_dirs for u in read_data_dir(d)}


def overlapping_texts(a: Iterable[os.PathLike], b: Iterable[os.PathLike]) -> Set[str]:
    """Transcripts present in both groups of data dirs (should be empty for train vs. test)."""
    return texts_of(a) & texts_of(b)
