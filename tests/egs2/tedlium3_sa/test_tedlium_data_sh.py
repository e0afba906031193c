"""egs2/tedlium3_sa/asr1/local/data.sh end to end: file:// mirror, checksum, marker, dirs."""

from __future__ import annotations

from pathlib import Path

import tiny_tedlium as tiny
from recipe_checks import REPO, data_sh_runner

RECIPE = REPO / "egs2/tedlium3_sa/asr1"
run = data_sh_runner(RECIPE, "TEDLIUM3")
# fixture mirror (tests/egs2/conftest.py): a file:// mirror with the archive and its checksum


def lines(path: Path):
    return path.read_text().splitlines()


def test_help_exits_zero(tmp_path):
    proc = run(["--help"], tmp_path)
    assert "--n_adapt" in proc.stdout and "ignore_time_segment_in_scoring" in proc.stdout


def test_bad_options_exit_nonzero(tmp_path):
    assert run(["--nope", "1"], tmp_path, check=False).returncode != 0
    assert run(["--segments", "yes"], tmp_path, check=False).returncode != 0
    assert run(["--sa_partition", "random"], tmp_path, check=False).returncode == 2
    assert run(["--sa_partition", "ordered", "--n_adapt", "0"], tmp_path, check=False).returncode == 2
    assert run(["--excluded", str(tmp_path / "none.txt")], tmp_path, check=False).returncode == 2


def test_download_prepare_validate_and_rerun(mirror, tmp_path):
    www, conf = mirror
    dl = tmp_path / "dl"
    run(["--mirrors", www.as_uri(), "--checksums", str(conf), "--include_test", "true"], tmp_path, dl)
    assert (dl / ".done.TEDLIUM_release-3").is_file()
    data = tmp_path / "data"
    assert {l.split()[0] for l in lines(data / "train/wav.scp")} == {"AlGore_2009", "Jean_Luc_2011", "ZedTalk_2012"}
    to_corpus = dict(l.split() for l in lines(data / "local/sa_pool/utt2corpus"))
    for talk in tiny.SA_TALKS:  # --sa_partition paper: the authors' train and test splits, no dev dir
        for suffix, split in (("adapt", "train"), ("test", "test")):
            got = sorted(to_corpus[l.split()[0]] for l in lines(data / f"{talk}_{suffix}/segments"))
            assert got == sorted(u for t, s, u in tiny.partition_rows() if t == talk and s == split), talk
        assert not (data / f"{talk}_dev").exists()
        assert not set(lines(data / f"{talk}_adapt/text")) & set(lines(data / f"{talk}_test/text"))
    train_spk = {l.split()[1] for l in lines(data / "train/utt2spk")}
    assert not train_spk & set(tiny.SA_TALKS)
    assert lines(data / "sa_tune.list") == sorted(tiny.SA_TALKS)[::4]
    (www / "TEDLIUM_release-3.tgz").rename(www / "moved.tgz")  # rerun needs no mirror
    try:
        proc = run(["--mirrors", www.as_uri(), "--checksums", str(conf), "--sa_partition", "ordered",
                    "--n_adapt", "3", "--n_dev", "1", "--segments", "false"], tmp_path, dl)
    finally:
        (www / "moved.tgz").rename(www / "TEDLIUM_release-3.tgz")
    assert "TEDLIUM_release-3: done" in proc.stderr
    assert len(lines(data / "AmandaBurden_2014_adapt/text")) == 3
    assert not (data / "AmandaBurden_2014_test/segments").exists()
    assert "trim" in (data / "AmandaBurden_2014_test/wav.scp").read_text()


def test_existing_extracted_copy(tmp_path):
    corpus = tiny.make_corpus(tmp_path / "corpus")
    proc = run(["--mirrors", "file:///nowhere", "--stop_stage", "2"], tmp_path, corpus)
    assert "TEDLIUM_release-3: existing" in proc.stderr
    n_test = sum(1 for t, s, _ in tiny.partition_rows() if t == "PWSinger_2009" and s == "test")
    assert len(lines(tmp_path / "data/PWSinger_2009_test/text")) == n_test
