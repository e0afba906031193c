"""Build a tiny TED-LIUM 3 tree (NIST SPHERE audio + STM) for offline tests.

Why: the recipe must be checked without the 51 GB corpus. A training, dev or test talk gets 6
scored segments, one ``ignore_time_segment_in_scoring`` gap and one segment that normalises to
nothing; its STM lines are written out of time order. An SA talk gets exactly the segments the
shipped partition indexes (``<talk>_0`` .. ``<talk>_<N-1>``, the excluded ones included), in time
order, with segments containing ``<unk>``, a gap and an emptied segment between them, so the
authors' index must skip those to come out right. One SA talk exists only under
``speaker-adaptation/test`` and one training talk has a ``-`` in its id.
"""

from __future__ import annotations

import functools
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

SR = 16000
CONF = Path(__file__).resolve().parents[3] / "egs2/tedlium3_sa/asr1/conf"
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


def _rows(path: Path) -> List[List[str]]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line.split("\t") for line in lines if line]


@functools.lru_cache(maxsize=None)
def partition_rows() -> List[Tuple[str, str, str]]:
    """(talk, split, id) of the shipped partition, file order."""
    return [tuple(r) for r in _rows(CONF / "sa_partition.tsv")[1:]]


def excluded_ids() -> List[str]:
    return [r[0] for r in _rows(CONF / "sa_partition_excluded.txt")]


def n_indexed(talk: str) -> int:
    """Segments the authors index in ``talk``: its partition ids plus its excluded ones."""
    ids = [u for t, _, u in partition_rows() if t == talk] + [e for e in excluded_ids() if e.startswith(talk + "_")]
    return len(ids)


@functools.lru_cache(maxsize=None)
def sa_plan(talk: str) -> List[Tuple[str, str, str, Optional[int]]]:
    """(start, end, raw STM words, authors' k or None) of an SA talk, in time order.

    Indexed segment k says "we 're at line k"; after every 20th a segment with ``<unk>``, near
    the start a gap and a segment that normalises to nothing: none of these gets an index.
    """
    plan, t = [], 5  # centiseconds; segments 5 cs long, every 6 cs
    for k in range(n_indexed(talk)):
        extra = [("it 's <unk> here", None)] if k % 20 == 3 else []
        if k == 5:
            extra += [("ignore_time_segment_in_scoring", None), ("{BREATH} <sil>", None)]
        for raw, idx in [(f"we 're at line {k}", k)] + extra:
            plan.append((f"{t / 100:.2f}", f"{(t + 5) / 100:.2f}", raw, idx))
            t += 6
    return plan


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


def sa_stm_lines(talk: str) -> List[str]:
    out = [";; tiny test STM of an SA talk\n"]
    for start, end, raw, _ in sa_plan(talk):
        spk = "inter_segment_gap" if raw.startswith("ignore_") else talk
        out.append(f"{talk} 1 {spk} {start} {end} <o,f0,female> {raw}\n")
    return out


@functools.lru_cache(maxsize=None)
def talk_audio(talk: str) -> np.ndarray:
    """Deterministic int16 noise per talk: 4.5 s, or 0.5 s past an SA talk's last segment."""
    seed = sum(map(ord, talk))
    seconds = float(sa_plan(talk)[-1][1]) + 0.5 if talk in SA_TALKS else 4.5
    audio = (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 3000).astype(np.int16)
    audio.flags.writeable = False
    return audio


def write_talk(d: Path, talk: str) -> None:
    (d / "stm").mkdir(parents=True, exist_ok=True)
    (d / "sph").mkdir(parents=True, exist_ok=True)
    lines = sa_stm_lines(talk) if talk in SA_TALKS else stm_lines(talk)
    (d / "stm" / f"{talk}.stm").write_text("".join(lines))
    sf.write(d / "sph" / f"{talk}.sph", talk_audio(talk), SR, format="NIST", subtype="PCM_16")


def make_corpus(root: Path) -> Path:
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


def make_archives(root: Path, mirror: Path) -> Dict[str, Path]:
    """Pack ``root/TEDLIUM_release-3`` as ``mirror/TEDLIUM_release-3.tgz``; return {name: archive}."""
    mirror.mkdir(parents=True, exist_ok=True)
    archive = mirror / "TEDLIUM_release-3.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "TEDLIUM_release-3", arcname="TEDLIUM_release-3")
    return {"TEDLIUM_release-3": archive}


def all_talks() -> Dict[str, str]:
    """talk -> which set it must land in."""
    out = {t: "train" for t in TRAIN_TALKS}
    out.update({t: "dev" for t in DEV_TALKS})
    out.update({t: "test" for t in TEST_TALKS})
    out.update({t: "sa" for t in SA_TALKS})
    return out
