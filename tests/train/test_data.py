"""Fine-tuning batches: read batch by batch (large sets) they equal the in-memory ones."""

import argparse
import random

import torch

from espnet_p4q.models.asr_model import resolved_config
from espnet_p4q.train.data import UtteranceSet


def test_streamed_batches_equal_in_memory_batches(ci_corpus, tiny_char_model_files):
    config, _ = tiny_char_model_files
    args = argparse.Namespace(**resolved_config(config))
    train = ci_corpus / "train"
    kept = UtteranceSet(train, args, in_memory=True)
    streamed = UtteranceSet(train, args, in_memory=False)
    assert kept.cached is not None and streamed.cached is None
    assert len(kept) == len(streamed) > 4 and kept.seconds() == streamed.seconds() > 0
    for a, b in zip(kept.batches(3, random.Random(0)), streamed.batches(3, random.Random(0))):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    first3 = UtteranceSet(train, args, limit=3)
    assert first3.ids == sorted(kept.ids)[:3]
