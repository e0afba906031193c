"""egs2/librispeech_sa/asr1/local/data.sh end to end: file:// mirror, checksums, markers, dirs."""

from __future__ import annotations

import hashlib

import tiny_librispeech as tiny
from recipe_checks import REPO, data_sh_runner

RECIPE = REPO / "egs2/librispeech_sa/asr1"
run = data_sh_runner(RECIPE, "LIBRISPEECH")
# fixture mirror (tests/egs2/conftest.py): a file:// mirror with the four parts and their checksums


def test_help_exits_zero(tmp_path):
    proc = run(["--help"], tmp_path)
    assert "--n_adapt" in proc.stdout and "Stages" in proc.stdout
    assert "--sa_partition RULE" in proc.stdout and "ordered" in proc.stdout


def test_bad_options_exit_nonzero(tmp_path):
    assert run(["--no_such_option", "1"], tmp_path, check=False).returncode != 0
    assert run(["--n_adapt"], tmp_path, check=False).returncode != 0
    assert run(["--keep_archives", "maybe"], tmp_path, check=False).returncode != 0
    assert run(["--sa_partition", "random"], tmp_path, check=False).returncode == 2
    assert run(["--sa_partition", "ordered"], tmp_path, check=False).returncode == 2  # needs --n_adapt
    assert run(["--n_adapt", "-1"], tmp_path, check=False).returncode == 2


def test_download_prepare_and_rerun_offline(mirror, tmp_path):
    www, conf = mirror
    dl = tmp_path / "dl"
    args = ["--mirrors", f"file://{tmp_path}/nowhere {www.as_uri()}", "--checksums", str(conf),
            "--include_test_clean", "true"]
    run(args, tmp_path, dl)
    for part in ("dev-clean", "train-clean-100", "test-clean", "train-clean-360"):
        assert (dl / f".done.{part}").is_file() and (dl / f"{part}.tar.gz").is_file()
    sa_dirs = sorted(p.name for p in (dl / "LibriSpeech/train-clean-360").iterdir())
    assert sa_dirs == sorted(tiny.SA_READERS)  # only the SA readers were extracted
    data = tmp_path / "data"
    for name in ("train", "dev", "test_clean", "ls115_adapt", "ls115_test", "ls6553_test"):
        assert (data / name / "wav.scp").is_file(), name
    assert not (data / "ls115_dev").exists()  # the authors' dev split is held out, not written
    assert len((data / "ls115_adapt/text").read_text().splitlines()) == 59  # --sa_partition paper
    assert len((data / "ls115_test/text").read_text().splitlines()) == 59
    assert (data / "sa_tune.list").read_text() == "ls115\nls829\n"
    # second run: every part is marked done, so no mirror is needed
    before = {p: p.stat().st_mtime_ns for p in (dl / "LibriSpeech").rglob("*.flac")}
    proc = run(["--mirrors", "file:///nowhere", "--checksums", str(conf), "--sa_partition", "ordered",
                "--n_adapt", "30", "--n_dev", "10", "--stop_stage", "2"], tmp_path, dl)
    assert "train-clean-360: done" in proc.stderr
    assert before == {p: p.stat().st_mtime_ns for p in (dl / "LibriSpeech").rglob("*.flac")}
    assert len((data / "ls115_adapt/text").read_text().splitlines()) == 30
    assert len((data / "ls115_test/text").read_text().splitlines()) == 148 - 40


def test_corrupt_archive_fails_and_extracts_nothing(mirror, tmp_path):
    www, conf = mirror
    bad_conf = tmp_path / "sums.txt"
    bad_conf.write_text("".join(
        line if not line.startswith("dev-clean") else f"dev-clean dev-clean.tar.gz sha256:{'0' * 64}\n"
        for line in conf.read_text().splitlines(keepends=True)))
    dl = tmp_path / "dl"
    proc = run(["--mirrors", www.as_uri(), "--checksums", str(bad_conf), "--stop_stage", "1"], tmp_path, dl, check=False)
    assert proc.returncode != 0 and "local/download.py: error: DownloadError:" in proc.stderr and "expected" in proc.stderr
    assert not (dl / "LibriSpeech").exists() and not list(dl.glob("dev-clean.tar.gz*"))


def test_existing_extracted_copy_is_used_without_download(tmp_path):
    corpus = tiny.make_corpus(tmp_path / "corpus")
    proc = run(["--mirrors", "file:///nowhere", "--audio", "path"], tmp_path, corpus)
    assert proc.stderr.count(": existing") == 3
    wav = (tmp_path / "data/ls115_adapt/wav.scp").read_text().split()[1]
    assert wav.startswith(str(corpus.resolve())) and wav.endswith(".flac")


def test_real_checksum_conf_matches_openslr_file_names():
    lines = [l.split() for l in (RECIPE / "conf/sa_archives.txt").read_text().splitlines() if l and l[0] != "#"]
    assert all(name + ".tar.gz" == fname for name, fname, *_ in lines)
    assert all(len(d.split(":")[1]) == 64 for *_, d in lines)
    assert hashlib.sha256(b"").hexdigest() not in (RECIPE / "conf/sa_archives.txt").read_text()
