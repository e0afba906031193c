"""Batches for fine-tuning, made with espnet2's own preprocessor (tokeniser) and collate function.

Audio is read through kaldiio (wav paths and ``cmd |`` pipes alike) and scaled to [-1, 1] as
espnet2's ``sound`` loader does during base training, so features match the base model's.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import kaldiio
import numpy as np
import torch

from espnet_p4q.data.kaldi_dir import read_table


def read_audio(wav_scp: Path) -> Dict[str, np.ndarray]:
    """All utterances of a wav.scp as float32 arrays in [-1, 1] (fine-tuning sets are small)."""
    out = {}
    with kaldiio.ReadHelper(f"scp:{wav_scp}") as reader:
        for utt, (rate, wav) in reader:
            if wav.dtype == np.int16:
                wav = wav.astype(np.float32) / 32768.0
            out[utt] = np.asarray(wav, dtype=np.float32)
    return out


class UtteranceSet:
    """Audio and token ids of one data dir (optionally its first ``limit`` utterances)."""

    def __init__(self, data_dir: Path, train_args: argparse.Namespace, limit: Optional[int] = None,
                 text_file: Optional[Path] = None):
        from espnet2.tasks.asr import ASRTask

        self.data_dir = Path(data_dir)
        texts = read_table(text_file or self.data_dir / "text")
        ids = sorted(texts)
        if limit is not None:
            if limit > len(ids):
                raise ValueError(f"{self.data_dir}: asked for {limit} utterances, it has {len(ids)}")
            ids = ids[:limit]
        audio = read_audio(self.data_dir / "wav.scp")
        missing = [u for u in ids if u not in audio]
        if missing:
            raise ValueError(f"{self.data_dir}/wav.scp: no audio for {missing[:5]}")
        preprocess = ASRTask.build_preprocess_fn(train_args, train=False)
        self.collate = ASRTask.build_collate_fn(train_args, train=False)
        self.items: List[Tuple[str, Dict[str, np.ndarray]]] = []
        for u in ids:
            item = {"speech": audio[u], "text": texts[u]}
            self.items.append((u, preprocess(u, item) if preprocess else item))

    def __len__(self) -> int:
        return len(self.items)

    def batches(self, batch_size: int, rng: random.Random, shuffle: bool = True) -> Iterator[Dict[str, torch.Tensor]]:
        """One pass over the set; batches of similar length to waste little padding."""
        order = sorted(range(len(self.items)), key=lambda i: len(self.items[i][1]["speech"]))
        chunks = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(chunks)
        for chunk in chunks:
            _, batch = self.collate([self.items[i] for i in chunk])
            yield batch

    def seconds(self) -> float:
        return sum(len(x["speech"]) for _, x in self.items) / 16000.0
