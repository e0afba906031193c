#!/usr/bin/env python3
"""Per-speaker speaker-adaptation (SA) data dirs and speaker lists, the same for every corpus.

    local/sa_dirs.py --pool data/local/sa_pool --datadir data --sa_partition paper \\
        --partition conf/sa_partition.tsv --sa_split conf/sa_split.yaml [--n_adapt N] [--n_dev N]

Why: which utterances a held-out speaker adapts on and which it is tested on decides what a
result means, so the rules live in one place (local/README.md) and a recipe's own local/ code only
writes the pool: a Kaldi dir of every SA speaker's utterances in the project's ids, plus
``utt2corpus`` (project utterance id -> the corpus's own id, the one a partition lists) and
``spk2corpus`` (project speaker id -> the corpus's speaker id). From it this writes, for every SA
speaker S, ``S_adapt`` and ``S_test`` (``segments`` kept when the pool has them), removes a stale
``S_dev``, and writes ``sa_tune.list`` / ``sa_eval.list`` and ``local/sa_sizes.tsv``.

Rules (``--sa_partition``):
  paper    the shipped partition (speaker, split, corpus id): train -> S_adapt (``--n_adapt`` > 0
           keeps its first N in utterance-id order), test -> S_test, dev held out. Every id of the
           partition must be in the pool: otherwise one error line names all missing ids.
  ordered  a speaker's utterances in utterance-id order: the first ``--n_adapt`` -> S_adapt, the
           next ``--n_dev`` held out, the rest -> S_test.
The per-speaker dev set is not written: no stage reads it (see local/README.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "local"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from espnet_p4q.cli import guarded  # noqa: E402
from espnet_p4q.fileio import InputError, read_kaldi_table, write_id_list, write_text_atomic  # noqa: E402
from kaldi_subset import read_dir, subset_dir  # noqa: E402

RULES = ("paper", "ordered")
SPLITS = ("train", "dev", "test")
Split = Tuple[List[str], List[str], List[str]]  # adapt (train), held-out dev, test: project utt ids


def log(msg: str) -> None:
    print(f"[sa_dirs] {msg}", file=sys.stderr, flush=True)


def read_partition(path: Path) -> List[Tuple[int, str, str, str]]:
    """Rows (line, speaker, split, corpus utterance id) of a partition TSV.

    ``#`` starts a comment and blank lines are skipped (the project's comment rule); the first
    other line is the header. A row needs 3 tab-separated fields, a known split and a new id.
    """
    rows: List[Tuple[int, str, str, str]] = []
    seen: Dict[str, int] = {}
    header = True
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
            if header:
                header = False
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[1] not in SPLITS:
                raise InputError(f"expected SPEAKER<tab>{'|'.join(SPLITS)}<tab>UTTERANCE, got {line.strip()!r}", path, n)
            if fields[2] in seen:
                raise InputError(f"'{fields[2]}' listed twice (first on line {seen[fields[2]]})", path, n)
            seen[fields[2]] = n
            rows.append((n, *fields))
    if not rows:
        raise InputError("the partition is empty", path)
    return rows


def read_sa_split(path: Path, speakers: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``tune:`` / ``eval:`` lists of a YAML file, checked to partition ``speakers``."""
    import yaml

    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    tune = [str(s) for s in conf.get("tune") or []]
    evals = [str(s) for s in conf.get("eval") or []]
    both = sorted(set(tune) & set(evals))
    if both:
        raise InputError(f"speakers both in tune and eval: {' '.join(both)}", path)
    missing = sorted(set(speakers) - set(tune) - set(evals))
    unknown = sorted((set(tune) | set(evals)) - set(speakers))
    if missing or unknown or len(tune) + len(evals) != len(speakers):
        raise InputError(f"tune + eval must list each SA speaker once; missing: {' '.join(missing) or '-'}, "
                         f"unknown: {' '.join(unknown) or '-'}", path)
    return tune, evals


def paper_split(partition: Path, utt2corpus: Dict[str, str], utt2spk: Dict[str, str],
                spk2corpus: Dict[str, str]) -> Dict[str, Split]:
    """The partition's splits in project ids; every partition id must be in the pool."""
    rows = read_partition(partition)
    project = {c: u for u, c in utt2corpus.items()}
    missing = [cid for _, _, _, cid in rows if cid not in project]
    if missing:
        raise InputError(f"{len(missing)} of {len(rows)} ids of the partition are not in the corpus copy: "
                         f"{' '.join(missing)}", partition)
    out: Dict[str, Split] = {}
    for n, spk, split, cid in rows:
        utt = project[cid]
        if spk2corpus.get(utt2spk[utt]) != spk:
            raise InputError(f"'{cid}' is listed for speaker {spk} but spoken by {spk2corpus.get(utt2spk[utt])}",
                             partition, n)
        out.setdefault(utt2spk[utt], ([], [], []))[SPLITS.index(split)].append(utt)
    extra = sorted(set(spk2corpus.values()) - {spk for _, spk, _, _ in rows})
    if extra:
        raise InputError(f"SA speakers without a partition: {' '.join(extra)}", partition)
    return {s: tuple(sorted(p) for p in parts) for s, parts in out.items()}


