"""Helpers for the scoring tests: random transcripts and running NIST SCTK where installed."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest


def sctk_tool(name: str) -> Optional[str]:
    """Path of an SCTK program: on PATH, or where Debian's sctk package puts it."""
    found = shutil.which(name)
    if found:
        return found
    debian = Path("/usr/lib/sctk/bin") / name
    return str(debian) if debian.exists() else None


SCLITE = sctk_tool("sclite")
SC_STATS = sctk_tool("sc_stats")
needs_sclite = pytest.mark.skipif(SCLITE is None, reason="NIST SCTK sclite not installed")
needs_sc_stats = pytest.mark.skipif(SCLITE is None or SC_STATS is None,
                                    reason="NIST SCTK sclite/sc_stats not installed")

Transcripts = Dict[str, List[str]]

# The hand example both the scoring CLI and the MAPSSWE tests trace by hand: against REF, system A
# substitutes and deletes in spk1-u1, inserts in spk1-u2 and says nothing for spk2-u1; system B
# only deletes one word of spk2-u1.
HAND_REF: Transcripts = {"spk1-u1": "THE CAT SAT ON THE MAT".split(), "spk1-u2": "HELLO WORLD".split(),
                         "spk2-u1": "A B C D E".split()}
HAND_HYP_A: Transcripts = {"spk1-u1": "THE CAT SAT IN MAT".split(), "spk1-u2": "HELLO BIG WORLD".split(),
                           "spk2-u1": []}
HAND_HYP_B: Transcripts = {**HAND_REF, "spk2-u1": "A B C E".split()}


def corrupt(rng: random.Random, ref: List[str], p: float, vocab: List[str]) -> List[str]:
    """A hypothesis with random deletions, substitutions and insertions at rate ~p each."""
    hyp = []
    for w in ref:
        x = rng.random()
        if x < p:
            pass
        elif x < 2 * p:
            hyp.append(rng.choice(vocab))
        else:
            hyp.append(w if rng.random() < 0.8 else w.upper())  # case must not matter
        if rng.random() < p / 2:
            hyp.append(rng.choice(vocab))
    if rng.random() < 0.1:
        hyp.append(rng.choice(vocab))
    return hyp


def random_corpus(seed: int, n_hyps: int = 1, speakers=("s1", "spk_two", "A03"),
                  max_utts: int = 12, max_len: int = 15, p_empty_hyp: float = 0.05,
                  p_empty_ref: float = 0.0) -> Tuple[Transcripts, List[Transcripts]]:
    """A reference and ``n_hyps`` hypothesis sets over several speakers."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(rng.choice([4, 10, 40]))] + ["Ab", "aB", "x-y", "it's"]
    ref: Transcripts = {}
    hyps: List[Transcripts] = [{} for _ in range(n_hyps)]
    rates = [rng.uniform(0.02, 0.35) for _ in range(n_hyps)]
    for spk in speakers:
        for u in range(rng.randint(1, max_utts)):
            utt = f"{spk}-{rng.randint(0, 99999):05d}-{u}"
            words = [] if rng.random() < p_empty_ref else \
                [rng.choice(vocab) for _ in range(rng.randint(1, max_len))]
            ref[utt] = words
            for h, p in zip(hyps, rates):
                h[utt] = [] if rng.random() < p_empty_hyp else corrupt(rng, words, p, vocab)
    order = list(ref)
    rng.shuffle(order)  # speakers interleaved: sclite orders them by first appearance
    return ref, [{u: h[u] for u in order} for h in hyps]


def run_sclite_sum(workdir: Path, ref_trn: str, hyp_trn: str) -> str:
    """stdout of ``sclite -r REF trn -h HYP trn -i rm -o sum stdout`` run in ``workdir``."""
    out = subprocess.run([SCLITE, "-r", ref_trn, "trn", "-h", hyp_trn, "trn", "-i", "rm",
                          "-o", "sum", "stdout"], cwd=workdir, capture_output=True, text=True,
                         check=True)
    return out.stdout


def run_sclite_pralign_ops(workdir: Path, ref_trn: str, hyp_trn: str) -> Dict[str, List[str]]:
    """sclite's alignment of every utterance, as C/S/D/I lists (from its sgml output)."""
    subprocess.run([SCLITE, "-r", ref_trn, "trn", "-h", hyp_trn, "trn", "-i", "rm", "-o", "sgml",
                    "-O", "."], cwd=workdir, capture_output=True, check=True)
    sgml = (workdir / f"{hyp_trn}.sgml").read_text(encoding="utf-8")
    paths = {}
    for m in re.finditer(r'<PATH id="\((.*?)\)".*?>\n(.*?)</PATH>', sgml, re.S):
        body = m.group(2).strip()
        paths[m.group(1)] = [x.split(",")[0] for x in body.split(":")] if body else []
    return paths


def run_sc_stats_mapsswe(workdir: Path, ref_trn: str, a_trn: str, b_trn: str) -> dict:
    """Segments, mean, sd, Z (3 decimals), p (3 decimals, or a bound: ``p_below``) and winner
    from sc_stats' MAPSSWE."""
    subprocess.run([SCLITE, "-r", ref_trn, "trn", "-h", a_trn, "trn", "sysA", "-h", b_trn, "trn",
                    "sysB", "-i", "rm", "-o", "sgml", "-O", "."], cwd=workdir,
                   capture_output=True, check=True)
    sgml = (workdir / f"{a_trn}.sgml").read_bytes() + (workdir / f"{b_trn}.sgml").read_bytes()
    subprocess.run([SC_STATS, "-p", "-t", "mapsswe", "-v", "-n", "mp", "-O", "."], cwd=workdir,
                   input=sgml, capture_output=True, check=True)
    verbose = (workdir / "mp.stats.mapsswe").read_text()
    m = re.search(r"# segs: (\d+)\).*\(mean: (\S+)\) \(std dev: (\S+)\) \(Z Stat: (\S+)\) "
                  r"\(Stat Diff: (\w+)\)", verbose)
    unified = subprocess.run([SC_STATS, "-p", "-t", "mapsswe", "-u", "-n", "-"], cwd=workdir,
                             input=sgml, capture_output=True, check=True).stdout.decode()
    u = re.search(r"\|\|\s+sysA\s+\|\s+\|\s+(\S+)\s+(<?)([0-9.]+)", unified)
    return {"n_segments": int(m.group(1)), "mean": m.group(2), "sd": m.group(3),
            "z": m.group(4), "significant": m.group(5) == "Yes", "winner": u.group(1),
            "p": float(u.group(3)), "p_below": u.group(2) == "<"}
