"""Batches for fine-tuning, made with espnet2's own preprocessor (tokeniser) and collate function.

Audio is read through kaldiio (wav paths and ``cmd |`` pipes alike) and scaled to [-1, 1] as
espnet2's ``sound`` loader does during base training, so features match the base model's.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from espnet_p4q.data.audio import load_audio
from espnet_p4q.fileio import InputError, read_kaldi_table


IN_MEMORY_MAX_SECONDS = 4 * 3600.0
"""Sets up to this much audio are kept in memory (adaptation sets, the default recipe's training
set); larger ones (LoRA pretraining on a paper-scale training set) are read batch by batch."""


def preprocess_fn(train_args: argparse.Namespace):
    """espnet2's preprocessor of the model, or Whisper's own tokenizer for Whisper models."""
    from espnet2.tasks.asr import ASRTask

    from espnet_p4q.models.asr_model import uses_whisper

    if uses_whisper(train_args):
        from espnet_p4q.models.whisper_tokens import WhisperPreprocessor, tokenizer_for

        return WhisperPreprocessor(tokenizer_for(len(train_args.token_list)))
    return ASRTask.build_preprocess_fn(train_args, train=False)


class UtteranceSet:
    """Audio and token ids of one data dir (optionally its first ``limit`` utterances)."""

    def __init__(self, data_dir: Path, train_args: argparse.Namespace, limit: Optional[int] = None,
                 text_file: Optional[Path] = None, in_memory: Optional[bool] = None):
        from espnet2.tasks.asr import ASRTask

        self.data_dir = Path(data_dir)
        text_path = text_file or self.data_dir / "text"
        self.texts = read_kaldi_table(text_path)
        ids = sorted(self.texts)
        if not ids:
            raise InputError("no utterances", text_path)
        if limit is not None:
            if limit > len(ids):
                raise InputError(f"asked for {limit} utterances, it has {len(ids)}", text_path)
            ids = ids[:limit]
        self.scp_path = self.data_dir / "wav.scp"
        scp = read_kaldi_table(self.scp_path)
        missing = [u for u in ids if u not in scp]
        if missing:
            raise InputError(f"no audio for {', '.join(missing[:5])}", self.scp_path)
        self.preprocess = preprocess_fn(train_args)
        self.collate = ASRTask.build_collate_fn(train_args, train=False)
        self.ids: List[str] = ids
        self.rxfiles = [scp[u] for u in ids]
        # One reading pass for the lengths (batches group similar lengths); the audio is kept only
        # while the set is small enough.
        self.lengths: List[int] = []
        cached: List[Dict[str, np.ndarray]] = []
        keep = in_memory
        for u, rx in zip(ids, self.rxfiles):
            item = self._item(u, load_audio(rx, u, self.scp_path))
            self.lengths.append(len(item["speech"]))
            if keep is None and sum(self.lengths) / 16000.0 > IN_MEMORY_MAX_SECONDS:
                keep, cached = False, []
            if keep is not False:
                cached.append(item)
        self.cached = cached if keep is not False else None

    def _item(self, utt: str, speech: np.ndarray) -> Dict[str, np.ndarray]:
        item = {"speech": speech, "text": self.texts[utt]}
        return self.preprocess(utt, item) if self.preprocess else item

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int, rng: random.Random, shuffle: bool = True) -> Iterator[Dict[str, torch.Tensor]]:
        """One pass over the set; batches of similar length to waste little padding."""
        order = sorted(range(len(self.ids)), key=lambda i: self.lengths[i])
        chunks = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(chunks)
        for chunk in chunks:
            if self.cached is not None:
                items = [(self.ids[i], self.cached[i]) for i in chunk]
            else:
                items = [(self.ids[i], self._item(self.ids[i], load_audio(self.rxfiles[i], self.ids[i], self.scp_path)))
                         for i in chunk]
            _, batch = self.collate(items)
            yield batch

    def seconds(self) -> float:
        return sum(self.lengths) / 16000.0