def ordered_split(utt2spk: Dict[str, str], n_adapt: int, n_dev: int) -> Dict[str, Split]:
    """Per speaker, utterance-id order: first ``n_adapt``, next ``n_dev``, the rest (not empty)."""
    if n_adapt < 1 or n_dev < 0:
        raise InputError(f"the ordered rule needs --n_adapt >= 1 and --n_dev >= 0, got {n_adapt}, {n_dev}")
    by_spk: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        by_spk.setdefault(utt2spk[utt], []).append(utt)
    out: Dict[str, Split] = {}
    for spk, utts in by_spk.items():
        if len(utts) <= n_adapt + n_dev:
            raise InputError(f"SA speaker {spk}: {len(utts)} utterances leave no test set after "
                             f"{n_adapt} adapt + {n_dev} dev")
        out[spk] = (utts[:n_adapt], utts[n_adapt:n_adapt + n_dev], utts[n_adapt + n_dev:])
    return out


def cap_adapt(splits: Dict[str, Split], n_adapt: int) -> Dict[str, Split]:
    """Keep the first ``n_adapt`` adaptation utterances of each speaker (0: all of them)."""
    if n_adapt == 0:
        return splits
    short = [f"{s} ({len(p[0])})" for s, p in splits.items() if len(p[0]) < n_adapt]
    if short:
        raise InputError(f"fewer adaptation utterances than --n_adapt {n_adapt}: {', '.join(short)}")
    return {s: (p[0][:n_adapt], p[1], p[2]) for s, p in splits.items()}


def make_sa_dirs(pool: Path, datadir: Path, rule: str, partition: Path, n_adapt: int, n_dev: int,
                 sa_split: Path) -> Dict[str, Tuple[int, int, int]]:
    """Write the SA dirs, speaker lists and sizes table from ``pool``; return the sizes."""
    utts, _, _ = read_dir(pool)
    utt2spk = {u: x.spk_id for u, x in utts.items()}
    spk2corpus = read_kaldi_table(pool / "spk2corpus")
    if set(spk2corpus) != set(utt2spk.values()):
        raise InputError("speakers differ from utt2spk", pool / "spk2corpus")
    if rule == "paper":
        if n_adapt < 0:
            raise InputError(f"--n_adapt must be >= 0, got {n_adapt}")
        splits = paper_split(partition, read_kaldi_table(pool / "utt2corpus"), utt2spk, spk2corpus)
        splits = cap_adapt(splits, n_adapt)
    elif rule == "ordered":
        splits = ordered_split(utt2spk, n_adapt, n_dev)
    else:
        raise InputError(f"--sa_partition must be one of {' '.join(RULES)}, got {rule!r}")
    corpus2spk = {c: s for s, c in spk2corpus.items()}
    tune, evals = read_sa_split(sa_split, list(corpus2spk))  # checked before anything is written
    sizes: Dict[str, Tuple[int, int, int]] = {}
    for spk in sorted(splits):
        adapt, dev, test = splits[spk]
        subset_dir(pool, datadir / f"{spk}_adapt", adapt)
        subset_dir(pool, datadir / f"{spk}_test", test)
        if (datadir / f"{spk}_dev").is_dir():  # written by earlier versions; nothing reads it
            shutil.rmtree(datadir / f"{spk}_dev")
        sizes[spk] = (len(adapt), len(dev), len(test))
        unused = sum(1 for s in utt2spk.values() if s == spk) - len(adapt) - len(dev) - len(test)
        shared = {utts[u].text for u in adapt} & {utts[u].text for u in test}
        log(f"{spk}: adapt {len(adapt)}, dev (held out) {len(dev)}, test {len(test)}, in no split {unused}, "
            f"sentences in both adapt and test {len(shared)}")
    write_id_list(datadir / "sa_tune.list", [corpus2spk[s] for s in tune])
    write_id_list(datadir / "sa_eval.list", [corpus2spk[s] for s in evals])
    write_text_atomic(datadir / "local" / "sa_sizes.tsv", "speaker\tadapt\tdev\ttest\n" + "".join(
        f"{s}\t{a}\t{d}\t{t}\n" for s, (a, d, t) in sizes.items()))
    return sizes


@guarded("local/sa_dirs.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="local/sa_dirs.py", description=__doc__.split("\n")[0])
    p.add_argument("--pool", required=True, type=Path, help="Kaldi dir of all SA utterances + utt2corpus, spk2corpus")
    p.add_argument("--datadir", default=Path("data"), type=Path)
    p.add_argument("--sa_partition", choices=RULES, default="paper", help="split rule (see above)")
    p.add_argument("--partition", type=Path, help="paper: TSV speaker, split, corpus utterance id")
    p.add_argument("--n_adapt", type=int, default=0, help="paper: cap on the train split, 0 = all; ordered: adapt size")
    p.add_argument("--n_dev", type=int, default=0, help="ordered: utterances held out after the adapt ones")
    p.add_argument("--sa_split", required=True, type=Path, help="YAML tune: / eval: lists of corpus speaker ids")
    p.add_argument("--log_level", default="INFO")
    a = p.parse_args(argv)
    if a.sa_partition == "paper" and a.partition is None:
        p.error("--sa_partition paper needs --partition")
    make_sa_dirs(a.pool, a.datadir, a.sa_partition, a.partition, a.n_adapt, a.n_dev, a.sa_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
