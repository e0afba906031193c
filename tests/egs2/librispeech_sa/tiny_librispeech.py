"""Build a tiny LibriSpeech tree (flac + trans.txt in the release layout) for offline tests.

Why: the recipe must be checked without the 30 GB corpus. The SA readers' utterances of
train-clean-360 are exactly the ids of the shipped partition (conf/sa_partition.tsv), so the
paper rule can be checked id for id; reader 3389's chapters 13247 and 130127 make reading order
differ from string order, so the ordered rule shows. Each utterance has its own length, so a test
can tell which file a wav.scp pipe decoded.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

SR = 16000
PARTITION = Path(__file__).resolve().parents[3] / "egs2/librispeech_sa/asr1/conf/sa_partition.tsv"
SA_READERS = ["115", "210", "479", "492", "525", "829", "2368", "3389", "3615", "6553"]


def partition_rows() -> List[Tuple[str, str, str]]:
    """(reader, split, utterance id) of the shipped partition, file order."""
    lines = [line.split("#", 1)[0].strip() for line in PARTITION.read_text().splitlines()]
    return [tuple(line.split("\t")) for line in lines if line][1:]


def _sa_layout() -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for _, _, utt in partition_rows():
        reader, chapter, index = utt.split("-")
        chapters = out.setdefault(reader, {})
        chapters[chapter] = max(chapters.get(chapter, 0), int(index) + 1)
    return out


# part -> reader -> chapter -> number of utterances (0000 .. n-1)
LAYOUT: Dict[str, Dict[str, Dict[str, int]]] = {
    "train-clean-100": {"19": {"198": 3, "227": 2}, "26": {"495": 3}, "103": {"1240": 2}},
    "dev-clean": {"84": {"121123": 2}, "174": {"50561": 2}},
    "test-clean": {"1089": {"134686": 2}},
    "train-clean-360": {**_sa_layout(), "100": {"7": 2}},
}


def n_samples(reader: str, chapter: str, index: int) -> int:
    """A length unique to each utterance of the layout (0.1 s plus a few ms)."""
    key = int(hashlib.md5(f"{reader}-{chapter}-{index}".encode()).hexdigest()[:6], 16)
    return SR // 10 + key % 1600


def text_of(reader: str, chapter: str, index: int) -> str:
    return f"READER {reader} READS CHAPTER {chapter} LINE {index} IT'S FINE"


def make_corpus(root: Path, layout=LAYOUT) -> Path:
    """Write ``root/LibriSpeech/<part>/...``; return ``root``."""
    rng = np.random.default_rng(0)
    for part, readers in layout.items():
        for reader, chapters in readers.items():
            for chapter, n in chapters.items():
                d = root / "LibriSpeech" / part / reader / chapter
                d.mkdir(parents=True, exist_ok=True)
                lines = []
                for i in range(n):
                    name = f"{reader}-{chapter}-{i:04d}"
                    audio = (rng.standard_normal(n_samples(reader, chapter, i)) * 0.1).astype(np.float32)
                    sf.write(d / f"{name}.flac", audio, SR, subtype="PCM_16")
                    lines.append(f"{name} {text_of(reader, chapter, i)}\n")
                (d / f"{reader}-{chapter}.trans.txt").write_text("".join(lines))
    (root / "LibriSpeech" / "README.TXT").write_text("tiny test copy\n")
    return root


def make_archives(root: Path, mirror: Path, parts=None) -> Dict[str, Path]:
    """Pack each part as openslr does (``LibriSpeech/<part>/...``) into ``mirror``; return
    {part: archive}."""
    mirror.mkdir(parents=True, exist_ok=True)
    archives = {}
    for part in parts or LAYOUT:
        archive = mirror / f"{part}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(root / "LibriSpeech" / part, arcname=f"LibriSpeech/{part}")
            tar.add(root / "LibriSpeech" / "README.TXT", arcname="LibriSpeech/README.TXT")
        archives[part] = archive
    return archives
