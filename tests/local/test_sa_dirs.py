"""local/sa_dirs.py: the SA split rules on small generated pools (with and without segments)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "local"))

import sa_dirs  # noqa: E402
from kaldi_subset import read_dir  # noqa: E402

from espnet_p4q.data.kaldi_dir import write_data_dir as write_dir  # noqa: E402

from espnet_p4q.data.kaldi_dir import Utterance  # noqa: E402
from espnet_p4q.fileio import InputError  # noqa: E402

SPEAKERS = {"spkA": "A", "spkB": "B"}  # project id -> corpus id
N = 10  # utterances a speaker


def cid(spk: str, i: int) -> str:
    return f"{SPEAKERS[spk]}_{i}"


def make_pool(root: Path, segments: bool = False, drop=()) -> Path:
    """Two speakers of N utterances; project ids sort in index order, corpus ids do not."""
    utts, cuts = [], {}
    for spk in SPEAKERS:
        for i in range(N):
            utt = f"{spk}-{i:03d}"
            if cid(spk, i) in drop:
                continue
            utts.append(Utterance(utt, spk, f"/audio/{utt}.wav", f"SENTENCE {spk.upper()} {i}"))
            cuts[utt] = (spk, f"{i}.00", f"{i}.50")
    pool = root / "pool"
    if segments:
        write_dir(pool, utts, cuts, {s: f"sox /audio/{s}.sph -t wav - |" for s in SPEAKERS})
    else:
        write_dir(pool, utts)
    (pool / "utt2corpus").write_text("".join(f"{u.utt_id} {SPEAKERS[u.spk_id]}_{int(u.utt_id[-3:])}\n"
                                             for u in utts))
    (pool / "spk2corpus").write_text("".join(f"{s} {c}\n" for s, c in SPEAKERS.items()))
    return pool


def write_partition(path: Path, rows) -> Path:
    path.write_text("# a note\nspeaker\tsplit\tutt_id\n" + "".join(f"{s}\t{sp}\t{u}\n" for s, sp, u in rows))
    return path


def partition_rows():
    """Per speaker: 3, 7, 9 train; 0, 5 dev; the rest test, except 8 (in no split)."""
    split = {3: "train", 7: "train", 9: "train", 0: "dev", 5: "dev", 1: "test", 2: "test", 4: "test", 6: "test"}
    return [(c, split[i], f"{c}_{i}") for c in SPEAKERS.values() for i in sorted(split)]


@pytest.fixture
def conf(tmp_path):
    (tmp_path / "split.yaml").write_text("tune: [A]\neval: [B]\n")
    return write_partition(tmp_path / "part.tsv", partition_rows()), tmp_path / "split.yaml"


def ids(d: Path):
    return sorted(read_dir(d)[0])


@pytest.mark.parametrize("segments", [False, True])
def test_paper_rule_writes_exactly_the_partition(tmp_path, conf, segments):
    part, split = conf
    pool = make_pool(tmp_path, segments)
    out = tmp_path / "data"
    (out / "spkA_dev").mkdir(parents=True)  # stale, from an earlier version
    sizes = sa_dirs.make_sa_dirs(pool, out, "paper", part, 0, 0, split)
    assert sizes == {"spkA": (3, 2, 4), "spkB": (3, 2, 4)}
    assert ids(out / "spkA_adapt") == ["spkA-003", "spkA-007", "spkA-009"]
    assert ids(out / "spkB_test") == ["spkB-001", "spkB-002", "spkB-004", "spkB-006"]
    assert not (out / "spkA_dev").exists() and not (out / "spkB_dev").exists()
    assert (out / "sa_tune.list").read_text() == "spkA\n" and (out / "sa_eval.list").read_text() == "spkB\n"
    assert (out / "local/sa_sizes.tsv").read_text() == "speaker\tadapt\tdev\ttest\nspkA\t3\t2\t4\nspkB\t3\t2\t4\n"
    assert (out / "spkA_adapt/text").read_text().splitlines()[0] == "spkA-003 SENTENCE SPKA 3"
    if segments:
        assert (out / "spkA_adapt/segments").read_text() == (
            "spkA-003 spkA 3.00 3.50\nspkA-007 spkA 7.00 7.50\nspkA-009 spkA 9.00 9.50\n")
        assert (out / "spkA_adapt/wav.scp").read_text() == "spkA sox /audio/spkA.sph -t wav - |\n"
    else:
        assert (out / "spkA_adapt/wav.scp").read_text().splitlines()[0] == "spkA-003 /audio/spkA-003.wav"


def test_paper_rule_n_adapt_keeps_the_first_in_id_order(tmp_path, conf):
    part, split = conf
    sizes = sa_dirs.make_sa_dirs(make_pool(tmp_path), tmp_path / "d", "paper", part, 2, 0, split)
    assert sizes["spkA"] == (2, 2, 4) and ids(tmp_path / "d/spkA_adapt") == ["spkA-003", "spkA-007"]
    with pytest.raises(InputError, match=r"fewer adaptation utterances than --n_adapt 4: spkA \(3\)"):
        sa_dirs.make_sa_dirs(make_pool(tmp_path), tmp_path / "d", "paper", part, 4, 0, split)


def test_ordered_rule(tmp_path, conf):
    part, split = conf
    sizes = sa_dirs.make_sa_dirs(make_pool(tmp_path), tmp_path / "d", "ordered", part, 4, 2, split)
    assert sizes["spkB"] == (4, 2, 4)
    assert ids(tmp_path / "d/spkB_adapt") == [f"spkB-{i:03d}" for i in range(4)]
    assert ids(tmp_path / "d/spkB_test") == [f"spkB-{i:03d}" for i in range(6, 10)]
    with pytest.raises(InputError, match="no test set"):
        sa_dirs.make_sa_dirs(make_pool(tmp_path), tmp_path / "d", "ordered", part, 8, 2, split)
    with pytest.raises(InputError, match="n_adapt >= 1"):
        sa_dirs.make_sa_dirs(make_pool(tmp_path), tmp_path / "d", "ordered", part, 0, 2, split)


def test_missing_ids_fail_in_one_line_naming_all(tmp_path, conf):
    part, split = conf
    pool = make_pool(tmp_path, drop={"A_7", "B_2", "B_8"})  # B_8 is in no split: not needed
    cmd = [sys.executable, str(REPO / "local/sa_dirs.py"), "--pool", str(pool), "--datadir", str(tmp_path / "d"),
           "--sa_partition", "paper", "--partition", str(part), "--sa_split", str(split)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"local/sa_dirs.py: error: 2 of 18 ids of the partition are not in the corpus copy: A_7 B_2 ({part})"]
    assert not (tmp_path / "d").exists()


def test_partition_checks(tmp_path, conf):
    part, split = conf
    pool = make_pool(tmp_path)
    rows = partition_rows()
    bad = [
        (rows[:3] + [("A", "valid", "A_8")], "expected SPEAKER"),
        (rows + [rows[0]], "listed twice"),
        ([("B", s, u) if u == "A_3" else (c, s, u) for c, s, u in rows], "listed for speaker B but spoken by A"),
        ([r for r in rows if r[0] == "A"], "SA speakers without a partition: B"),
    ]
    for content, message in bad:
        write_partition(part, content)
        with pytest.raises(InputError, match=message):
            sa_dirs.make_sa_dirs(pool, tmp_path / "d", "paper", part, 0, 0, split)
    write_partition(part, [])
    with pytest.raises(InputError, match="empty"):
        sa_dirs.read_partition(part)


def test_read_sa_split_rejects_bad_partitions(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("tune: [1]\neval: [1, 2]\n")
    with pytest.raises(InputError, match="both"):
        sa_dirs.read_sa_split(y, ["1", "2"])
    y.write_text("tune: [1]\neval: [3]\n")
    with pytest.raises(InputError, match="missing: 2, unknown: 3"):
        sa_dirs.read_sa_split(y, ["1", "2"])
    y.write_text("tune: [2]\neval: [1]\n")
    assert sa_dirs.read_sa_split(y, ["1", "2"]) == (["2"], ["1"])
