"""LibriSpeech -> Kaldi data dirs for the P4Q speaker-adaptation (SA) recipe.

Why the ids look the way they do: sclite takes the speaker from an utterance id up to the first
``-``, so LibriSpeech's own ``<reader>-<chapter>-<utt>`` ids would make every chapter a speaker.
Here the speaker is ``ls<reader>`` and the utterance ``ls<reader>-<chapter>_<utt>`` with the
chapter zero-padded to 6 digits, so that sorting utterance ids (C locale) is reading order.

Split rule (shared with TED-LIUM, see :func:`split_in_order`): an SA speaker's utterances are put
in reading order, chapter number then utterance number (= utterance-id order); the first
``n_adapt`` form ``<spk>_adapt``, the next ``n_dev`` ``<spk>_dev`` and all the rest ``<spk>_test``.
Adaptation thus uses the speech a user would give first, and nothing is drawn at random.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, TypeVar

from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir

SPK_PREFIX = "ls"
# Utterance counts of the complete parts, to flag an incomplete copy of the corpus.
FULL_PART_UTTERANCES = {"train-clean-100": 28539, "dev-clean": 2703, "test-clean": 2620}
AUDIO_KINDS = ("sox", "flac", "path")
T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- SA protocol, shared by corpora
def read_id_list(path: os.PathLike) -> List[str]:
    """Ids from a conf list: whitespace separated, ``#`` starts a comment; order kept, no repeats."""
    ids: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            ids.extend(line.split("#", 1)[0].split())
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: repeated ids")
    return ids


def write_id_list(path: os.PathLike, ids: Sequence[str]) -> None:
    """One id a line, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    os.replace(tmp, path)


def read_sa_split(path: os.PathLike, speakers: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Read ``tune:`` / ``eval:`` lists (YAML) and check they partition ``speakers``."""
    import yaml

    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    tune = [str(s) for s in conf.get("tune") or []]
    evals = [str(s) for s in conf.get("eval") or []]
    if set(tune) & set(evals):
        raise ValueError(f"{path}: speakers both in tune and eval: {sorted(set(tune) & set(evals))}")
    if set(tune) | set(evals) != set(speakers) or len(tune) + len(evals) != len(speakers):
        raise ValueError(
            f"{path}: tune + eval must list each SA speaker once; "
            f"missing {sorted(set(speakers) - set(tune) - set(evals))}, "
            f"unknown {sorted((set(tune) | set(evals)) - set(speakers))}"
        )
    return tune, evals


def split_in_order(ordered: Sequence[T], n_adapt: int, n_dev: int) -> Tuple[List[T], List[T], List[T]]:
    """First ``n_adapt`` items, the next ``n_dev``, and the rest (which must not be empty)."""
    if n_adapt < 1 or n_dev < 0:
        raise ValueError(f"need n_adapt >= 1 and n_dev >= 0, got {n_adapt}, {n_dev}")
    if len(ordered) <= n_adapt + n_dev:
        raise ValueError(f"{len(ordered)} utterances leave no test set after {n_adapt} adapt + {n_dev} dev")
    ordered = list(ordered)
    return ordered[:n_adapt], ordered[n_adapt : n_adapt + n_dev], ordered[n_adapt + n_dev :]


def write_sa_dirs(
    datadir: Path, spk: str, parts: Tuple[List[Utterance], List[Utterance], List[Utterance]]
) -> None:
    """Write ``<spk>_adapt``, ``<spk>_dev`` (removed when empty, so no stale set lingers), ``<spk>_test``."""
    for suffix, utts in zip(("adapt", "dev", "test"), parts):
        d = datadir / f"{spk}_{suffix}"
        if utts:
            write_data_dir(d, utts)
        elif d.exists():
            shutil.rmtree(d)


def check_path(path: Path) -> str:
    """Absolute path text, refused if it holds whitespace (Kaldi tables split on it)."""
    text = str(path.resolve())
    if re.search(r"\s", text):
        raise ValueError(f"{text}: paths with whitespace cannot go into wav.scp")
    return text


# ---------------------------------------------------------------- LibriSpeech
@dataclass(frozen=True)
class LibriUtt:
    reader: str
    chapter: str
    index: str
    flac: Path
    text: str

    @property
    def order(self) -> Tuple[int, int]:
        """Reading order: chapter, then utterance number, as integers."""
        return int(self.chapter), int(self.index)


def audio_command(path: Path, kind: str = "sox") -> str:
    """wav.scp entry for a flac file: a sox or flac pipe giving 16-bit wav, or the bare path."""
    p = shlex.quote(check_path(path))
    if kind == "sox":
        return f"sox {p} -t wav - |"
    if kind == "flac":
        return f"flac -c -d -s {p} |"
    if kind == "path":
        return p
    raise ValueError(f"audio kind {kind!r}: expected one of {AUDIO_KINDS}")


