"""Build a tiny TED-LIUM 3 tree (NIST SPHERE audio + STM) for offline tests.

Why: the recipe must be checked without the 51 GB corpus. Each talk gets 6 scored segments, one
``ignore_time_segment_in_scoring`` gap and one segment that normalises to nothing; its STM lines
are written out of time order so the split rule (time order) shows. One SA talk exists only under
``speaker-adaptation/test`` and one training talk has a ``-`` in its id.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

SR = 16000
SA_TALKS = [
    "AmandaBurden_2014", "BenDunlap_2007", "DavidChristian_2011", "EvaVertes_2005",
    "GeorgePapandreou_2013G", "GregLynn_2005", "HowardRheingold_2005", "JamesBalog_2009G",
    "JannaLevin_2011", "JonathanZittrain_2009G", "LindaHill_2014X", "LizColeman_2009",
    "MarcGoodman_2012G", "NoyThrupkaew_2015", "PWSinger_2009", "RichardPreston_2008",
]
TRAIN_TALKS = ["AlGore_2009", "Jean-Luc_2011", "ZedTalk_2012"]
DEV_TALKS = ["DevTalk_2010"]
TEST_TALKS = ["TestTalk_2010"]
ONLY_IN_SA_DIR = "PWSinger_2009"
N_SCORED = 6
# raw STM words of scored segment i, and what they must normalise to
RAW = [
    ("it 's <unk> time(2)", "IT'S <unk> TIME"),
    ("{NOISE} we 're here <sil>", "WE'RE HERE"),
    ("i 'm fine", "I'M FINE"),
    ("hello world", "HELLO WORLD"),
    ("<unk> they 've gone", "<unk> THEY'VE GONE"),
    ("the end", "THE END"),
]


def segment_times(i: int) -> Tuple[str, str]:
    """Scored segment ``i``: 0.5 s long, starting every 0.6 s (exact two-decimal strings)."""
    start = 5 + 60 * i  # centiseconds
    return f"{start / 100:.2f}", f"{(start + 50) / 100:.2f}"


def stm_lines(talk: str) -> List[str]:
    lines = []
    for i, (raw, _) in enumerate(RAW):
        start, end = segment_times(i)
        lines.append(f"{talk} 1 {talk} {start} {end} <o,f0,male> {raw}")
    lines.append(f"{talk} 1 inter_segment_gap 3.70 3.90 <o,,unknown> ignore_time_segment_in_scoring")
    lines.append(f"{talk} 1 {talk} 3.90 4.10 <o,f0,male> {{BREATH}} <sil>")
    order = [3, 0, 6, 5, 1, 7, 2, 4]  # not in time order on purpose
    return [";; tiny test STM\n"] + [lines[k] + "\n" for k in order]


def expected_text(i: int) -> str:
    return RAW[i][1]


def talk_audio(talk: str) -> np.ndarray:
    """Deterministic 4.5 s of int16 noise per talk."""
    seed = sum(map(ord, talk))
    return (np.random.default_rng(seed).standard_normal(int(4.5 * SR)) * 3000).astype(np.int16)


def write_talk(d: Path, talk: str) -> None:
    (d / "stm").mkdir(parents=True, exist_ok=True)
    (d / "sph").mkdir(parents=True, exist_ok=True)
    (d / "stm" / f"{talk}.stm").write_text("".join(stm_lines(talk)))
    sf.write(d / "sph" / f"{talk}.sph", talk_audio(talk), SR, format="NIST", subtype="PCM_16")


def make_tedlium(root: Path) -> Path:
    """Write ``root/TEDLIUM_release-3/...``; return ``root``."""
    top = root / "TEDLIUM_release-3"
    for talk in TRAIN_TALKS + [t for t in SA_TALKS if t != ONLY_IN_SA_DIR]:
        write_talk(top / "data", talk)
    write_talk(top / "speaker-adaptation" / "test", ONLY_IN_SA_DIR)
    for talk in DEV_TALKS:
        write_talk(top / "legacy" / "dev", talk)
    for talk in TEST_TALKS:
        write_talk(top / "legacy" / "test", talk)
    (top / "readme.txt").write_text("tiny test copy\n")
    return root


def make_archive(root: Path, mirror: Path) -> Path:
    """Pack ``root/TEDLIUM_release-3`` as ``mirror/TEDLIUM_release-3.tgz``."""
    mirror.mkdir(parents=True, exist_ok=True)
    archive = mirror / "TEDLIUM_release-3.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "TEDLIUM_release-3", arcname="TEDLIUM_release-3")
    return archive


def all_talks() -> Dict[str, str]:
    """talk -> which set it must land in."""
    out = {t: "train" for t in TRAIN_TALKS}
    out.update({t: "dev" for t in DEV_TALKS})
    out.update({t: "test" for t in TEST_TALKS})
    out.update({t: "sa" for t in SA_TALKS})
    return out
