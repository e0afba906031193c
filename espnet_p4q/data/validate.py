"""Check a Kaldi-style data dir (wav.scp, text, utt2spk, spk2utt) before anything trains on it.

Why: ESPnet's stage scripts fail late and obscurely on an unsorted utt2spk, a missing transcript or
a 22 kHz file; per-speaker scoring with sclite silently merges speakers whose ids contain '-'. This
module reports every such problem as ``file:line: message`` so that the broken line can be found
at once. Audio checks read headers only (``soundfile.info``), so a few thousand files take a
second or two; ``cmd |`` pipes are run only when asked.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import soundfile

from espnet_p4q.fileio import split_table_line

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt")
_ARK_OFFSET = re.compile(r"^(?P<ark>\S+\.ark):(?P<offset>\d+)$")
MAX_PER_KIND = 10  # issues of one kind in one file before they are summarised


@dataclass(frozen=True)
class Issue:
    """One problem, located by file and (1-based) line when it belongs to a line."""

    path: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class Report:
    """Result of validating one data dir."""

    data_dir: str
    issues: List[Issue] = field(default_factory=list)
    n_utts: int = 0
    n_spks: int = 0

    @property
    def ok(self) -> bool:
        return not self.issues


class DataDirError(ValueError):
    """Raised by :func:`check_data_dir`; the message lists every issue, one per line."""

    user_facing = True  # the message says what and where: a CLI prints it as one line

    def __init__(self, report: Report):
        self.report = report
        lines = [f"{report.data_dir}: {len(report.issues)} problem(s)"]
        lines += [str(i) for i in report.issues]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Row:
    line: int
    key: str
    value: str


class _Collector:
    """Collects issues, capping repeats of one kind per file so a broken dir stays readable."""

    def __init__(self) -> None:
        self.issues: List[Issue] = []
        self._counts: Dict[Tuple[str, str], int] = {}

    def add(self, path: Path, line: Optional[int], kind: str, message: str) -> None:
        key = (str(path), kind)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n <= MAX_PER_KIND:
            self.issues.append(Issue(str(path), line, message))

    def finish(self) -> List[Issue]:
        for (path, kind), n in self._counts.items():
            if n > MAX_PER_KIND:
                self.issues.append(Issue(path, None, f"... and {n - MAX_PER_KIND} more '{kind}' problems"))
        return self.issues


def _read_rows(path: Path, out: _Collector) -> List[Row]:
    """Read ``key value`` lines keeping line numbers; report blank, DOS, duplicate, unsorted lines."""
    rows: List[Row] = []
    seen: Dict[str, int] = {}
    prev: Optional[bytes] = None
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for n, raw in enumerate(raw_lines, start=1):
        if raw.endswith(b"\r"):
            out.add(path, n, "dos", "carriage return at end of line (DOS line ending)")
            raw = raw.rstrip(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.add(path, n, "utf8", "line is not valid UTF-8")
            continue
        if not text.strip():
            out.add(path, n, "blank", "empty line")
            continue
        if text[0].isspace():
            out.add(path, n, "indent", "line starts with whitespace (no id)")
            continue
        key, value = split_table_line(text)
        if key in seen:
            out.add(path, n, "duplicate", f"duplicate id '{key}' (first on line {seen[key]})")
            continue
        seen[key] = n
        kb = key.encode("utf-8")
        if prev is not None and kb < prev:
            out.add(path, n, "unsorted",
                    f"not sorted in C locale order: '{key}' after '{prev.decode('utf-8')}'")
        prev = kb
        rows.append(Row(n, key, value))
    return rows


def _audio_info(entry: str, root: Path, check_pipes: bool) -> Tuple[Optional[str], Optional[object]]:
    """Return (error, info) for one wav.scp value; info is None when the entry was not opened."""
    if entry.endswith("|"):
        if not check_pipes:
            return None, None
        try:
            proc = subprocess.run(entry[:-1], shell=True, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "audio pipe timed out", None
        if proc.returncode != 0:
            return f"audio pipe failed with exit code {proc.returncode}: {entry}", None
        try:
            return None, soundfile.info(io.BytesIO(proc.stdout))
        except Exception as e:  # soundfile raises several types for bad data
            return f"audio pipe output is not readable audio ({e}): {entry}", None
    m = _ARK_OFFSET.match(entry)
    if m:
        ark = Path(m.group("ark"))
        if not (root / ark).is_file():
            return f"ark file not found: {ark}", None
        return None, None  # ark offsets are read by ESPnet's own loader; existence is enough here
    if len(entry.split()) != 1:
        return f"wav.scp entry is neither a single path nor a pipe ending in '|': {entry}", None
    path = root / entry
    if not path.is_file():
        return f"audio file not found: {entry}", None
    try:
        return None, soundfile.info(str(path))
    except Exception as e:
        return f"unreadable audio file {entry} ({type(e).__name__})", None


def _sampled(rows: List[Row], fraction: float) -> List[Row]:
    """Every pipe row when ``fraction`` is 1, else an even, deterministic share of them (at least
    one): running every ``cmd |`` of a paper-scale corpus costs as much as decoding its audio."""
    if fraction >= 1.0:
        return rows
    pipes = [r for r in rows if r.value.endswith("|")]
    keep = max(1, round(len(pipes) * fraction)) if pipes else 0
    chosen = {pipes[int(i * len(pipes) / keep)].key for i in range(keep)}
    return [r for r in rows if not r.value.endswith("|") or r.key in chosen]


def _check_audio(path: Path, rows: List[Row], out: _Collector, sample_rate: Optional[int],
                 root: Path, check_pipes: bool, pipe_fraction: float = 1.0) -> None:
    for row in _sampled(rows, pipe_fraction):
        error, info = _audio_info(row.value, root, check_pipes)
        if error:
            out.add(path, row.line, "audio", f"'{row.key}': {error}")
            continue
        if info is None:
            continue
        if sample_rate and info.samplerate != sample_rate:
            out.add(path, row.line, "rate",
                    f"'{row.key}': sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
        if info.channels != 1:
            out.add(path, row.line, "channels", f"'{row.key}': {info.channels} channels, expected mono")
        if info.frames == 0:
            out.add(path, row.line, "empty", f"'{row.key}': audio has no samples")


def _cross_check(tables: Dict[str, Tuple[Path, List[Row]]], out: _Collector) -> None:
    """Every utterance id must be in wav.scp, text and utt2spk alike."""
    names = ("wav.scp", "text", "utt2spk")
    keys = {n: {r.key for r in tables[n][1]} for n in names if n in tables}
    for name in keys:
        path, rows = tables[name]
        for other in keys:
            if other == name:
                continue
            for r in rows:
                if r.key not in keys[other]:
                    out.add(path, r.line, f"missing-in-{other}",
                            f"utterance '{r.key}' has no entry in {other}")


def _check_speakers(u2s_path: Path, u2s: List[Row], s2u_path: Optional[Path],
                    s2u: Optional[List[Row]], out: _Collector) -> Dict[str, List[str]]:
    """Speaker id syntax, utterance-id prefixes, and spk2utt agreeing with utt2spk."""
    expected: Dict[str, List[str]] = {}
    u2s_line = {r.key: r.line for r in u2s}
    u2s_spk = {r.key: r.value for r in u2s}
    for r in u2s:
        spk = r.value
        if not spk or len(spk.split()) != 1:
            out.add(u2s_path, r.line, "spk-format", f"'{r.key}': expected exactly one speaker id")
            continue
        if "-" in spk:
            out.add(u2s_path, r.line, "spk-dash",
                    f"speaker id '{spk}' contains '-' (sclite would split it)")
        if not r.key.startswith(spk + "-"):
            out.add(u2s_path, r.line, "utt-prefix",
                    f"utterance id '{r.key}' does not start with '{spk}-'")
        expected.setdefault(spk, []).append(r.key)
    if s2u is None or s2u_path is None:
        return expected
    listed: Dict[str, Tuple[str, int]] = {}
    for r in s2u:
        utts = r.value.split()
        if not utts:
            out.add(s2u_path, r.line, "s2u-empty", f"speaker '{r.key}' lists no utterances")
        if [u.encode() for u in utts] != sorted(u.encode() for u in utts):
            out.add(s2u_path, r.line, "s2u-order", f"utterances of speaker '{r.key}' are not sorted")
        for u in utts:
            if u in listed:
                out.add(s2u_path, r.line, "s2u-dup",
                        f"utterance '{u}' listed again "
                        f"(first for speaker '{listed[u][0]}' on line {listed[u][1]})")
                continue
            listed[u] = (r.key, r.line)
            if u not in u2s_line:
                out.add(s2u_path, r.line, "s2u-unknown", f"utterance '{u}' is not in utt2spk")
            elif u2s_spk[u] != r.key:
                out.add(s2u_path, r.line, "s2u-mismatch",
                        f"utterance '{u}' listed under '{r.key}' "
                        f"but utt2spk:{u2s_line[u]} says '{u2s_spk[u]}'")
    for r in u2s:
        if r.key not in listed:
            out.add(u2s_path, r.line, "missing-in-spk2utt", f"utterance '{r.key}' has no entry in spk2utt")
    return expected


def validate_data_dir(data_dir: os.PathLike, sample_rate: Optional[int] = 16000,
                      check_audio: bool = True, check_pipes: bool = True,
                      audio_root: Optional[os.PathLike] = None, pipe_fraction: float = 1.0) -> Report:
    """Validate one data dir and return a :class:`Report` (no exception on bad data).

    Relative audio paths are resolved against ``audio_root`` (default: the current directory,
    which is how Kaldi and ESPnet recipes read them). ``cmd |`` entries are run and their output
    checked like files (``check_pipes``), all of them or an even ``pipe_fraction`` of them.
    """
    if not 0.0 < pipe_fraction <= 1.0:
        raise ValueError(f"pipe_fraction must be in (0, 1], got {pipe_fraction}")
    d = Path(data_dir)
    report = Report(str(d))
    out = _Collector()
    if not d.is_dir():
        report.issues = [Issue(str(d), None, "not a directory")]
        return report
    tables: Dict[str, Tuple[Path, List[Row]]] = {}
    for name in TABLES:
        path = d / name
        if not path.is_file():
            out.add(path, None, "missing-file", "file is missing")
            continue
        tables[name] = (path, _read_rows(path, out))
    if "text" in tables:
        path, rows = tables["text"]
        for r in rows:
            if not r.value:
                out.add(path, r.line, "empty-text", f"empty transcript for '{r.key}'")
    if "wav.scp" in tables:
        path, rows = tables["wav.scp"]
        for r in rows:
            if not r.value:
                out.add(path, r.line, "empty-wav", f"no audio given for '{r.key}'")
    _cross_check(tables, out)
    if "wav.scp" in tables and not tables["wav.scp"][1]:
        out.add(tables["wav.scp"][0], None, "no-utts", "no utterances: the data dir is empty")
    if "utt2spk" in tables:
        s2u = tables.get("spk2utt")
        spks = _check_speakers(*tables["utt2spk"], s2u[0] if s2u else None, s2u[1] if s2u else None, out)
        report.n_spks = len(spks)
        report.n_utts = len(tables["utt2spk"][1])
    if check_audio and "wav.scp" in tables:
        root = Path(audio_root) if audio_root is not None else Path.cwd()
        path, rows = tables["wav.scp"]
        _check_audio(path, [r for r in rows if r.value], out, sample_rate, root, check_pipes, pipe_fraction)
    report.issues = out.finish()
    return report


def check_data_dir(data_dir: os.PathLike, **kwargs) -> Report:
    """Like :func:`validate_data_dir` but raise :class:`DataDirError` when anything is wrong."""
    report = validate_data_dir(data_dir, **kwargs)
    if not report.ok:
        raise DataDirError(report)
    return report


def check_data_dirs(data_dirs: Iterable[os.PathLike], **kwargs) -> List[Report]:
    """Validate several dirs; raise one :class:`DataDirError` for the first bad one."""
    return [check_data_dir(d, **kwargs) for d in data_dirs]
