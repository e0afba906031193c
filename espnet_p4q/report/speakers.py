"""The speaker lists (data/sa_eval.list, data/sa_tune.list) and the test sets they name.

Why: the report must say which speakers it pools and that the hyperparameters were chosen on
other ones; both facts come from these lists, which the data preparation writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from espnet_p4q.report.validate import ReportError

LIST_FILES = {"eval": "sa_eval.list", "tune": "sa_tune.list"}


def read_id_list(path: Path) -> List[str]:
    """Speaker ids, one a line (blank lines skipped); duplicates and an empty list are errors."""
    if not path.is_file():
        raise ReportError(f"{path}: no such speaker list")
    ids: List[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) > 1:
                raise ReportError(f"{path}:{lineno}: one speaker id a line, got '{line.strip()}'")
            if fields[0] in ids:
                raise ReportError(f"{path}:{lineno}: speaker '{fields[0]}' listed twice")
            ids.append(fields[0])
    if not ids:
        raise ReportError(f"{path}: the speaker list is empty")
    return ids


def speaker_lists(data_dir: Path, which: str) -> Tuple[List[str], List[str]]:
    """(reported speakers, tuning speakers); evaluation and tuning speakers must not overlap."""
    if which not in LIST_FILES:
        raise ValueError(f"unknown speaker list '{which}', expected one of {sorted(LIST_FILES)}")
    evals = read_id_list(data_dir / LIST_FILES["eval"])
    tune = read_id_list(data_dir / LIST_FILES["tune"])
    both = [s for s in evals if s in tune]
    if both:
        raise ReportError(f"{data_dir / LIST_FILES['eval']}: speaker(s) {', '.join(both)} are also "
                          f"in {data_dir / LIST_FILES['tune']}; tuning and evaluation speakers "
                          "must be disjoint")
    return (evals if which == "eval" else tune), tune


def set_name(spk: str) -> str:
    """Name of a speaker's test set (``data/<spk>_test``), as the recipe's data stage makes it."""
    return f"{spk}_test"
