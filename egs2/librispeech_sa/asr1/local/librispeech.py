#!/usr/bin/env python3
"""LibriSpeech -> Kaldi data dirs and the SA pool for the P4Q speaker-adaptation recipe.

    local/librispeech.py --corpus DIR --datadir data --sa_speakers conf/sa_speakers.txt [--audio path]

Writes data/train (train-clean-100), data/dev (dev-clean), data/<part> for each --test_part, and
data/local/sa_pool: every utterance of the SA readers (train-clean-360) with ``utt2corpus`` and
``spk2corpus``, from which the top-level local/sa_dirs.py writes the per-speaker dirs.

Why the ids look the way they do: sclite takes the speaker from an utterance id up to the first
``-``, so LibriSpeech's own ``<reader>-<chapter>-<utt>`` ids would make every chapter a speaker.
Here the speaker is ``ls<reader>`` and the utterance ``ls<reader>-<chapter>_<utt>`` with the
chapter zero-padded to 6 digits, so that sorting utterance ids (C locale) is reading order. The
map is one to one (:func:`project_utt_id`, :func:`corpus_utt_id`): LibriSpeech writes chapters
without leading zeros and with at most 6 digits.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[4]
for _p in (REPO, REPO / "local"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from espnet_p4q.cli import guarded  # noqa: E402
from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir  # noqa: E402
from espnet_p4q.fileio import InputError, read_id_list, write_text_atomic  # noqa: E402
from kaldi_subset import wav_path  # noqa: E402

SPK_PREFIX = "ls"
POOL = "local/sa_pool"  # under --datadir
# Utterance counts of the complete parts, to flag an incomplete copy of the corpus.
FULL_PART_UTTERANCES = {"train-clean-100": 28539, "dev-clean": 2703, "test-clean": 2620}
AUDIO_KINDS = ("sox", "flac", "path")
_PROJECT_ID = re.compile(r"^ls([1-9][0-9]*)-([0-9]{6})_([0-9]+)$")
_CORPUS_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]{0,5})-([0-9]+)$")


def log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


def _rewrite_id(utt_id: str, pattern: re.Pattern, kind: str, template: str) -> str:
    """UTT_ID, matched by PATTERN (reader, chapter, utterance), written as TEMPLATE (fields reader,
    chapter as a number, utt); an id PATTERN does not match is an error naming KIND.
    Why one function: the two id forms below are each other's inverse, read by the same rule."""
    m = pattern.match(utt_id)
    if not m:
        raise InputError(f"'{utt_id}' is not a {kind}")
    reader, chapter, utt = m.groups()
    return template.format(reader=reader, chapter=int(chapter), utt=utt)


def project_utt_id(corpus_id: str) -> str:
    """``115-121720-0000`` -> ``ls115-121720_0000`` (the chapter zero-padded to 6 digits)."""
    return _rewrite_id(corpus_id, _CORPUS_ID, "LibriSpeech utterance id <reader>-<chapter>-<utt>",
                       SPK_PREFIX + "{reader}-{chapter:06d}_{utt}")


def corpus_utt_id(utt_id: str) -> str:
    """``ls115-121720_0000`` -> ``115-121720-0000``: the inverse of :func:`project_utt_id`."""
    return _rewrite_id(utt_id, _PROJECT_ID, "project LibriSpeech id ls<reader>-<chapter, 6 digits>_<utt>",
                       "{reader}-{chapter}-{utt}")


@dataclass(frozen=True)
class LibriUtt:
    reader: str
    chapter: str
    index: str
    flac: Path
    text: str

    @property
    def corpus_id(self) -> str:
        return f"{self.reader}-{self.chapter}-{self.index}"


def audio_command(path: Path, kind: str = "sox") -> str:
    """wav.scp entry for a flac file: a sox or flac pipe giving 16-bit wav, or the bare path."""
    p = shlex.quote(wav_path(path))
    if kind == "sox":
        return f"sox {p} -t wav - |"
    if kind == "flac":
        return f"flac -c -d -s {p} |"
    if kind == "path":
        return p
    raise ValueError(f"audio kind {kind!r}: expected one of {AUDIO_KINDS}")


def scan_part(part_dir: Path, readers: Optional[Sequence[str]] = None) -> List[LibriUtt]:
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
                for n, line in enumerate(f, 1):
                    name, _, text = line.strip().partition(" ")
                    if not name:
                        continue
                    m = _CORPUS_ID.match(name)
                    if not m or m.groups()[:2] != (reader, chapter) or not text.strip():
                        raise InputError(f"bad line {line.strip()!r}", trans, n)
                    flac = chapter_dir / f"{name}.flac"
                    if not flac.is_file():
                        raise FileNotFoundError(f"{flac}: listed in {trans.name} but missing")
                    utts.append(LibriUtt(reader, chapter, m.group(3), flac, " ".join(text.split())))
    if wanted is not None:
        missing = wanted - {u.reader for u in utts}
        if missing:
            raise FileNotFoundError(f"{part_dir}: no utterances of readers {sorted(missing)}")
    return utts


