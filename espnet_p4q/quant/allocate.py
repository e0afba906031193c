"""Bits per module under a size budget, from a sensitivity table, written as a quant YAML.

Why: choosing one width per module to minimise the summed KL (sensitivity.py) under a budget of
stored bits is a multiple-choice knapsack. It is solved exactly by dynamic programming over the
budget cut into ``resolution`` units, each option's cost rounded *up* to whole units, so the
answer never exceeds the budget; it is the optimum of that rounded problem (with 8192 units the
rounding costs at most M/8192 of the budget for M modules of the largest size).
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
import yaml

from espnet_p4q.fileio import write_text_atomic
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.sensitivity import SensitivityRow, by_module


class BudgetError(ValueError):
    """The budget is below what the cheapest width of every module needs."""

    user_facing = True


def allocate_bits(rows: Sequence[SensitivityRow], budget_bits_per_param: float,
                  resolution: int = 8192) -> Dict[str, int]:
    """{module: bits} minimising sum of KL with sum(params * stored_bits) <= budget * sum(params).

    The budget is in stored bits (codes and scales) per weight of the table's modules; FP32
    leftovers outside the table are not part of it.
    """
    table = by_module(rows)
    names = list(table)
    total = sum(next(iter(opts.values())).params for opts in table.values())
    capacity = budget_bits_per_param * total
    unit = capacity / resolution
    options = []  # per module: [(bits, cost in units, kl)]
    for name in names:
        opts = [(b, math.ceil(r.params * r.stored_bits / unit - 1e-9), r.kl) for b, r in sorted(table[name].items())]
        options.append(opts)
    need = sum(min(c for _, c, _ in opts) for opts in options)
    if need > resolution:
        cheapest = sum(min(r.params * r.stored_bits for r in table[n].values()) for n in names) / total
        raise BudgetError(f"budget {budget_bits_per_param} bits/param is below the cheapest allocation "
                          f"({cheapest:.4f} bits/param)")
    # best[c]: least summed KL of the modules so far within c units; choice[m, c]: option taken
    best = np.zeros(resolution + 1)
    choice = np.zeros((len(names), resolution + 1), dtype=np.int8)
    for m, opts in enumerate(options):
        new = np.full(resolution + 1, np.inf)
        for i, (_, cost, kl) in enumerate(opts):
            if cost > resolution:
                continue
            cand = np.full(resolution + 1, np.inf)
            cand[cost:] = best[: resolution + 1 - cost] + kl
            better = cand < new
            new[better], choice[m, better] = cand[better], i
        best = new
    out, c = {}, resolution
    for m in range(len(names) - 1, -1, -1):
        bits, cost, _ = options[m][choice[m, c]]
        out[names[m]] = bits
        c -= cost
    return {n: out[n] for n in names}


def allocation_config(base: QuantConfig, bits: Dict[str, int]) -> QuantConfig:
    """``base`` with a default width (the most common one) and one exact-name rule per other module."""
    default = Counter(bits.values()).most_common(1)[0][0]
    mixed = [{"pattern": re.escape(n), "bits": b} for n, b in bits.items() if b != default]
    return QuantConfig(**{**base.to_dict(), "bits": default, "mixed": mixed})


def write_allocation(cfg: QuantConfig, path: os.PathLike, header: str = "") -> None:
    """The config as a quant YAML (readable by QuantConfig.from_yaml), with an optional comment header."""
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    write_text_atomic(path, lines + yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def packed_file_bits(fp32_model: torch.nn.Module, cfg: QuantConfig) -> Tuple[int, int]:
    """(bits of the packed model file, all parameters) of ``fp32_model`` quantised with ``cfg``.

    The file is what espnet_p4q.bin.quantize writes as model.pth (size.json's quantized_bytes), so
    FP32 leftovers, scales, code books and the index all count. ``fp32_model`` is left untouched.
    """
    from espnet_p4q.models.asr_model import PACKED_MODEL_NAME
    from espnet_p4q.quant.apply import describe, quantize_model
    from espnet_p4q.quant.serialize import save_quantized

    model = copy.deepcopy(fp32_model)
    quantize_model(model, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PACKED_MODEL_NAME  # the name is in the archive: same bytes as quantize's file
        save_quantized(model, cfg, path)
        nbytes = path.stat().st_size
    return 8 * nbytes, describe(model).total_params


@dataclass
class FileBudgetAllocation:
    """An allocation and the packed file it gives; ``table_budget`` is the stored-bits budget the
    knapsack ran with (bits per weight of the table's modules)."""

    bits: Dict[str, int]
    file_bits: int
    total_params: int
    table_budget: float
    rounds: int

    @property
    def bits_per_param(self) -> float:
        return self.file_bits / self.total_params


def allocate_within_file_budget(rows: Sequence[SensitivityRow], budget_bits_per_param: float,
                                file_bits: Callable[[Dict[str, int]], Tuple[int, int]],
                                resolution: int = 8192, max_rounds: int = 8) -> FileBudgetAllocation:
    """The least-KL allocation whose whole file is at most ``budget_bits_per_param`` x all parameters.

    Why: the budget of the issue counts everything the file holds (FP32 leftovers, format), while
    the knapsack sees only the table's codes and scales. ``file_bits(bits) -> (file bits, params)``
    measures an allocation (:func:`packed_file_bits` in practice); the overhead (file minus the
    table's stored bits) is measured on the cheapest allocation, the knapsack runs on what is left,
    and while the real file is over budget the overhead estimate grows to what was measured.
    """
    table = by_module(rows)

    def stored(alloc: Dict[str, int]) -> float:
        return sum(table[n][b].params * table[n][b].stored_bits for n, b in alloc.items())

    table_params = sum(next(iter(opts.values())).params for opts in table.values())
    cheapest = {n: min(opts) for n, opts in table.items()}
    measured, total = file_bits(cheapest)
    overhead = measured - stored(cheapest)
    target = budget_bits_per_param * total
    if measured > target:
        raise BudgetError(f"budget {budget_bits_per_param} bits/param is below the cheapest allocation's "
                          f"file ({measured / total:.4f} bits/param, all counted)")
    for rounds in range(1, max_rounds + 1):
        inner = (target - overhead) / table_params
        alloc = allocate_bits(rows, inner, resolution)
        measured, total = file_bits(alloc)
        if measured <= target:
            return FileBudgetAllocation(alloc, measured, total, inner, rounds)
        overhead = max(overhead + 1, measured - stored(alloc))
    raise BudgetError(f"no allocation within {budget_bits_per_param} bits/param found in {max_rounds} rounds")
