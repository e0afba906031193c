"""The project's one small I/O module: atomic writes, Kaldi tables and id lists.

Why: an interrupted stage must never leave a half-written file that a rerun accepts, and every
reader of a Kaldi table or a speaker list must split lines and skip comments the same way (a
validator that splits on any whitespace beside a reader that splits on one space lets a
tab-separated dir validate and then crash training). Errors are :class:`InputError`, which name
the file and the line, so that a CLI can print them as one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple


class InputError(ValueError):
    """Bad input a user can fix: the message says what is wrong, ``path``/``line`` where."""

    def __init__(self, message: str, path: Optional[os.PathLike] = None, line: Optional[int] = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{self.message} ({where})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it is renamed onto ``path`` on success.

    On any exception (or a kill) the final path is untouched and the temporary file is removed
    (a killed process leaves only a hidden ``.<name>.*.tmp``, never a truncated ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary sibling directory of ``path`` to fill; on success it replaces
    ``path`` (an older ``path`` is removed first), on any exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return Path(path)


def write_json_atomic(path: os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON (keys in insertion order) atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def iter_lines(path: os.PathLike) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text without the newline) of a UTF-8 file; bad UTF-8 is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                yield n, raw.decode("utf-8").rstrip("\n").rstrip("\r")
            except UnicodeDecodeError:
                raise InputError("line is not valid UTF-8", path, n) from None


def split_table_line(text: str) -> Tuple[str, str]:
    """Split a Kaldi table line into (key, value): the key ends at the first whitespace (space or
    tab), the value is the rest with surrounding whitespace removed."""
    parts = text.strip().split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def read_kaldi_table(path: os.PathLike, allow_empty_value: bool = True) -> Dict[str, str]:
    """Read a Kaldi table (``key value...``, one entry a line) into an ordered dict.

    Blank lines are skipped; a duplicate key, or (with ``allow_empty_value=False``) an entry
    without a value, is an :class:`InputError` naming the line. Empty values are allowed by
    default: a ``text`` line of an utterance with no words is its id alone.
    """
    path = Path(path)
    table: Dict[str, str] = {}
    first: Dict[str, int] = {}
    for n, text in iter_lines(path):
        if not text.strip():
            continue
        key, value = split_table_line(text)
        if key in table:
            raise InputError(f"duplicate id '{key}' (first on line {first[key]})", path, n)
        if not value and not allow_empty_value:
            raise InputError(f"'{key}' has no value", path, n)
        table[key] = value
        first[key] = n
    return table


def read_id_list(path: os.PathLike, allow_empty: bool = False) -> List[str]:
    """Read a list of ids (speakers, talks, utterances), one a line.

    The one comment rule of the project (p4q.sh's ``read_list`` applies the same): ``#`` starts a
    comment that runs to the end of the line, and lines left blank are skipped. Two ids on a line, a duplicate, or (unless
    ``allow_empty``) no id at all are :class:`InputError` naming the line.
    """
    path = Path(path)
    ids: List[str] = []
    first: Dict[str, int] = {}
    for n, text in iter_lines(path):
        fields = text.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 1:
            raise InputError(f"one id a line, got '{text.strip()}'", path, n)
        if fields[0] in first:
            raise InputError(f"'{fields[0]}' listed twice (first on line {first[fields[0]]})", path, n)
        first[fields[0]] = n
        ids.append(fields[0])
    if not ids and not allow_empty:
        raise InputError("the list is empty", path)
    return ids


def write_id_list(path: os.PathLike, ids) -> Path:
    """Write ids one a line, atomically (the format :func:`read_id_list` reads)."""
    return write_text_atomic(path, "".join(f"{i}\n" for i in ids))
