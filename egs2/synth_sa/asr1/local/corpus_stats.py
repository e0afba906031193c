"""Corpus statistics (data/corpus_stats.json): speakers, utterances, hours, vocabulary per split.

Why: the base-model recipe needs to know how much audio it trains on, and the out-of-vocabulary
rate of each split against the training text shows whether test errors can come from unseen words
rather than from the speaker mismatch the study is about. Durations come from wav headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Set

import soundfile

from espnet_p4q.data.kaldi_dir import Utterance, read_data_dir
from espnet_p4q.fileio import read_id_list


def _summary(utts: List[Utterance], train_vocab: Set[str] | None) -> dict:
    words = [w for u in utts for w in u.text.split()]
    seconds = sum(soundfile.info(u.wav).duration for u in utts)
    out = {
        "speakers": len({u.spk_id for u in utts}),
        "utterances": len(utts),
        "hours": round(seconds / 3600, 4),
        "mean_seconds": round(seconds / max(len(utts), 1), 3),
        "words": len(words),
        "vocabulary": len(set(words)),
    }
    if train_vocab is not None:
        oov = sum(w not in train_vocab for w in words)
        out["oov_rate_vs_train"] = round(oov / max(len(words), 1), 4)
    return out


def _read_list(path: Path) -> List[str]:
    return read_id_list(path, allow_empty=True) if path.is_file() else []


def corpus_stats(data_dir: Path, names: Iterable[str]) -> Dict[str, dict]:
    """Per data dir, per group (train, dev, adapt, test, tune/eval test) and in total."""
    data_dir = Path(data_dir)
    dirs = {n: read_data_dir(data_dir / n) for n in sorted(names)}
    train_vocab = {w for u in dirs.get("train", []) for w in u.text.split()} if "train" in dirs else None
    tune, evals = _read_list(data_dir / "sa_tune.list"), _read_list(data_dir / "sa_eval.list")
    groups = {
        "train": dirs.get("train", []),
        "dev": dirs.get("dev", []),
        "adapt_pool": [u for n, us in dirs.items() if n.endswith("_adapt") for u in us],
        "test": [u for n, us in dirs.items() if n.endswith("_test") for u in us],
        "tune_test": [u for s in tune for u in dirs.get(f"{s}_test", [])],
        "eval_test": [u for s in evals for u in dirs.get(f"{s}_test", [])],
    }
    all_utts = [u for us in dirs.values() for u in us]
    return {
        "data_dirs": {n: _summary(us, train_vocab) for n, us in dirs.items()},
        "groups": {g: _summary(us, train_vocab) for g, us in groups.items()},
        "total": _summary(all_utts, None),
        "heldout": {"tune": tune, "eval": evals},
    }