def to_utterance(u: LibriUtt, audio: str = "sox") -> Utterance:
    return Utterance(project_utt_id(u.corpus_id), f"{SPK_PREFIX}{u.reader}", audio_command(u.flac, audio), u.text)


def write_part(part_dir: Path, out: Path, audio: str) -> List[Utterance]:
    """Convert a whole part into one data dir; flag a count that differs from the full release."""
    utts = [to_utterance(u, audio) for u in scan_part(part_dir)]
    full = FULL_PART_UTTERANCES.get(part_dir.name)
    if full is not None and full != len(utts):
        log(f"note: {part_dir} has {len(utts)} utterances, the full release {full} (partial copy?)")
    write_data_dir(out, utts)
    log(f"{out}: {len(utts)} utterances, {len({u.spk_id for u in utts})} speakers")
    return utts


def write_pool(utts: Sequence[LibriUtt], pool: Path, audio: str) -> Path:
    """The SA readers' utterances as one data dir, with ``utt2corpus`` and ``spk2corpus``."""
    write_data_dir(pool, [to_utterance(u, audio) for u in utts])
    pairs = sorted((project_utt_id(u.corpus_id), u.corpus_id) for u in utts)
    write_text_atomic(pool / "utt2corpus", "".join(f"{p} {c}\n" for p, c in pairs))
    readers = sorted({u.reader for u in utts}, key=lambda r: f"{SPK_PREFIX}{r}")
    write_text_atomic(pool / "spk2corpus", "".join(f"{SPK_PREFIX}{r} {r}\n" for r in readers))
    return pool


def find_part(corpus: Path, part: str) -> Path:
    """``corpus/LibriSpeech/<part>`` (the archives' layout) or ``corpus/<part>``."""
    for cand in (corpus / "LibriSpeech" / part, corpus / part):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"{part}: neither {corpus}/LibriSpeech/{part} nor {corpus}/{part} exists")


def prepare(
    corpus: Path,
    datadir: Path,
    sa_speakers: Sequence[str],
    train_part: str = "train-clean-100",
    dev_part: str = "dev-clean",
    sa_part: str = "train-clean-360",
    test_parts: Sequence[str] = (),
    audio: str = "sox",
) -> Tuple[Path, int]:
    """Write data/train, data/dev, data/<test part> and the SA pool; return (pool, utterances in it)."""
    corpus, datadir = Path(corpus), Path(datadir)
    train = write_part(find_part(corpus, train_part), datadir / "train", audio)
    write_part(find_part(corpus, dev_part), datadir / "dev", audio)
    for part in test_parts:
        write_part(find_part(corpus, part), datadir / part.replace("-", "_"), audio)
    overlap = {f"{SPK_PREFIX}{s}" for s in sa_speakers} & {u.spk_id for u in train}
    if overlap:
        raise ValueError(f"SA speakers also in {train_part}: {sorted(overlap)}")
    sa_utts = scan_part(find_part(corpus, sa_part), sa_speakers)
    pool = write_pool(sa_utts, datadir / POOL, audio)
    log(f"{pool}: {len(sa_utts)} utterances of {len(sa_speakers)} SA readers")
    return pool, len(sa_utts)


@guarded("local/librispeech.py")
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="local/librispeech.py", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, type=Path, help="directory holding LibriSpeech/<part>/ (or <part>/)")
    p.add_argument("--datadir", default=Path("data"), type=Path)
    p.add_argument("--sa_speakers", required=True, help="list of SA reader ids")
    p.add_argument("--train_part", default="train-clean-100")
    p.add_argument("--dev_part", default="dev-clean")
    p.add_argument("--sa_part", default="train-clean-360")
    p.add_argument("--test_part", action="append", default=[], help="extra part written as data/<part>")
    p.add_argument("--audio", choices=AUDIO_KINDS, default="sox")
    p.add_argument("--log_level", default="INFO")
    a = p.parse_args(argv)
    speakers = read_id_list(a.sa_speakers)
    bad = [s for s in speakers if not s.isdigit()]
    if bad:
        raise InputError(f"LibriSpeech reader ids are numbers, got {' '.join(bad)}", a.sa_speakers)
    prepare(a.corpus, a.datadir, speakers, a.train_part, a.dev_part, a.sa_part, a.test_part, a.audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
