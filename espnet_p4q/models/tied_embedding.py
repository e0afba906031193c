"""A token embedding whose table is also read as the output projection, packed or not.

Why: Whisper's decoder (openai-whisper's and espnet2's ``OpenAIWhisperDecoder``) computes its
logits as ``x @ token_embedding.weight.T``: the embedding and the output layer are one tensor.
Quantising the embedding module alone would leave ``.weight`` a packed uint8 tensor (the logits
break) or need a second FP32 copy (the size gain is lost). :class:`TiedEmbedding` holds the table
in a child ``table`` (an ``nn.Embedding``, or the project's ``NF4Embedding`` / ``KbitEmbedding``
once quantised by name like any other module, at any width of a mixed allocation) and exposes ``.weight`` as the matrix, so one packed copy serves both
uses and the tie can never come apart.

For a packed table ``.weight`` is a :class:`PackedTableWeight`, a stand-in that computes
``x @ weight.T`` (what the decoder does with it, through ``torch.transpose`` or ``.t()``) with the
table's packed output projection, and anything else on the dequantised matrix. Why: decoding
dequantised all 51,865 x 512 weights at every step only to multiply them by a few rows.
"""

from __future__ import annotations

import torch

from espnet_p4q.patterns import replace_module
from espnet_p4q.quant.kbit_layers import KbitEmbedding
from espnet_p4q.quant.layers import NF4Embedding

PACKED_TABLES = (NF4Embedding, KbitEmbedding)  # both have dequantized_weight and output_projection


class PackedTableWeight:
    """``weight`` (or its transpose) of a packed table, for code written against an FP32 tensor.

    ``x @ w.T`` (also written ``x @ torch.transpose(w, 0, 1)``, ``w.to(torch.float32)`` first)
    runs the table's ``output_projection`` (gradients flow to ``x``; the table is frozen);
    every other torch function gets the dequantised matrix.
    """

    dtype = torch.float32
    device = torch.device("cpu")
    requires_grad = False

    def __init__(self, table: torch.nn.Module, transposed: bool = False):
        self.table, self.transposed = table, transposed

    @property
    def shape(self) -> torch.Size:
        n, d = self.table.num_embeddings, self.table.embedding_dim
        return torch.Size((d, n) if self.transposed else (n, d))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 2

    ndim = property(dim)

    def t(self) -> "PackedTableWeight":
        return PackedTableWeight(self.table, not self.transposed)

    T = property(t)

    def transpose(self, a: int, b: int) -> "PackedTableWeight":
        if {a % 2, b % 2} != {0, 1}:
            raise IndexError(f"transpose({a}, {b}) of a 2-D table")
        return self.t()

    def to(self, *args, **kwargs):
        """Itself for FP32 on CPU (the decoder's ``.to(x.dtype)``), else the dequantised matrix."""
        target = [a for a in args if isinstance(a, (torch.dtype, torch.device, str))] + [kwargs[k] for k in ("dtype", "device") if k in kwargs]
        if all(t in (torch.float32, "cpu") or (isinstance(t, torch.device) and t.type == "cpu") for t in target):
            return self
        return self.dense().to(*args, **kwargs)

    def float(self) -> "PackedTableWeight":
        return self

    def dense(self) -> torch.Tensor:
        """The dequantised FP32 matrix (for this call)."""
        w = self.table.dequantized_weight(torch.float32)
        return w.t() if self.transposed else w

    def __matmul__(self, other):
        return self.dense() @ other

    def __rmatmul__(self, x):
        return self.table.output_projection(x) if self.transposed else x @ self.dense()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.transpose, torch.Tensor.transpose) and not kwargs and isinstance(args[0], cls):
            return args[0].transpose(*args[1:])
        if (func in (torch.Tensor.__matmul__, torch.Tensor.matmul, torch.matmul) and not kwargs and len(args) == 2
                and isinstance(args[1], cls) and isinstance(args[0], torch.Tensor)):
            return args[1].__rmatmul__(args[0])

        def dense(a):
            if isinstance(a, cls):
                return a.dense()
            if isinstance(a, (list, tuple)):
                return type(a)(dense(b) for b in a)
            return a

        return func(*dense(args), **{k: dense(v) for k, v in kwargs.items()})

    def __repr__(self) -> str:
        return f"PackedTableWeight({tuple(self.shape)}, transposed={self.transposed})"


class TiedEmbedding(torch.nn.Module):
    """Embedding lookup and ``.weight`` (the output projection) from one table."""

    def __init__(self, table: torch.nn.Embedding):
        super().__init__()
        self.table = table
        self.num_embeddings, self.embedding_dim = table.num_embeddings, table.embedding_dim

    @property
    def weight(self):
        """The table: an FP32 parameter, or a :class:`PackedTableWeight` of the packed one."""
        if isinstance(self.table, PACKED_TABLES):
            return PackedTableWeight(self.table)
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
