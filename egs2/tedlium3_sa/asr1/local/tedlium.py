#!/usr/bin/env python3
"""TED-LIUM release 3 (STM + SPH) -> Kaldi data dirs and the SA pool for the P4Q SA recipe.

    local/tedlium.py prepare --corpus DIR --datadir data --sa_talks conf/sa_talks.txt \\
        [--partition conf/sa_partition.tsv --excluded conf/sa_partition_excluded.txt]
    local/tedlium.py check DIR...

Writes data/train, data/dev (legacy dev), data/test (optional) and data/local/sa_pool: every
scored segment of the SA talks, with ``spk2corpus`` and, given ``--partition``, ``utt2corpus``
(segment id -> the P4Q authors' ``<talk>_<k>``), from which the top-level local/sa_dirs.py
writes the per-speaker dirs.

Why: a talk is one speaker, so the talk id is the speaker id (any character other than letters,
digits and ``_`` becomes ``_``: sclite cuts the speaker at the first ``-``). Segment ids are
``<talk>-<start cs>-<end cs>`` (centiseconds, 7 digits), so C-sorted ids keep each talk together
and in time order.

Text: segments marked ``ignore_time_segment_in_scoring`` are skipped; pronunciation variants
``word(2)``, tags (``<sil>`` and any other ``<..>``, ``{..}``, ``[..]``) and parenthesised names
are removed; split clitics (``it 's``) are rejoined; words are upper-cased; ``<unk>`` (TED-LIUM's
mark for an unintelligible or out-of-vocabulary word) is kept verbatim by default, as Kaldi and
ESPnet TED-LIUM recipes do, or dropped with ``unk="drop"``. Segments left empty are skipped.

The authors' index (:func:`authors_index`): k numbers, from 0, a talk's scored segments in STM
order after their filter: segments containing ``<unk>`` are removed, and so are segments left
empty (their ``without_unk_apo_blank`` data; the split clitics they rejoin change texts, not
which segments count). It is used only where it is unambiguous: the STM must list the kept
segments in time order, and each talk's count must equal the partition's ids of that talk plus
its excluded ones; otherwise the stage stops and says which talks differ.

Audio: with ``segments=True`` (default) wav.scp holds one decoding pipe per talk and ``segments``
the cut points, as Kaldi expects (written by espnet_p4q.data.kaldi_dir). With ``segments=False``
each utterance gets its own ``sox ... trim`` pipe, a segment-free dir that any reader accepts.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[4]
for _p in (REPO, REPO / "local"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from espnet2.utils.types import str2bool  # noqa: E402

from espnet_p4q.cli import guarded  # noqa: E402
from espnet_p4q.data.kaldi_dir import Utterance  # noqa: E402
from espnet_p4q.fileio import InputError, read_id_list, read_kaldi_table, write_text_atomic  # noqa: E402
from kaldi_subset import wav_path  # noqa: E402

from espnet_p4q.data.kaldi_dir import write_data_dir  # noqa: E402
from sa_dirs import read_partition  # noqa: E402

ROOT_NAME = "TEDLIUM_release-3"
TRAIN_DIRS = ("data", "legacy/train")  # the first that exists holds the training talks
SEARCH_DIRS = (
    "data", "speaker-adaptation/train", "speaker-adaptation/dev", "speaker-adaptation/test",
    "legacy/train", "legacy/dev", "legacy/test",
)
CLITICS = {"'s", "'re", "'m", "'ll", "'ve", "'d", "'t"}
AUDIO_KINDS = ("sox", "sph2pipe")
IGNORE = "ignore_time_segment_in_scoring"
POOL = "local/sa_pool"  # under --datadir


def log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Talk:
    talk: str
    stm: Path
    sph: Path


@dataclass(frozen=True)
class Segment:
    talk: str
    start: str  # as written in the STM, so segments carry exact times
    end: str
    text: str

    @property
    def order(self) -> Tuple[Decimal, Decimal]:
        return Decimal(self.start), Decimal(self.end)


def speaker_id(talk: str) -> str:
    """Talk id made safe for sclite and Kaldi sorting: only letters, digits and ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", talk)


