"""Fetch corpus archives: resumable download, digest check, extraction behind a done-marker.

Why: a 23 GB LibriSpeech part must survive a dropped connection, must not be trusted before its
digest matches the one in the recipe's conf, and an interrupted extraction must never leave a
tree that looks finished. Downloads go to ``NAME.part`` (resumed with an HTTP Range request where
the server allows it) and are renamed only once verified; archives are unpacked into a hidden
sibling directory, merged into place, and only then marked done.

CLI (used by the paper-scale recipes' ``local/data.sh``; it knows no corpus, only a checksum conf)::

    local/download.py fetch --checksums conf/sa_archives.txt --name dev-clean \\
        --mirror https://www.openslr.org/resources/12 --download_dir downloads --extract_dir downloads
    local/download.py verify --checksums conf/sa_archives.txt --name dev-clean FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from espnet2.utils.types import str2bool  # noqa: E402

from espnet_p4q.cli import guarded  # noqa: E402
from espnet_p4q.fileio import InputError, write_json_atomic  # noqa: E402

CHUNK = 1 << 20
ALGORITHMS = ("md5", "sha1", "sha256", "sha512")


class ChecksumError(RuntimeError):
    """A file's digest differs from the expected one."""


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected digest."""


@dataclass(frozen=True)
class ArchiveSpec:
    """One archive of a corpus: its conf name, file name and expected digests (algo -> hex)."""

    name: str
    filename: str
    digests: Dict[str, str]


def log(msg: str) -> None:
    print(f"[download {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_digest(text: str) -> tuple:
    """``"sha256:ab12.."`` -> ``("sha256", "ab12..")``, checked for algorithm and hex length."""
    algo, sep, hexdigest = text.partition(":")
    algo, hexdigest = algo.lower(), hexdigest.lower()
    if not sep or algo not in ALGORITHMS:
        raise ValueError(f"digest {text!r}: expected ALGO:HEX with ALGO in {ALGORITHMS}")
    if len(hexdigest) != hashlib.new(algo).digest_size * 2 or any(
        c not in "0123456789abcdef" for c in hexdigest
    ):
        raise ValueError(f"digest {text!r}: not a {algo} hex digest")
    return algo, hexdigest


def read_checksums(path: os.PathLike) -> Dict[str, ArchiveSpec]:
    """Read a checksum conf: ``NAME FILENAME ALGO:HEX [ALGO:HEX...]`` per line, ``#`` comments."""
    specs: Dict[str, ArchiveSpec] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) < 3:
                raise InputError("expected NAME FILENAME ALGO:HEX...", path, lineno)
            name, filename, *digests = fields
            if name in specs:
                raise InputError(f"{name} listed twice", path, lineno)
            specs[name] = ArchiveSpec(name, filename, dict(parse_digest(d) for d in digests))
    return specs


