"""Boxed text tables laid out the way SCTK's report generator lays out sclite's reports.

Only what the ``sum`` report uses is supported: columns justified ``l``, ``c`` or ``r``, split by
``|`` or a space (a format reads like ``"l|cc|cccccc"``), separator lines before a row, and a
table centred on an 80-column page. The rules, reproduced from sclite's output:

* a column is as wide as its widest cell among all rows with the same number of columns;
* the table is as wide as its widest row format, 2 border characters plus one character between
  columns included; a narrower format hands the difference to its columns, column ``c`` (of ``n``)
  getting ``round(extra / n * (c + 1))`` minus what the columns before it got, the last the rest;
* a cell is placed in its (widened) column with the spare space split floor-left; a ``c`` cell is
  first centred in the column's text width (floor-left too);
* a ``-`` separator turns into ``+`` where this row's and the previous row's formats both have a
  ``|``; the table is indented by ``(80 - width) // 2`` when narrower than the page.

Cells longer than 149 characters overflow a buffer in sclite; their layout is not reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

PAGE_WIDTH = 80


def center(text: str, width: int) -> str:
    """``text`` centred in ``width`` columns, the odd space on the right."""
    spare = max(width - len(text), 0)
    return " " * (spare // 2) + text + " " * (spare - spare // 2)


@dataclass(frozen=True)
class Row:
    """One table row: a format such as ``"l|cc|cccccc"``, its cells, separator lines before it."""

    fmt: str
    cells: Sequence[str]
    seps_before: str = ""


def _parse(fmt: str) -> Tuple[str, str]:
    """Justifications and the character after each column (``|`` or a space)."""
    justs, inter = [], []
    for ch in fmt:
        if ch in "lcr":
            justs.append(ch)
            inter.append(" ")
        elif ch == "|" and justs:
            inter[-1] = "|"
        else:
            raise ValueError(f"unsupported table format '{fmt}'")
    return "".join(justs), "".join(inter)


def _round_half_up(x: float) -> int:
    return int(x + 0.5) if x > 0 else int(x - 0.5)


def _spread(extra: int, n: int) -> List[int]:
    """How many extra characters each of ``n`` columns gets out of ``extra``."""
    adds, given = [], 0
    for c in range(n - 1):
        add = _round_half_up(extra / n * (c + 1)) - given
        given += add
        adds.append(add)
    adds.append(extra - given)
    return adds


def _joint(sep: str, here: str, above: str) -> str:
    """What a separator line shows between two columns."""
    if here != "|":
        return sep
    if sep == " ":
        return "|"
    return "+" if sep == "-" and above == "|" else sep


def render(rows: Sequence[Row], page_width: int = PAGE_WIDTH) -> List[str]:
    """The table's lines (no newlines)."""
    parsed = [_parse(r.fmt) for r in rows]
    for row, (justs, _) in zip(rows, parsed):
        if len(row.cells) != len(justs):
            raise ValueError(f"row format '{row.fmt}' wants {len(justs)} cells, "
                             f"got {len(row.cells)}")
    text_w: Dict[int, List[int]] = {}
    for row, (justs, _) in zip(rows, parsed):
        widths = text_w.setdefault(len(justs), [0] * len(justs))
        for c, cell in enumerate(row.cells):
            widths[c] = max(widths[c], len(cell))
    min_width = {r.fmt: 2 + sum(text_w[len(j)]) + len(j) - 1 for r, (j, _) in zip(rows, parsed)}
    width = max(min_width.values())
    indent = " " * ((page_width - width) // 2) if width < page_width else ""

    lines = [indent + "," + "-" * (width - 2) + "."]
    prev_inter = ""
    for row, (justs, inter) in zip(rows, parsed):
        n = len(justs)
        tw = text_w[n]
        col_w = [t + a for t, a in zip(tw, _spread(width - min_width[row.fmt], n))]
        for sep in row.seps_before:
            out = []
            for c in range(n):
                out.append(sep * col_w[c])
                if c < n - 1:
                    out.append(_joint(sep, inter[c], prev_inter[c:c + 1]))
            lines.append(indent + "|" + "".join(out) + "|")
        out = []
        for c, cell in enumerate(row.cells):
            if justs[c] == "c":
                text = center(cell, tw[c])
            elif justs[c] == "l":
                text = cell.ljust(tw[c])
            else:
                text = cell.rjust(tw[c])
            out.append(center(text, col_w[c]))
            if c < n - 1:
                out.append(inter[c])
        lines.append(indent + "|" + "".join(out) + "|")
        prev_inter = inter
    lines.append(indent + "`" + "-" * (width - 2) + "'")
    return lines