def scan_part(part_dir: os.PathLike, readers: Optional[Sequence[str]] = None) -> List[LibriUtt]:
    """Utterances of one part (``<part>/<reader>/<chapter>/*.trans.txt``), optionally some readers."""
    part_dir = Path(part_dir)
    if not part_dir.is_dir():
        raise FileNotFoundError(f"{part_dir}: no such LibriSpeech part")
    wanted = set(readers) if readers is not None else None
    utts: List[LibriUtt] = []
    for reader_dir in sorted(p for p in part_dir.iterdir() if p.is_dir()):
        reader = reader_dir.name
        if wanted is not None and reader not in wanted:
            continue
        for chapter_dir in sorted(p for p in reader_dir.iterdir() if p.is_dir()):
            chapter = chapter_dir.name
            trans = chapter_dir / f"{reader}-{chapter}.trans.txt"
            with open(trans, encoding="utf-8") as f:
                for line in f:
                    name, _, text = line.strip().partition(" ")
                    if not name:
                        continue
                    fields = name.split("-")
                    r, c, index = fields if len(fields) == 3 else ("", "", "")
                    ok = (r, c) == (reader, chapter) and (r + c + index).isdigit() and len(c) <= 6
                    if not ok or not text.strip():
                        raise ValueError(f"{trans}: bad line {line.strip()!r}")
                    flac = chapter_dir / f"{name}.flac"
                    if not flac.is_file():
                        raise FileNotFoundError(f"{flac}: listed in {trans.name} but missing")
                    utts.append(LibriUtt(reader, chapter, index, flac, " ".join(text.split())))
    if wanted is not None:
        missing = wanted - {u.reader for u in utts}
        if missing:
            raise FileNotFoundError(f"{part_dir}: no utterances of readers {sorted(missing)}")
    return utts


def to_utterance(u: LibriUtt, audio: str = "sox") -> Utterance:
    spk = f"{SPK_PREFIX}{u.reader}"
    return Utterance(f"{spk}-{int(u.chapter):06d}_{u.index}", spk, audio_command(u.flac, audio), u.text)


def write_part(part_dir: Path, out: Path, audio: str) -> List[Utterance]:
    """Convert a whole part into one data dir; flag a count that differs from the full release."""
    utts = [to_utterance(u, audio) for u in scan_part(part_dir)]
    full = FULL_PART_UTTERANCES.get(part_dir.name)
    if full is not None and full != len(utts):
        log(f"note: {part_dir} has {len(utts)} utterances, the full release {full} (partial copy?)")
    write_data_dir(out, utts)
    log(f"{out}: {len(utts)} utterances, {len({u.spk_id for u in utts})} speakers")
    return utts


def find_part(corpus: Path, part: str) -> Path:
    """``corpus/LibriSpeech/<part>`` (the archives' layout) or ``corpus/<part>``."""
    for cand in (corpus / "LibriSpeech" / part, corpus / part):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"{part}: neither {corpus}/LibriSpeech/{part} nor {corpus}/{part} exists")


def prepare(
    corpus: os.PathLike,
    datadir: os.PathLike,
    sa_speakers: Sequence[str],
    sa_split: Tuple[Sequence[str], Sequence[str]],
    n_adapt: int = 30,
    n_dev: int = 10,
    train_part: str = "train-clean-100",
    dev_part: str = "dev-clean",
    sa_part: str = "train-clean-360",
    test_parts: Sequence[str] = (),
    audio: str = "sox",
) -> Dict[str, Tuple[int, int, int]]:
    """Write data/train, data/dev, data/<test part>, the SA dirs and lists; return SA counts."""
    corpus, datadir = Path(corpus), Path(datadir)
    train = write_part(find_part(corpus, train_part), datadir / "train", audio)
    write_part(find_part(corpus, dev_part), datadir / "dev", audio)
    for part in test_parts:
        write_part(find_part(corpus, part), datadir / part.replace("-", "_"), audio)
    sa_utts = scan_part(find_part(corpus, sa_part), sa_speakers)
    overlap = {f"{SPK_PREFIX}{s}" for s in sa_speakers} & {u.spk_id for u in train}
    if overlap:
        raise ValueError(f"SA speakers also in {train_part}: {sorted(overlap)}")
    counts = {}
    for reader in sa_speakers:
        mine = sorted((u for u in sa_utts if u.reader == reader), key=lambda u: u.order)
        try:
            parts = split_in_order([to_utterance(u, audio) for u in mine], n_adapt, n_dev)
        except ValueError as e:
            raise ValueError(f"SA speaker {reader}: {e}") from None
        spk = f"{SPK_PREFIX}{reader}"
        write_sa_dirs(datadir, spk, parts)
        counts[spk] = tuple(len(p) for p in parts)
        log(f"{spk}: adapt {counts[spk][0]}, dev {counts[spk][1]}, test {counts[spk][2]}")
    tune, evals = sa_split
    write_id_list(datadir / "sa_tune.list", [f"{SPK_PREFIX}{s}" for s in tune])
    write_id_list(datadir / "sa_eval.list", [f"{SPK_PREFIX}{s}" for s in evals])
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m espnet_p4q.data.librispeech", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="directory holding LibriSpeech/<part>/ (or <part>/)")
    p.add_argument("--datadir", default="data")
    p.add_argument("--sa_speakers", required=True, help="conf list of SA reader ids")
    p.add_argument("--sa_split", required=True, help="YAML with tune: and eval: reader lists")
    p.add_argument("--n_adapt", type=int, default=30)
    p.add_argument("--n_dev", type=int, default=10)
    p.add_argument("--train_part", default="train-clean-100")
    p.add_argument("--dev_part", default="dev-clean")
    p.add_argument("--sa_part", default="train-clean-360")
    p.add_argument("--test_part", action="append", default=[], help="extra part written as data/<part>")
    p.add_argument("--audio", choices=AUDIO_KINDS, default="sox")
    a = p.parse_args(argv)
    speakers = read_id_list(a.sa_speakers)
    bad = [s for s in speakers if not s.isdigit()]
    if bad:
        p.error(f"{a.sa_speakers}: LibriSpeech reader ids are numbers: {bad}")
    split = read_sa_split(a.sa_split, speakers)
    prepare(
        a.corpus, a.datadir, speakers, split, a.n_adapt, a.n_dev,
        a.train_part, a.dev_part, a.sa_part, a.test_part, a.audio,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
