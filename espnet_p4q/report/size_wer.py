"""File size against WER of quantised models (uniform and mixed widths), with MAPSSWE against FP32.

Why: the mixed-precision search asks one question per model — how small is it, and is its WER
significantly worse than FP32's on the same utterances? — and picks the smallest model that is
not ("lossless"). Sizes are what the files hold (size.json's quantized_bytes for a packed
directory, the bytes of any other file); bits per parameter divide by all parameters of the model.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_p4q.fileio import InputError, atomic_path, write_text_atomic
from espnet_p4q.report.wer import Decoding, pool, read_references, score_decoding, wer
from espnet_p4q.scoring.mapsswe import mapsswe


@dataclass
class SystemSpec:
    """A row to measure: ``parts`` are the files its size sums (packed dirs or plain files)."""

    name: str
    group: str
    parts: List[Path]
    decode_dir: Path


@dataclass
class SizeWerRow:
    name: str
    group: str
    bytes: int
    ratio: float  # FP32 file bytes / bytes
    bits_per_param: float
    wer: float
    errors: int
    words: int
    p_vs_ref: Optional[float]  # None for the reference itself
    better: Optional[str]  # the system with fewer segment errors in that test (None on a tie)
    worse_than_ref: bool  # significantly worse than the reference at ``alpha``


def part_bytes(path: Path) -> int:
    """Bytes of one part: a packed directory's model file (its size.json) or a plain file."""
    if path.is_dir():
        size = path / "size.json"
        if not size.is_file():
            raise InputError("not a packed model directory (no size.json)", path)
        return int(json.loads(size.read_text())["quantized_bytes"])
    if not path.is_file():
        raise InputError("no such file or directory", path)
    return path.stat().st_size


def total_params_of(specs: Sequence[SystemSpec]) -> int:
    """All parameters of the model, from the first packed directory's size.json."""
    for s in specs:
        for p in s.parts:
            if (p / "size.json").is_file():
                return int(json.loads((p / "size.json").read_text())["total_params"])
    raise InputError("no packed model directory among the systems: cannot count the parameters")


def measure(ref_spec: SystemSpec, specs: Sequence[SystemSpec], data_dir: Path, speakers: List[str],
            alpha: float = 0.05, method: str = "sclite") -> List[SizeWerRow]:
    """One row per system (the reference first), WER pooled over ``speakers``' test sets."""
    refs = read_references(data_dir, speakers)
    ref_text = pool(refs, str(data_dir))
    n_params = total_params_of([ref_spec, *specs])
    ref_bytes = sum(part_bytes(p) for p in ref_spec.parts)
    ref_dec = score_decoding(ref_spec.decode_dir, refs, f"system '{ref_spec.name}'", method)
    rows = [_row(ref_spec, ref_dec, ref_bytes, ref_bytes, n_params, None)]
    for s in specs:
        dec = score_decoding(s.decode_dir, refs, f"system '{s.name}'", method)
        test = mapsswe(ref_text, dec.hyps, ref_dec.hyps, s.name, ref_spec.name, alpha=alpha, method=method)
        rows.append(_row(s, dec, sum(part_bytes(p) for p in s.parts), ref_bytes, n_params, test))
    return rows


def _row(spec: SystemSpec, dec: Decoding, nbytes: int, ref_bytes: int, n_params: int, test) -> SizeWerRow:
    c = dec.pooled
    return SizeWerRow(spec.name, spec.group, nbytes, ref_bytes / nbytes, 8.0 * nbytes / n_params, wer(c),
                      c.err, c.n_wrd, None if test is None else test.p, None if test is None else test.better,
                      bool(test is not None and test.significant and test.better != spec.name))


def smallest_not_worse(rows: Sequence[SizeWerRow], among: Optional[Sequence[str]] = None) -> Optional[SizeWerRow]:
    """The smallest file among ``among`` (default: every non-reference row) that is not
    significantly worse than the reference; None when every one is."""
    cands = [r for r in rows if r.p_vs_ref is not None and (among is None or r.name in among)]
    ok = [r for r in cands if not r.worse_than_ref]
    return min(ok, key=lambda r: r.bytes) if ok else None


