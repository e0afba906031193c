"""Select modules of a model by name patterns (used for quantisation and LoRA targets).

Patterns are Python regular expressions matched against the whole dotted module name, e.g.
``encoder\\.encoders\\.\\d+\\.self_attn\\.linear_[qkvo].*``. A pattern that selects nothing is an
error that lists the model's module names: a silent no-op would leave a layer in FP32 or without
an adapter and nobody would notice.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Sequence, Tuple, Type

import torch


class PatternError(ValueError):
    """A target pattern is malformed or selects no module."""

    user_facing = True  # the message says what and where: a CLI prints it as one line


def select_modules(
    model: torch.nn.Module,
    patterns: Sequence[str],
    types: Tuple[Type[torch.nn.Module], ...],
    exclude: Iterable[str] = (),
    what: str = "target",
) -> Dict[str, torch.nn.Module]:
    """Return {name: module} for modules of ``types`` whose name fully matches a pattern."""
    if not patterns:
        raise PatternError(f"no {what} patterns given")
    try:
        compiled = [(p, re.compile(p)) for p in patterns]
        excluded = [re.compile(p) for p in exclude]
    except re.error as e:
        raise PatternError(f"bad {what} pattern: {e}") from e
    candidates: List[Tuple[str, torch.nn.Module]] = [
        (n, m) for n, m in model.named_modules() if n and isinstance(m, types)
    ]
    selected: Dict[str, torch.nn.Module] = {}
    for raw, rx in compiled:
        hits = [(n, m) for n, m in candidates if rx.fullmatch(n)]
        if not hits:
            names = "\n  ".join(f"{n} ({type(m).__name__})" for n, m in candidates)
            raise PatternError(
                f"{what} pattern {raw!r} matches no module of type "
                f"{'/'.join(t.__name__ for t in types)}; the model has:\n  {names}"
            )
        for n, m in hits:
            if not any(x.fullmatch(n) for x in excluded):
                selected[n] = m
    return dict(sorted(selected.items()))


def replace_module(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Put ``new`` in place of the submodule called ``name`` (in place, parents unchanged)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