def centiseconds(t: str) -> int:
    return int((Decimal(t) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def segment_id(seg: Segment) -> str:
    return f"{speaker_id(seg.talk)}-{centiseconds(seg.start):07d}-{centiseconds(seg.end):07d}"


def normalise(words: Sequence[str], unk: str = "keep") -> str:
    """TED-LIUM transcript tokens -> scoring text (see the module docstring)."""
    if unk not in ("keep", "drop"):
        raise ValueError(f"unk must be keep or drop, got {unk!r}")
    out: List[str] = []
    for w in words:
        w = re.sub(r"\(\d+\)$", "", w)
        if w.lower() == "<unk>":
            if unk == "keep":
                out.append("<unk>")
            continue
        if not w or re.fullmatch(r"\{.*\}|\[.*\]|\(.*\)|<.*>", w):  # tags: {NOISE}, <sil>, (name)
            continue
        if w.lower() in CLITICS and out and out[-1] != "<unk>":
            out[-1] += w.upper()
            continue
        out.append(w.upper())
    return " ".join(out)


def parse_stm(path: os.PathLike, unk: str = "keep") -> Tuple[List[Segment], int, int]:
    """Scored segments of one STM file, plus the numbers of ignored and emptied segments."""
    segs: List[Segment] = []
    ignored = empty = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";;"):
                continue
            if len(fields) < 6:
                raise ValueError(f"{path}:{lineno}: expected TALK CHANNEL SPEAKER START END [LABEL] TEXT")
            talk, _channel, _speaker, start, end = fields[:5]
            words = fields[5:]
            if words and re.fullmatch(r"<[^>]*>", words[0]) and words[0].lower() not in ("<unk>", "<sil>"):
                words = words[1:]  # the segment label, e.g. <o,f0,male>
            if IGNORE in words:
                ignored += 1
                continue
            if Decimal(end) <= Decimal(start):
                raise ValueError(f"{path}:{lineno}: segment ends before it starts")
            text = normalise(words, unk)
            if not text:
                empty += 1
                continue
            segs.append(Segment(talk, start, end, text))
    return segs, ignored, empty


def find_talks(root: os.PathLike, subdir: str) -> Dict[str, Talk]:
    """Talks of ``root/subdir/{stm,sph}``, keyed by talk id (the STM file's stem)."""
    d = Path(root) / subdir
    talks: Dict[str, Talk] = {}
    if not (d / "stm").is_dir():
        return talks
    for stm in sorted((d / "stm").glob("*.stm")):
        sph = d / "sph" / f"{stm.stem}.sph"
        if not sph.exists():
            raise FileNotFoundError(f"{sph}: audio of {stm} missing")
        talks[stm.stem] = Talk(stm.stem, stm, sph)
    return talks


def recording_command(sph: Path, audio: str = "sox", start: Optional[str] = None, end: Optional[str] = None) -> str:
    """Pipe giving 16 kHz 16-bit mono wav of a talk, or of ``start..end`` seconds of it."""
    p = shlex.quote(wav_path(sph))
    if audio == "sox":  # -V1: sox warns on every piped trim that it cannot seek (length is right)
        if start is None:
            return f"sox {p} -t wav -r 16000 -c 1 -b 16 - |"
        return f"sox -V1 {p} -t wav -r 16000 -c 1 -b 16 - trim {start} ={end} |"
    if audio == "sph2pipe":
        cut = f" -t {start}:{end}" if start is not None else ""
        return f"sph2pipe -f wav -p{cut} {p} |"
    raise ValueError(f"audio kind {audio!r}: expected one of {AUDIO_KINDS}")


def write_segmented_dir(
    data_dir: os.PathLike, segs: Sequence[Segment], talks: Dict[str, Talk], audio: str = "sox", segments: bool = True
) -> Path:
    """Write a data dir for ``segs`` (with ``segments`` + per-talk wav.scp, or per-utterance pipes)."""
    utts = [
        Utterance(segment_id(s), speaker_id(s.talk), recording_command(talks[s.talk].sph, audio, s.start, s.end), s.text)
        for s in segs
    ]
    if not segments:
        return write_data_dir(data_dir, utts)
    cuts = {segment_id(s): (speaker_id(s.talk), s.start, s.end) for s in segs}
    recordings = {speaker_id(t): recording_command(talks[t].sph, audio) for t in {s.talk for s in segs}}
    return write_data_dir(data_dir, utts, cuts, recordings)


def check_segmented_dir(data_dir: os.PathLike) -> List[str]:
    """Problems of a dir with ``segments`` that a segment-unaware validator cannot see."""
    d = Path(data_dir)
    problems: List[str] = []

    def keys(name: str) -> List[str]:
        return list(read_kaldi_table(d / name))

    seg_rows = [[k, *v.split()] for k, v in read_kaldi_table(d / "segments").items()]
    recs = keys("wav.scp")
    for name, ids in (("segments", [r[0] for r in seg_rows]), ("wav.scp", recs), ("text", keys("text")),
                      ("utt2spk", keys("utt2spk"))):
        if ids != sorted(set(ids)):
            problems.append(f"{d}/{name}: not sorted or has repeated ids")
    utts = [r[0] for r in seg_rows]
    for name in ("text", "utt2spk"):
        if set(keys(name)) != set(utts):
            problems.append(f"{d}/{name}: ids differ from segments")
    for row in seg_rows:
        if len(row) != 4 or row[1] not in recs or not Decimal(0) <= Decimal(row[2]) < Decimal(row[3]):
            problems.append(f"{d}/segments: bad line {' '.join(row)!r}")
    unused = set(recs) - {r[1] for r in seg_rows}
    if unused:
        problems.append(f"{d}/wav.scp: recordings without segments: {sorted(unused)[:5]}")
    return problems


def find_root(corpus: os.PathLike) -> Path:
    """``corpus/TEDLIUM_release-3`` (the archive's layout) or ``corpus`` itself."""
    corpus = Path(corpus)
    for cand in (corpus / ROOT_NAME, corpus):
        if any((cand / s / "stm").is_dir() for s in SEARCH_DIRS):
            return cand
    raise FileNotFoundError(f"{corpus}: no TED-LIUM 3 tree ({ROOT_NAME}/data/stm, legacy/..)")


def load_segments(talks: Sequence[Talk], unk: str) -> Tuple[List[Segment], str]:
    """Parse the STMs of ``talks`` (talk id from the file name); also return a note on skips."""
    out: List[Segment] = []
    ignored = empty = 0
    for t in talks:
        segs, i, e = parse_stm(t.stm, unk)
        ignored, empty = ignored + i, empty + e
        out.extend(replace(s, talk=t.talk) for s in segs)
    ids = [segment_id(s) for s in out]
    if len(set(ids)) != len(ids):
        seen, dup = set(), set()
        for i in ids:
            (dup if i in seen else seen).add(i)
        raise ValueError(f"segments with the same id (same talk, start and end): {sorted(dup)[:5]}")
    return out, f"{ignored} ignored and {empty} emptied segments skipped"


def authors_index(talk: Talk) -> Dict[str, str]:
    """Segment id -> the P4Q authors' ``<talk>_<k>`` for the talk's segments they kept (see above)."""
    segs, _, _ = parse_stm(talk.stm, "keep")
    kept = [replace(x, talk=talk.talk) for x in segs if "<unk>" not in x.text.split()]
    if [x.order for x in kept] != sorted(x.order for x in kept):
        raise InputError("segments are not in time order, so the authors' <talk>_<k> index is ambiguous", talk.stm)
    return {segment_id(x): f"{talk.talk}_{k}" for k, x in enumerate(kept)}


def check_index(index: Dict[str, Dict[str, str]], partition: Path, excluded: Path) -> None:
    """Each talk's derived ids must be exactly its partition ids plus its excluded ids."""
    listed: Dict[str, set] = {}
    for _, talk, _, cid in read_partition(partition):
        listed.setdefault(talk, set()).add(cid)
    extra = read_id_list(excluded, allow_empty=True)
    for talk in listed:
        listed[talk] |= {e for e in extra if e.rsplit("_", 1)[0] == talk}
    bad = [f"{t}: {len(index.get(t, {}))} segments without <unk> in the STM, {len(ids)} listed"
           for t, ids in sorted(listed.items()) if set(index.get(t, {}).values()) != ids]
    if bad:
        raise InputError("the authors' <talk>_<k> index cannot be derived unambiguously from this copy of "
                         f"TED-LIUM 3 ({'; '.join(bad)}); use --sa_partition ordered or the authors' STM", partition)


def write_pool(pool: Path, sa_talks: Sequence[str], everywhere: Dict[str, Talk], unk: str, audio: str,
               segments: bool, index: Optional[Dict[str, Dict[str, str]]]) -> int:
    """The SA talks' scored segments as one data dir, with ``spk2corpus`` and (given) ``utt2corpus``."""
    segs, note = load_segments([everywhere[t] for t in sa_talks], unk)
    write_segmented_dir(pool, segs, everywhere, audio, segments)
    write_text_atomic(pool / "spk2corpus", "".join(f"{speaker_id(t)} {t}\n" for t in sorted(sa_talks, key=speaker_id)))
    if index is not None:
        ids = {segment_id(x) for x in segs}
        pairs = sorted((u, c) for per_talk in index.values() for u, c in per_talk.items())
        lost = [c for u, c in pairs if u not in ids]
        if lost:
            raise InputError(f"indexed segments that --unk {unk} empties: {' '.join(lost)}")
        write_text_atomic(pool / "utt2corpus", "".join(f"{u} {c}\n" for u, c in pairs))
    log(f"{pool}: {len(segs)} segments of {len(sa_talks)} SA talks ({note})")
    return len(segs)


def prepare(
    corpus: os.PathLike,
    datadir: os.PathLike,
    sa_talks: Sequence[str],
    include_test: bool = False,
    unk: str = "keep",
    audio: str = "sox",
    segments: bool = True,
    partition: Optional[Path] = None,
    excluded: Optional[Path] = None,
) -> int:
    """Write data/train, data/dev (legacy dev), data/test (optional) and the SA pool; return its size."""
    root, datadir = find_root(corpus), Path(datadir)
    everywhere: Dict[str, Talk] = {}
    for sub in reversed(SEARCH_DIRS):  # earlier dirs in SEARCH_DIRS win
        everywhere.update(find_talks(root, sub))
    clash = [i for i, n in Counter(speaker_id(t) for t in everywhere).items() if n > 1]
    if clash:
        raise ValueError(f"several talks map to one speaker id: {sorted(clash)}")
    missing = [t for t in sa_talks if t not in everywhere]
    if missing:
        raise FileNotFoundError(f"{root}: SA talks not found: {missing}")
    index = None
    if partition is not None:
        index = {t: authors_index(everywhere[t]) for t in sa_talks}
        check_index(index, partition, excluded)
    dev_talks = find_talks(root, "legacy/dev")
    test_talks = find_talks(root, "legacy/test")
    if not dev_talks:
        raise FileNotFoundError(f"{root}/legacy/dev: the standard dev set is needed for data/dev")
    train_sub = next((s for s in TRAIN_DIRS if find_talks(root, s)), None)
    if train_sub is None:
        raise FileNotFoundError(f"{root}: no training talks in {TRAIN_DIRS}")
    held_out = set(sa_talks) | set(dev_talks) | set(test_talks)
    train_talks = [t for k, t in sorted(find_talks(root, train_sub).items()) if k not in held_out]
    sets = {"train": train_talks, "dev": list(dev_talks.values())}
    if include_test:
        if not test_talks:
            raise FileNotFoundError(f"{root}/legacy/test: not found")
        sets["test"] = list(test_talks.values())
    for name, talks in sets.items():
        segs, note = load_segments(talks, unk)
        write_segmented_dir(datadir / name, segs, everywhere, audio, segments)
        log(f"{datadir / name}: {len(segs)} segments, {len(talks)} talks ({note})")
    return write_pool(datadir / POOL, sa_talks, everywhere, unk, audio, segments, index)


@guarded("local/tedlium.py")
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="local/tedlium.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("prepare", help="write the data dirs and the SA pool")
    w.add_argument("--corpus", required=True, help=f"directory holding {ROOT_NAME}/ (or that tree itself)")
    w.add_argument("--datadir", default="data")
    w.add_argument("--sa_talks", required=True, help="list of held-out SA talk ids")
    w.add_argument("--partition", type=Path, help="the authors' partition: derive and write utt2corpus")
    w.add_argument("--excluded", type=Path, help="with --partition: indexed segments in no split")
    w.add_argument("--include_test", type=str2bool, default=False, help="also write data/test (legacy test)")
    w.add_argument("--unk", choices=("keep", "drop"), default="keep")
    w.add_argument("--audio", choices=AUDIO_KINDS, default="sox")
    w.add_argument("--segments", type=str2bool, default=True, help="segments file (true) or per-utterance trim pipes")
    c = sub.add_parser("check", help="check data dirs that have a segments file")
    c.add_argument("dirs", nargs="+")
    for sp in (w, c):
        sp.add_argument("--log_level", default="INFO")
    a = p.parse_args(argv)
    if a.cmd == "check":
        problems = [x for d in a.dirs for x in check_segmented_dir(d)]
        for x in problems:
            print(x, file=sys.stderr)
        print(f"{len(a.dirs)} segmented dirs checked, {len(problems)} problems", file=sys.stderr)
        return 1 if problems else 0
    if (a.partition is None) != (a.excluded is None):
        p.error("--partition and --excluded go together")
    prepare(a.corpus, a.datadir, read_id_list(a.sa_talks), a.include_test, a.unk, a.audio, a.segments,
            a.partition, a.excluded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
