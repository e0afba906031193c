"""Kaldi ``text`` files and NIST sclite ``trn`` transcripts.

A trn line is ``WORD WORD ... (uttid)``. Scored with ``sclite ... -i rm``, the speaker of an
utterance is the text of its id before the first '-', so every utterance id here must read
``<spk>-<rest>`` with a non-empty speaker id that holds no '-'. sclite also lower-cases ids (ASCII
letters only), so ids differing only in case are one utterance to it and are rejected here. Ids
are checked when read, so a bad id fails with its file and line instead of silently landing in
the wrong speaker row.

Words are split the way ESPnet's word tokenizer splits them (``str.split``). sclite gives a few
tokens a meaning of their own (``{ a / b }`` alternatives, ``@`` as an empty word); they are kept as
plain words here, so texts holding them are scored differently from sclite.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Container, Dict, List, Optional

from espnet_p4q.fileio import iter_lines, write_text_atomic

Transcripts = Dict[str, List[str]]
"""Utterance id -> words, in file order."""

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TRN_LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<utt>[^()\s]+)\)\s*$")


class TranscriptError(ValueError):
    """A malformed transcript file; the message names the file and line."""

    user_facing = True  # the message says what and where: a CLI prints it as one line


def fold_case(text: str) -> str:
    """Lower-case ASCII letters only, as sclite does with words (without ``-s``) and ids."""
    return text.translate(_ASCII_FOLD)


def speaker_of(utt_id: str) -> str:
    """The speaker sclite (``-i rm``) reports for ``utt_id``: its text before the first '-',
    lower-cased as sclite lower-cases it."""
    return fold_case(utt_id.split("-", 1)[0])


class _IdSet:
    """Ids seen so far in one file, compared as sclite compares them (ASCII case folded)."""

    def __init__(self) -> None:
        self._seen: Dict[str, str] = {}

    def add(self, utt_id: str, where: str) -> None:
        key = fold_case(utt_id)
        if key in self._seen:
            same = "" if self._seen[key] == utt_id else \
                f" (sclite ignores the case of ids: same as '{self._seen[key]}')"
            raise TranscriptError(f"{where}: duplicate utterance id '{utt_id}'{same}")
        self._seen[key] = utt_id


def _check_utt_id(utt_id: str, where: str) -> None:
    if "-" not in utt_id or utt_id.startswith("-"):
        raise TranscriptError(
            f"{where}: utterance id '{utt_id}' is not '<speaker>-<rest>'; sclite -i rm takes the "
            "speaker from the text before the first '-'")
    if "(" in utt_id or ")" in utt_id:
        raise TranscriptError(f"{where}: utterance id '{utt_id}' holds a parenthesis, which a "
                              "trn line cannot carry")


def read_kaldi_text(path: os.PathLike, ref_ids: Optional[Container[str]] = None) -> Transcripts:
    """Read a Kaldi ``text`` file (``uttid WORD WORD...``; a bare id is an empty transcript).

    With ``ref_ids`` (the reference's ids), the file is a hypothesis and every id must be among
    them. Blank lines are skipped; duplicate ids are an error.
    """
    out: Transcripts = {}
    seen = _IdSet()
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        utt, words = fields[0], fields[1:]
        _check_utt_id(utt, where)
        seen.add(utt, where)
        if ref_ids is not None and utt not in ref_ids:
            raise TranscriptError(f"{where}: hypothesis for '{utt}', which the reference "
                                  "does not have")
        out[utt] = words
    return out


def format_trn_line(utt_id: str, words: List[str]) -> str:
    """One trn line without its newline: ``WORD WORD ... (uttid)``."""
    return " ".join([*words, f"({utt_id})"])


def write_trn(path: os.PathLike, transcripts: Transcripts) -> Path:
    """Write ``transcripts`` as a trn file, in their order, atomically."""
    seen = _IdSet()
    for utt in transcripts:
        _check_utt_id(utt, str(path))
        seen.add(utt, str(path))
    text = "".join(format_trn_line(u, w) + "\n" for u, w in transcripts.items())
    return write_text_atomic(path, text)


def read_trn(path: os.PathLike) -> Transcripts:
    """Read a trn file back (the id is the last parenthesised field of a line)."""
    out: Transcripts = {}
    seen = _IdSet()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            m = _TRN_LINE.match(line.rstrip("\n"))
            if m is None:
                raise TranscriptError(f"{where}: no '(uttid)' at the end of the line")
            utt = m.group("utt")
            _check_utt_id(utt, where)
            seen.add(utt, where)
            out[utt] = m.group("words").split()
    return out


def kaldi_text_to_trn(text_path: os.PathLike, trn_path: os.PathLike,
                      ref_ids: Optional[Container[str]] = None) -> Transcripts:
    """Convert a Kaldi ``text`` file to a trn file; returns the transcripts it wrote."""
    transcripts = read_kaldi_text(text_path, ref_ids)
    write_trn(trn_path, transcripts)
    return transcripts
