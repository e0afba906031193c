"""WER against a swept setting (adaptation utterances, LoRA rank, ...): points file, CSV, plot.

Why a points file: each point of a sweep is a separate decoding directory, often over a subset
of speakers; the file says which, and the WER per point is pooled over those speakers exactly as
the main table pools them. Format (relative paths taken from ``root``)::

    {"data_dir": "data", "x_name": "adaptation utterances", "title": "optional",
     "labels": {"lora_pretrain": "LoRA pretrain + adaptation"},      # optional legend labels
     "points": [{"system": "lora_pretrain", "x": 5, "decode_dir": "exp/.../n5",
                 "speakers": ["spk1", "spk2"]}, ...]}

``speakers`` may also be "eval" or "tune", for every speaker of data/sa_eval.list or sa_tune.list.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from espnet_p4q.fileio import atomic_path, read_id_list, write_text_atomic
from espnet_p4q.report.json_fields import ReportError, field, load_json, need_object, reject_unknown
from espnet_p4q.report.manifest import NAME_RE, resolve
from espnet_p4q.report.speakers import LIST_FILES
from espnet_p4q.report.wer import read_references, score_decoding, wer

TOP_KEYS = ("data_dir", "x_name", "title", "labels", "points")
POINT_KEYS = ("system", "x", "decode_dir", "speakers")
CSV_COLUMNS = ("system", "x", "wer", "errors", "words")
Number = Union[int, float]


@dataclass(frozen=True)
class Point:
    system: str
    x: Number
    decode_dir: Path
    speakers: Tuple[str, ...]


@dataclass(frozen=True)
class Sweep:
    path: Path
    data_dir: Path
    x_name: str
    title: Optional[str]
    labels: Dict[str, str]
    points: Tuple[Point, ...]


def _speakers(obj, where: str, data_dir: Path) -> Tuple[str, ...]:
    raw = obj.get("speakers")
    if isinstance(raw, str) and raw in LIST_FILES:
        return tuple(read_id_list(data_dir / LIST_FILES[raw]))
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
        raise ReportError(f"{where}: 'speakers' must be a non-empty list of speaker ids or one "
                          f"of {sorted(LIST_FILES)}, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise ReportError(f"{where}: a speaker is listed twice in 'speakers'")
    return tuple(raw)


def load_points(path: os.PathLike, root: os.PathLike = "") -> Sweep:
    """Read and check a points file."""
    path, root = Path(path), Path(root)
    where = str(path)
    obj = need_object(load_json(path, "sweep points"), where)
    reject_unknown(obj, TOP_KEYS, where)
    data_dir = resolve(root, field(obj, "data_dir", "str", where))
    labels = field(obj, "labels", "object", where, default={})
    if not all(isinstance(v, str) for v in labels.values()):
        raise ReportError(f"{where}: 'labels' must map system names to strings")
    raw = field(obj, "points", "list", where)
    if not raw:
        raise ReportError(f"{where}: 'points' is empty")
    points, seen = [], set()
    for i, p in enumerate(raw):
        w = f"{where}: points[{i}]"
        need_object(p, w)
        reject_unknown(p, POINT_KEYS, w)
        system = field(p, "system", "str", w)
        if not NAME_RE.match(system):
            raise ReportError(f"{w}: system name '{system}' must be letters, digits and _.+-")
        x = field(p, "x", "number", w)
        if (system, x) in seen:
            raise ReportError(f"{w}: a second point for system '{system}' at x = {x}")
        seen.add((system, x))
        points.append(Point(system, x, resolve(root, field(p, "decode_dir", "str", w)),
                            _speakers(p, w, data_dir)))
    return Sweep(path, data_dir, field(obj, "x_name", "str", where),
                 field(obj, "title", "str", where, default=None, nullable=True), labels,
                 tuple(points))


def score_points(sweep: Sweep, method: str = "sclite",
                 allow_missing_hyp: bool = False) -> List[Dict[str, object]]:
    """One row (system, x, wer, errors, words) per point, by system (first seen) then x."""
    refs_cache: Dict[str, dict] = {}
    rows = []
    for p in sweep.points:
        missing = [s for s in p.speakers if s not in refs_cache]
        refs_cache.update(read_references(sweep.data_dir, missing))
        refs = {s: refs_cache[s] for s in p.speakers}
        counts = score_decoding(p.decode_dir, refs, f"system '{p.system}' at x = {p.x}", method,
                                allow_missing_hyp).pooled
        rows.append({"system": p.system, "x": p.x, "wer": wer(counts), "errors": counts.err,
                     "words": counts.n_wrd})
    order = list(dict.fromkeys(p.system for p in sweep.points))
    return sorted(rows, key=lambda r: (order.index(r["system"]), r["x"]))


def write_csv(rows: List[Dict[str, object]], path: os.PathLike) -> Path:
    """The rows as CSV (WER in percent, 4 decimals; empty without reference words)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r["system"], r["x"], "" if r["wer"] is None else f"{r['wer']:.4f}",
                    r["errors"], r["words"]])
    return write_text_atomic(path, buf.getvalue())


def plot(rows: List[Dict[str, object]], path: os.PathLike, x_label: str,
         title: Optional[str] = None, labels: Optional[Dict[str, str]] = None,
         log_x: bool = False) -> Path:
    """A line per system of WER against x, written atomically as PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    labels = labels or {}
    xs = sorted({r["x"] for r in rows})
    if log_x and xs[0] <= 0:
        raise ReportError(f"{path}: a log x axis needs positive x, got {xs[0]}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    try:
        for system in dict.fromkeys(r["system"] for r in rows):
            pts = [(r["x"], r["wer"]) for r in rows
                   if r["system"] == system and r["wer"] is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                    label=labels.get(system, system))
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if len(xs) <= 12:  # label the swept values themselves, not round numbers between them
            ax.set_xticks(xs)
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel(x_label)
        ax.set_ylabel("WER (%)")
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
