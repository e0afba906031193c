"""TED-LIUM release 3 (STM + SPH) -> Kaldi data dirs for the P4Q speaker-adaptation recipe.

Why: a talk is one speaker, so the talk id is the speaker id (any character other than letters,
digits and ``_`` becomes ``_``: sclite cuts the speaker at the first ``-``). Segment ids are
``<talk>-<start cs>-<end cs>`` (centiseconds, 7 digits), so C-sorted ids keep each talk together
and in time order.

Text: segments marked ``ignore_time_segment_in_scoring`` are skipped; pronunciation variants
``word(2)``, tags (``<sil>`` and any other ``<..>``, ``{..}``, ``[..]``) and parenthesised names
are removed; split clitics (``it 's``) are rejoined; words are upper-cased; ``<unk>`` (TED-LIUM's
mark for an unintelligible or out-of-vocabulary word) is kept verbatim by default, as Kaldi and
ESPnet TED-LIUM recipes do, or dropped with ``unk="drop"``. Segments left empty are skipped.

Split rule: the same as LibriSpeech's (:func:`espnet_p4q.data.librispeech.split_in_order`), with
a talk's segments in time order (start, then end): first ``n_adapt`` adapt, next ``n_dev`` dev,
the rest test.

Audio: with ``segments=True`` (default) wav.scp holds one decoding pipe per talk and ``segments``
the cut points, as Kaldi expects. ``kaldi_dir.write_data_dir`` cannot write segments yet, so this
module writes the dir itself, in a temporary sibling renamed into place. With ``segments=False``
each utterance gets its own ``sox ... trim`` pipe, a segment-free dir that any reader accepts.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir
from espnet_p4q.data.librispeech import (
    check_path,
    read_id_list,
    read_sa_split,
    split_in_order,
    write_id_list,
)

ROOT_NAME = "TEDLIUM_release-3"
TRAIN_DIRS = ("data", "legacy/train")  # the first that exists holds the training talks
SEARCH_DIRS = (
    "data", "speaker-adaptation/train", "speaker-adaptation/dev", "speaker-adaptation/test",
    "legacy/train", "legacy/dev", "legacy/test",
)
CLITICS = {"'s", "'re", "'m", "'ll", "'ve", "'d", "'t"}
AUDIO_KINDS = ("sox", "sph2pipe")
IGNORE = "ignore_time_segment_in_scoring"


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
    p = shlex.quote(check_path(sph))
    if audio == "sox":  # -V1: sox warns on every piped trim that it cannot seek (length is right)
        if start is None:
            return f"sox {p} -t wav -r 16000 -c 1 -b 16 - |"
        return f"sox -V1 {p} -t wav -r 16000 -c 1 -b 16 - trim {start} ={end} |"
    if audio == "sph2pipe":
        cut = f" -t {start}:{end}" if start is not None else ""
        return f"sph2pipe -f wav -p{cut} {p} |"
    raise ValueError(f"audio kind {audio!r}: expected one of {AUDIO_KINDS}")


def _atomic_lines(path: Path, lines: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_segmented_dir(
    data_dir: os.PathLike, segs: Sequence[Segment], talks: Dict[str, Talk], audio: str = "sox", segments: bool = True
) -> Path:
    """Write a data dir for ``segs`` (with ``segments`` + per-talk wav.scp, or per-utterance pipes)."""
    d = Path(data_dir)
    utts = [
        Utterance(segment_id(s), speaker_id(s.talk), recording_command(talks[s.talk].sph, audio, s.start, s.end), s.text)
        for s in segs
    ]
    if not segments:
        return write_data_dir(d, utts)
    tmp = d.parent / f".{d.name}.segments"
    if tmp.exists():
        shutil.rmtree(tmp)
    write_data_dir(tmp, utts)
    try:
        _atomic_lines(tmp / "segments", sorted(f"{segment_id(s)} {speaker_id(s.talk)} {s.start} {s.end}" for s in segs))
        used = sorted({s.talk for s in segs}, key=speaker_id)
        _atomic_lines(tmp / "wav.scp", [f"{speaker_id(t)} {recording_command(talks[t].sph, audio)}" for t in used])
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d


def check_segmented_dir(data_dir: os.PathLike) -> List[str]:
    """Problems of a dir with ``segments`` that a segment-unaware validator cannot see."""
    d = Path(data_dir)
    problems: List[str] = []

    def keys(name: str) -> List[str]:
        with open(d / name, encoding="utf-8") as f:
            return [line.split(maxsplit=1)[0] for line in f if line.strip()]

    with open(d / "segments", encoding="utf-8") as f:
        seg_rows = [line.split() for line in f if line.strip()]
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


def prepare(
    corpus: os.PathLike,
    datadir: os.PathLike,
    sa_talks: Sequence[str],
    sa_split: Tuple[Sequence[str], Sequence[str]],
    n_adapt: int = 30,
    n_dev: int = 10,
    include_test: bool = False,
    unk: str = "keep",
    audio: str = "sox",
    segments: bool = True,
) -> Dict[str, Tuple[int, int, int]]:
    """Write data/train, data/dev (legacy dev), data/test (optional), SA dirs and lists."""
    root, datadir = find_root(corpus), Path(datadir)
    everywhere: Dict[str, Talk] = {}
    for sub in reversed(SEARCH_DIRS):  # earlier dirs in SEARCH_DIRS win
        everywhere.update(find_talks(root, sub))
    spk_of = {}
    for t in everywhere:
        if speaker_id(t) in spk_of and spk_of[speaker_id(t)] != t:
            raise ValueError(f"talks {t} and {spk_of[speaker_id(t)]} map to one speaker id")
        spk_of[speaker_id(t)] = t
    missing = [t for t in sa_talks if t not in everywhere]
    if missing:
        raise FileNotFoundError(f"{root}: SA talks not found: {missing}")
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
    counts = {}
    for talk in sa_talks:
        segs, note = load_segments([everywhere[talk]], unk)
        segs.sort(key=lambda s: s.order)
        try:
            parts = split_in_order(segs, n_adapt, n_dev)
        except ValueError as e:
            raise ValueError(f"SA talk {talk}: {e}") from None
        spk = speaker_id(talk)
        for suffix, p in zip(("adapt", "dev", "test"), parts):
            if p:
                write_segmented_dir(datadir / f"{spk}_{suffix}", p, everywhere, audio, segments)
            elif (datadir / f"{spk}_{suffix}").exists():  # no stale dev set from an earlier run
                shutil.rmtree(datadir / f"{spk}_{suffix}")
        counts[spk] = tuple(len(p) for p in parts)
        log(f"{spk}: adapt {counts[spk][0]}, dev {counts[spk][1]}, test {counts[spk][2]} ({note})")
    tune, evals = sa_split
    write_id_list(datadir / "sa_tune.list", [speaker_id(t) for t in tune])
    write_id_list(datadir / "sa_eval.list", [speaker_id(t) for t in evals])
    return counts


def _bool(text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m espnet_p4q.data.tedlium", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("prepare", help="write the data dirs")
    w.add_argument("--corpus", required=True, help=f"directory holding {ROOT_NAME}/ (or that tree itself)")
    w.add_argument("--datadir", default="data")
    w.add_argument("--sa_talks", required=True, help="conf list of held-out SA talk ids")
    w.add_argument("--sa_split", required=True, help="YAML with tune: and eval: talk lists")
    w.add_argument("--n_adapt", type=int, default=30)
    w.add_argument("--n_dev", type=int, default=10)
    w.add_argument("--include_test", type=_bool, default=False, help="also write data/test (legacy test)")
    w.add_argument("--unk", choices=("keep", "drop"), default="keep")
    w.add_argument("--audio", choices=AUDIO_KINDS, default="sox")
    w.add_argument("--segments", type=_bool, default=True, help="segments file (true) or per-utterance trim pipes")
    c = sub.add_parser("check", help="check data dirs that have a segments file")
    c.add_argument("dirs", nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "check":
        problems = [x for d in a.dirs for x in check_segmented_dir(d)]
        for x in problems:
            print(x, file=sys.stderr)
        print(f"{len(a.dirs)} segmented dirs checked, {len(problems)} problems", file=sys.stderr)
        return 1 if problems else 0
    talks = read_id_list(a.sa_talks)
    split = read_sa_split(a.sa_split, talks)
    prepare(a.corpus, a.datadir, talks, split, a.n_adapt, a.n_dev, a.include_test, a.unk, a.audio, a.segments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
