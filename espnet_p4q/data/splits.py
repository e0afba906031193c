"""Deterministic, disjoint draws of sentences (or any ids) for a corpus plan.

Why: speaker-adaptation results mean something only if adaptation and test sentences never occur in
the base model's training text, and a corpus built from a seed must be the same on every machine.
A pure function of its inputs and the seed. (Per-speaker SA splits of an existing corpus are the
top-level local/sa_dirs.py's job.)
"""

from __future__ import annotations

import random
from typing import Dict, List, Mapping, Sequence


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