_COLUMNS = ["system", "group", "bytes", "ratio", "bits_per_param", "wer", "errors", "words", "p_vs_ref", "better"]


def write_csv(rows: Sequence[SizeWerRow], path: os.PathLike) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    for r in rows:
        w.writerow([r.name, r.group, r.bytes, f"{r.ratio:.4f}", f"{r.bits_per_param:.4f}", f"{r.wer:.4f}",
                    r.errors, r.words, "" if r.p_vs_ref is None else f"{r.p_vs_ref:.4g}", r.better or ""])
    write_text_atomic(path, buf.getvalue())


def markdown(rows: Sequence[SizeWerRow], ref_name: str, extra: Optional[Dict[str, Dict[str, float]]] = None) -> str:
    """The rows as a markdown table; ``extra`` adds columns {column: {system: p}} (e.g. p vs another)."""
    extra = extra or {}
    head = ["system", "file bytes", "x smaller", "bits/param", "WER %", f"MAPSSWE p vs {ref_name}"] + list(extra)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 1 + "---:|" * (len(head) - 1)]
    for r in rows:
        p = "" if r.p_vs_ref is None else f"{r.p_vs_ref:.3g}" + (" (worse)" if r.worse_than_ref else "")
        cells = [r.name, f"{r.bytes:,}", f"{r.ratio:.2f}", f"{r.bits_per_param:.3f}", f"{r.wer:.2f}", p]
        cells += [f"{col[r.name]:.3g}" if r.name in col else "" for col in extra.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[SizeWerRow], path: os.PathLike, title: Optional[str] = None) -> Path:
    """WER against file size (MB, log axis), one line per group, each point labelled; PNG (Agg).

    The WER axis stops at twice the first row's (the reference's) WER, so that a broken model does
    not flatten the rest; a point above is drawn on the top edge as a triangle labelled with its WER.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cap = 2.0 * rows[0].wer if rows and rows[0].wer > 0 else None
    fig, ax = plt.subplots(figsize=(7.2, 4.6), dpi=150)
    try:
        for group in dict.fromkeys(r.group for r in rows):
            pts = sorted((r.bytes / 1e6, r.wer, r.name) for r in rows if r.group == group)
            shown = [(x, min(y, cap) if cap else y) for x, y, _ in pts]
            line, = ax.plot([x for x, _ in shown], [y for _, y in shown], marker="o", label=group)
            n_off = 0
            for i, ((x, y), (_, rate, name)) in enumerate(zip(shown, pts)):
                off = cap is not None and rate > cap
                if off:  # on the top edge, close together: labels step down so they do not overlap
                    ax.plot([x], [y], marker="^", markersize=9, color=line.get_color())
                    n_off += 1
                ax.annotate(f"{name} ({rate:.1f}%)" if off else name, (x, y), textcoords="offset points",
                            xytext=(4, -2 - 9 * n_off if off else 4 + 7 * (i % 2)), fontsize=7)
        ax.set(xscale="log", xlabel="model file size (MB, log scale)", ylabel="WER (%)", title=title or "")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted({round(r.bytes / 1e6, 2) for r in rows if r.group != "mixed"}))
        if cap:
            ax.set_ylim(top=cap * 1.02)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def mapsswe_between(a: SystemSpec, b: SystemSpec, data_dir: Path, speakers: List[str], alpha: float = 0.05,
                    method: str = "sclite"):
    """The MAPSSWE test of system ``a`` against ``b`` on the pooled test sets of ``speakers``."""
    refs = read_references(data_dir, speakers)
    da = score_decoding(a.decode_dir, refs, f"system '{a.name}'", method)
    db = score_decoding(b.decode_dir, refs, f"system '{b.name}'", method)
    return mapsswe(pool(refs, str(data_dir)), da.hyps, db.hyps, a.name, b.name, alpha=alpha, method=method)
