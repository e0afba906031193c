"""A token embedding whose table is also read as the output projection, packed or not.

Why: Whisper's decoder (openai-whisper's and espnet2's ``OpenAIWhisperDecoder``) computes its
logits as ``x @ token_embedding.weight.T``: the embedding and the output layer are one tensor.
Quantising the embedding module alone would leave ``.weight`` a packed uint8 tensor (the logits
break) or need a second FP32 copy (the size gain is lost). :class:`TiedEmbedding` holds the table
in a child ``table`` (an ``nn.Embedding``, or the project's ``NF4Embedding`` once quantised by
name like any other module) and exposes ``.weight`` as the (dequantised) matrix, so one packed
copy serves both uses and the tie can never come apart.
"""

from __future__ import annotations

import torch

from espnet_p4q.patterns import replace_module
from espnet_p4q.quant.layers import NF4Embedding


class TiedEmbedding(torch.nn.Module):
    """Embedding lookup and ``.weight`` (the output projection) from one table."""

    def __init__(self, table: torch.nn.Embedding):
        super().__init__()
        self.table = table
        self.num_embeddings, self.embedding_dim = table.num_embeddings, table.embedding_dim

    @property
    def weight(self) -> torch.Tensor:
        if isinstance(self.table, NF4Embedding):
            return self.table.dequantized_weight(torch.float32)
        return self.table.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint of the unwrapped model names the table ``<prefix>weight``
        if prefix + "weight" in state_dict and prefix + "table.weight" not in state_dict:
            state_dict[prefix + "table.weight"] = state_dict.pop(prefix + "weight")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def tie_embedding(model: torch.nn.Module, name: str) -> TiedEmbedding:
    """Wrap the ``nn.Embedding`` called ``name`` in a :class:`TiedEmbedding` (in place)."""
    old = model.get_submodule(name)
    if isinstance(old, TiedEmbedding):
        return old
    if not isinstance(old, torch.nn.Embedding):
        raise TypeError(f"{name} is a {type(old).__name__}, not an nn.Embedding")
    new = TiedEmbedding(old)
    replace_module(model, name, new)
    return new