def file_digests(path: os.PathLike, algos: Iterable[str]) -> Dict[str, str]:
    """Hex digests of a file for several algorithms, in one pass over the file."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


def verify(path: os.PathLike, digests: Dict[str, str]) -> None:
    """Raise ChecksumError unless every expected digest of ``path`` matches."""
    if not digests:
        raise ValueError(f"{path}: no expected digest given; refusing to trust it")
    got = file_digests(path, digests)
    bad = [f"{a}: expected {digests[a]}, got {got[a]}" for a in digests if got[a] != digests[a]]
    if bad:
        raise ChecksumError(f"{path}: " + "; ".join(bad))


def _fetch_to_part(url: str, part: Path, opener: Callable, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (Range request), or rewrite it if not resumable."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part is already whole
            return
        raise
    with response:
        status = getattr(response, "status", None)
        content_range = response.headers.get("Content-Range", "") if response.headers else ""
        resumed = bool(offset) and status == 206 and content_range.startswith(f"bytes {offset}-")
        if offset and not resumed:
            log(f"{url}: server does not resume; downloading from the start")
        next_report = CHUNK * 1024
        written = offset if resumed else 0
        with open(part, "ab" if resumed else "wb") as f:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                written += len(block)
                if written >= next_report:
                    log(f"{part.name}: {written / 2**30:.1f} GiB")
                    next_report += CHUNK * 1024


def download(
    urls: Sequence[str],
    dest: os.PathLike,
    digests: Dict[str, str],
    opener: Callable = urllib.request.urlopen,
    timeout: float = 60.0,
) -> Path:
    """Download the first URL that yields a file with ``digests`` to ``dest``; resume ``dest.part``.

    A resumed file that fails the check is fetched once more from scratch before the next mirror
    is tried, since a corrupt prefix cannot be told apart from a corrupt tail.
    """
    if not digests:
        raise ValueError(f"{dest}: no expected digest given; refusing to download unchecked")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: List[str] = []
    for url in urls:
        for attempt in (1, 2):
            resumed = part.exists() and part.stat().st_size > 0
            try:
                log(f"{'resuming' if resumed else 'fetching'} {url}")
                _fetch_to_part(url, part, opener, timeout)
                verify(part, digests)
            except ChecksumError as e:
                part.unlink(missing_ok=True)
                errors.append(str(e))
                if resumed and attempt == 1:
                    continue
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {e}")
                break  # keep the .part: the next mirror (or the next run) resumes it
            os.replace(part, dest)
            return dest
    raise DownloadError(f"{dest.name}: no mirror delivered a verified file:\n  " + "\n  ".join(errors))


def _selected(name: str, members: Optional[Sequence[str]]) -> bool:
    if not members:
        return True
    name = name.rstrip("/")
    return any(name == m or name.startswith(m + "/") or m.startswith(name + "/") for m in members)


def _merge(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst``, directory by directory, replacing files."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge(entry, target)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)


def marker_path(extract_dir: os.PathLike, name: str) -> Path:
    return Path(extract_dir) / f".done.{name}"


def is_done(extract_dir: os.PathLike, spec: ArchiveSpec, members: Optional[Sequence[str]] = None) -> bool:
    """True when ``spec`` was extracted from an archive with the same digests and covers ``members``."""
    marker = marker_path(extract_dir, spec.name)
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if info.get("digests") != spec.digests:
        return False
    done = info.get("members")
    if done is None:
        return True
    return bool(members) and set(m.rstrip("/") for m in members) <= set(done)


def _filter(member: tarfile.TarInfo, dest: str) -> Optional[tarfile.TarInfo]:
    """tarfile's ``data`` filter, except that a link leaving the tree is skipped, not fatal.

    Why: one odd link must not abort a 50 GB extraction; files with unsafe paths still do.
    """
    try:
        return tarfile.data_filter(member, dest)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError) as e:
        log(f"skipping link {member.name}: {e}")
        return None


def extract(
    archive: os.PathLike,
    extract_dir: os.PathLike,
    spec: ArchiveSpec,
    members: Optional[Sequence[str]] = None,
) -> Path:
    """Unpack ``archive`` (or only the ``members`` path prefixes) into ``extract_dir``; write the marker.

    Files land in ``extract_dir/.extract.NAME`` first; a previous interrupted attempt there is
    wiped, so a rerun always starts clean. Absolute paths and ``..`` are refused (tarfile's
    ``data`` filter); links leaving the tree are skipped with a message.
    """
    extract_dir = Path(extract_dir)
    members = [m.rstrip("/") for m in members] if members else None
    tmp = extract_dir / f".extract.{spec.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    found = set()
    log(f"extracting {Path(archive).name}" + (f" ({len(members)} members)" if members else ""))
    with tarfile.open(archive, "r|*") as tar:
        for info in tar:
            if _selected(info.name, members):
                tar.extract(info, tmp, filter=_filter)
                if members:
                    found.update(m for m in members if _selected(info.name, [m]))
    if members and set(members) - found:
        shutil.rmtree(tmp)
        raise FileNotFoundError(f"{archive}: no such members: {sorted(set(members) - found)}")
    _merge(tmp, extract_dir)
    shutil.rmtree(tmp)
    marker = marker_path(extract_dir, spec.name)
    write_json_atomic(marker, {"archive": spec.filename, "digests": spec.digests, "members": members})
    return marker


def has_partial_state(download_dir: os.PathLike, extract_dir: os.PathLike, spec: ArchiveSpec) -> bool:
    """True when an earlier run of ours left an archive, a ``.part`` or an unfinished extraction."""
    d = Path(download_dir)
    return any(
        p.exists()
        for p in (
            d / spec.filename,
            d / (spec.filename + ".part"),
            Path(extract_dir) / f".extract.{spec.name}",
        )
    )


def fetch(
    spec: ArchiveSpec,
    mirrors: Sequence[str],
    download_dir: os.PathLike,
    extract_dir: os.PathLike,
    members: Optional[Sequence[str]] = None,
    existing: Sequence[os.PathLike] = (),
    keep_archive: bool = True,
    opener: Callable = urllib.request.urlopen,
) -> str:
    """Make ``spec`` available under ``extract_dir``; return ``done``, ``existing`` or ``fetched``.

    ``existing`` lists paths that, when all present and no partial state of ours is around, show
    that the user already extracted the corpus there: it is used as is (not re-verified).
    """
    if is_done(extract_dir, spec, members):
        return "done"
    if existing and all(Path(p).exists() for p in existing):
        if not has_partial_state(download_dir, extract_dir, spec):
            return "existing"
    archive = Path(download_dir) / spec.filename
    if archive.exists():
        try:
            log(f"verifying {archive}")
            verify(archive, spec.digests)
        except ChecksumError as e:
            log(f"{e}; downloading again")
            archive.unlink()
    if not archive.exists():
        urls = [m.rstrip("/") + "/" + spec.filename for m in mirrors]
        download(urls, archive, spec.digests, opener=opener)
    extract(archive, extract_dir, spec, members)
    if not keep_archive:
        archive.unlink()
    return "fetched"


@guarded("local/download.py")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="local/download.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download (resumable), verify and extract one archive")
    f.add_argument("--checksums", required=True, help="conf file: NAME FILENAME ALGO:HEX...")
    f.add_argument("--name", required=True, help="archive name in the checksum conf")
    f.add_argument("--mirror", action="append", required=True, help="base URL (repeatable, tried in order)")
    f.add_argument("--download_dir", required=True)
    f.add_argument("--extract_dir", required=True)
    f.add_argument("--member", action="append", default=None, help="extract only this path prefix (repeatable)")
    f.add_argument("--existing", action="append", default=[], help="path that shows an existing extracted copy")
    f.add_argument("--keep_archive", type=str2bool, default=True)
    v = sub.add_parser("verify", help="check a local file against the checksum conf")
    v.add_argument("--checksums", required=True)
    v.add_argument("--name", required=True)
    v.add_argument("file")
    for sp in (f, v):
        sp.add_argument("--log_level", default="INFO")
    args = parser.parse_args(argv)
    specs = read_checksums(args.checksums)
    if args.name not in specs:
        parser.error(f"{args.name} is not in {args.checksums}")
    spec = specs[args.name]
    if args.cmd == "verify":
        verify(args.file, spec.digests)
        log(f"{args.file}: OK")
        return 0
    state = fetch(
        spec, args.mirror, args.download_dir, args.extract_dir,
        members=args.member, existing=args.existing, keep_archive=args.keep_archive,
    )
    log(f"{spec.name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
