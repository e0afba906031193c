"""The speaker lists (data/sa_eval.list, data/sa_tune.list) and the test sets they name.

Why: the report must say which speakers it pools and that the hyperparameters were chosen on
other ones; both facts come from these lists, which the data preparation writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from espnet_p4q.fileio import read_id_list
from espnet_p4q.report.json_fields import ReportError

LIST_FILES = {"eval": "sa_eval.list", "tune": "sa_tune.list"}


def speaker_lists(data_dir: Path, which: str) -> Tuple[List[str], List[str]]:
    """(reported speakers, tuning speakers); evaluation and tuning speakers must not overlap."""
    if which not in LIST_FILES:
        raise ValueError(f"unknown speaker list '{which}', expected one of {sorted(LIST_FILES)}")
    for path in (data_dir / LIST_FILES["eval"], data_dir / LIST_FILES["tune"]):
        if not path.is_file():
            raise ReportError(f"{path}: no such speaker list")
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
