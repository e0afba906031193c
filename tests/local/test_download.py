"""local/download.py: digests, resumable download, extraction markers (local files only)."""

from __future__ import annotations

import email.message
import hashlib
import io
import json
import tarfile
import sys
import urllib.error
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "local"))
import download as dl  # noqa: E402

PAYLOAD = bytes(range(256)) * 40  # 10 KiB


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def spec_for(path: Path, name="part") -> dl.ArchiveSpec:
    data = path.read_bytes()
    return dl.ArchiveSpec(name, path.name, {"sha256": sha256(data), "md5": hashlib.md5(data).hexdigest()})


def mirrored_part(tmp_path: Path, files: dict):
    """(mirror dir, archive p.tar.gz of ``files`` in it, its spec, an empty download dir path)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = make_tar(mirror / "p.tar.gz", files)
    return mirror, archive, spec_for(archive, "p"), tmp_path / "dl"


def make_tar(path: Path, files: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- digests
def test_parse_digest_accepts_and_rejects():
    assert dl.parse_digest("SHA256:" + "A" * 64) == ("sha256", "a" * 64)
    assert dl.parse_digest("md5:" + "0" * 32) == ("md5", "0" * 32)
    for bad in ("sha256:abc", "crc32:00000000", "md5" + "0" * 32, "md5:" + "g" * 32):
        with pytest.raises(ValueError):
            dl.parse_digest(bad)


def test_read_checksums(tmp_path):
    conf = tmp_path / "sums.txt"
    conf.write_text(f"# comment\n\na a.tar.gz sha256:{'1' * 64} md5:{'2' * 32}  # trailing\n")
    specs = dl.read_checksums(conf)
    assert specs["a"].filename == "a.tar.gz"
    assert specs["a"].digests == {"sha256": "1" * 64, "md5": "2" * 32}
    conf.write_text(f"a a.tar.gz sha256:{'1' * 64}\na b.tar.gz sha256:{'1' * 64}\n")
    with pytest.raises(ValueError, match="twice"):
        dl.read_checksums(conf)
    conf.write_text("a a.tar.gz\n")
    with pytest.raises(ValueError):
        dl.read_checksums(conf)


def test_verify_accepts_matching_and_rejects_any_mismatch(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(PAYLOAD)
    good = {"sha256": sha256(PAYLOAD), "md5": hashlib.md5(PAYLOAD).hexdigest()}
    dl.verify(f, good)
    dl.verify(f, {"sha256": good["sha256"]})
    with pytest.raises(dl.ChecksumError, match="md5"):
        dl.verify(f, {**good, "md5": "0" * 32})
    f.write_bytes(PAYLOAD[:-1] + b"\x00")  # one byte changed
    with pytest.raises(dl.ChecksumError):
        dl.verify(f, good)
    with pytest.raises(ValueError, match="no expected digest"):
        dl.verify(f, {})


def test_real_confs_parse():
    repo = Path(__file__).resolve().parents[2]
    ls = dl.read_checksums(repo / "egs2/librispeech_sa/asr1/conf/sa_archives.txt")
    assert {"dev-clean", "train-clean-100", "train-clean-360", "test-clean"} <= set(ls)
    assert all(set(s.digests) == {"sha256"} for s in ls.values())
    ted = dl.read_checksums(repo / "egs2/tedlium3_sa/asr1/conf/sa_archives.txt")
    assert ted["TEDLIUM_release-3"].filename == "TEDLIUM_release-3.tgz"


# ---------------------------------------------------------------- download
def test_download_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "f.bin"
    got = dl.download([src.as_uri()], dest, {"sha256": sha256(PAYLOAD)})
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("f.bin.part").exists()


def test_download_bad_digest_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "f.bin"
    with pytest.raises(dl.DownloadError, match="expected"):
        dl.download([src.as_uri()], dest, {"sha256": "0" * 64})
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


def test_download_falls_back_to_next_mirror(tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(PAYLOAD)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"corrupt")
    dest = tmp_path / "f.bin"
    urls = [(tmp_path / "missing.bin").as_uri(), bad.as_uri(), good.as_uri()]
    dl.download(urls, dest, {"sha256": sha256(PAYLOAD)})
    assert dest.read_bytes() == PAYLOAD


def test_download_refuses_without_digest(tmp_path):
    with pytest.raises(ValueError):
        dl.download(["file:///nonexistent"], tmp_path / "x", {})


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, status: int, content_range: str = ""):
        super().__init__(data)
        self.status = status
        self.headers = email.message.Message()
        if content_range:
            self.headers["Content-Range"] = content_range


class FakeServer:
    """An opener serving PAYLOAD, honouring Range when ``ranges`` is true; records requests."""

    def __init__(self, data: bytes, ranges: bool = True):
        self.data, self.ranges, self.requests = data, ranges, []

    def __call__(self, request, timeout=None):
        rng = request.get_header("Range")
        self.requests.append(rng)
        if rng and self.ranges:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(self.data):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)
            return FakeResponse(self.data[start:], 206, f"bytes {start}-{len(self.data) - 1}/{len(self.data)}")
        return FakeResponse(self.data, 200)


def test_resume_appends_to_part(tmp_path):
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(PAYLOAD[:3000])
    server = FakeServer(PAYLOAD)
    dl.download(["http://mirror/f.bin"], dest, {"sha256": sha256(PAYLOAD)}, opener=server)
    assert server.requests == ["bytes=3000-"]
    assert dest.read_bytes() == PAYLOAD


def test_resume_restarts_when_server_ignores_range(tmp_path):
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(PAYLOAD[:3000])
    server = FakeServer(PAYLOAD, ranges=False)
    dl.download(["http://mirror/f.bin"], dest, {"sha256": sha256(PAYLOAD)}, opener=server)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_is_accepted_on_416(tmp_path):
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(PAYLOAD)
    server = FakeServer(PAYLOAD)
    dl.download(["http://mirror/f.bin"], dest, {"sha256": sha256(PAYLOAD)}, opener=server)
    assert dest.read_bytes() == PAYLOAD and server.requests == [f"bytes={len(PAYLOAD)}-"]


def test_corrupt_resumed_prefix_is_fetched_again_from_scratch(tmp_path):
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"\xff" * 3000)  # wrong bytes from an earlier run
    server = FakeServer(PAYLOAD)
    dl.download(["http://mirror/f.bin"], dest, {"sha256": sha256(PAYLOAD)}, opener=server)
    assert server.requests == ["bytes=3000-", None]
    assert dest.read_bytes() == PAYLOAD


def test_network_error_keeps_part_for_next_run(tmp_path):
    dest = tmp_path / "f.bin"
    part = dest.with_name("f.bin.part")
    part.write_bytes(PAYLOAD[:100])

    def broken(request, timeout=None):
        raise urllib.error.URLError("connection reset")

    with pytest.raises(dl.DownloadError, match="connection reset"):
        dl.download(["http://mirror/f.bin"], dest, {"sha256": sha256(PAYLOAD)}, opener=broken)
    assert part.read_bytes() == PAYLOAD[:100]


# ---------------------------------------------------------------- extraction and fetch
def test_extract_members_and_marker(tmp_path):
    archive = make_tar(tmp_path / "p.tar.gz", {"C/p/1/a.txt": b"a", "C/p/2/b.txt": b"b", "C/README": b"r"})
    spec = spec_for(archive, "p")
    out = tmp_path / "out"
    (out / "C").mkdir(parents=True)
    (out / "C" / "other.txt").write_text("kept")  # a sibling part's files survive the merge
    dl.extract(archive, out, spec, members=["C/p/1"])
    assert (out / "C/p/1/a.txt").read_bytes() == b"a"
    assert not (out / "C/p/2").exists() and not (out / "C/README").exists()
    assert (out / "C/other.txt").read_text() == "kept"
    assert not (out / ".extract.p").exists()
    info = json.loads((out / ".done.p").read_text())
    assert info["members"] == ["C/p/1"] and info["digests"] == spec.digests
    assert dl.is_done(out, spec, ["C/p/1"])
    assert not dl.is_done(out, spec, ["C/p/2"])
    assert not dl.is_done(out, spec)  # a full extraction was not done
    other = dl.ArchiveSpec("p", "p.tar.gz", {"sha256": "0" * 64})
    assert not dl.is_done(out, other, ["C/p/1"])  # a different archive version


def test_extract_missing_member_fails_cleanly(tmp_path):
    archive = make_tar(tmp_path / "p.tar.gz", {"C/p/1/a.txt": b"a"})
    spec = spec_for(archive, "p")
    with pytest.raises(FileNotFoundError, match="C/p/9"):
        dl.extract(archive, tmp_path / "out", spec, members=["C/p/1", "C/p/9"])
    assert not (tmp_path / "out/.done.p").exists() and not (tmp_path / "out/C").exists()


def test_extract_discards_stale_partial_extraction(tmp_path):
    archive = make_tar(tmp_path / "p.tar.gz", {"C/x.txt": b"new"})
    spec = spec_for(archive, "p")
    stale = tmp_path / "out" / ".extract.p" / "C"
    stale.mkdir(parents=True)
    (stale / "junk.txt").write_text("half written")
    dl.extract(archive, tmp_path / "out", spec)
    assert (tmp_path / "out/C/x.txt").read_bytes() == b"new"
    assert not (tmp_path / "out/C/junk.txt").exists()


def test_extract_refuses_path_traversal(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", {"../escape.txt": b"x"})
    with pytest.raises(tarfile.TarError):
        dl.extract(archive, tmp_path / "out", spec_for(archive, "evil"))
    assert not (tmp_path / "escape.txt").exists()


def test_extract_keeps_inner_links_and_skips_outside_ones(tmp_path):
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"T/data/a.sph": b"audio"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in {"T/legacy/a.sph": "../data/a.sph", "T/evil": "/etc/passwd",
                             "T/up": "../../../outside"}.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    dl.extract(archive, tmp_path / "out", spec_for(archive, "links"))
    assert (tmp_path / "out/T/legacy/a.sph").read_bytes() == b"audio"
    assert not (tmp_path / "out/T/evil").is_symlink() and not (tmp_path / "out/T/up").is_symlink()


def test_fetch_download_extract_then_done_offline(tmp_path):
    mirror, archive, spec, dest = mirrored_part(tmp_path, {"C/p/a.txt": b"a"})
    assert dl.fetch(spec, [mirror.as_uri()], dest, dest, keep_archive=False) == "fetched"
    assert (dest / "C/p/a.txt").read_bytes() == b"a" and not (dest / "p.tar.gz").exists()
    archive.unlink()  # no mirror any more: a finished part needs none
    assert dl.fetch(spec, [mirror.as_uri()], dest, dest) == "done"


def test_fetch_uses_existing_copy_unless_partial_state(tmp_path):
    spec = dl.ArchiveSpec("p", "p.tar.gz", {"sha256": "0" * 64})
    dest = tmp_path / "dl"
    (dest / "C/p").mkdir(parents=True)
    assert dl.fetch(spec, ["file:///nowhere"], dest, dest, existing=[dest / "C/p"]) == "existing"
    (dest / "p.tar.gz.part").write_bytes(b"half")  # ours, interrupted: must be redone, not trusted
    with pytest.raises(dl.DownloadError):
        dl.fetch(spec, [(tmp_path / "nowhere").as_uri()], dest, dest, existing=[dest / "C/p"])


def test_fetch_replaces_corrupt_local_archive(tmp_path):
    mirror, archive, spec, dest = mirrored_part(tmp_path, {"C/a.txt": b"a"})
    dest.mkdir()
    (dest / "p.tar.gz").write_bytes(b"truncated")
    assert dl.fetch(spec, [mirror.as_uri()], dest, dest) == "fetched"
    assert (dest / "p.tar.gz").read_bytes() == archive.read_bytes()


def test_cli_verify_exit_codes(tmp_path, capsys):
    f = tmp_path / "x.tar.gz"
    f.write_bytes(PAYLOAD)
    conf = tmp_path / "sums.txt"
    conf.write_text(f"x x.tar.gz sha256:{sha256(PAYLOAD)}\ny y.tar.gz sha256:{'0' * 64}\n")
    assert dl.main(["verify", "--checksums", str(conf), "--name", "x", str(f)]) == 0
    assert dl.main(["verify", "--checksums", str(conf), "--name", "y", str(f)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("local/download.py: error: ChecksumError:") and "expected" in err[-1]
