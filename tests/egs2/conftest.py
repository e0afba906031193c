"""Fixtures of the paper-scale recipes' test modules (tests/egs2/<corpus>/), built from what each
module names: RECIPE (egs2/<corpus>/asr1) and ``tiny``, its tiny-corpus module (make_corpus(root),
make_archives(root, mirror) -> {name: archive}). Module-scoped: built once per module."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # recipe_checks, for the modules in the corpus dirs
from recipe_checks import run_help  # noqa: E402


@pytest.fixture(scope="module")
def help_text(request) -> str:
    """run.sh --help of the module's RECIPE."""
    return run_help(request.module.RECIPE)


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory) -> Path:
    """The module's tiny corpus, as extracted."""
    return request.module.tiny.make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def mirror(request, tmp_path_factory):
    """(www, sums.txt): a file:// mirror with the tiny corpus's archives, and their sha256 in the
    format of local/download.py --checksums."""
    tiny, tmp = request.module.tiny, tmp_path_factory.mktemp("mirror")
    archives = tiny.make_archives(tiny.make_corpus(tmp / "src"), tmp / "www")
    conf = tmp / "sums.txt"
    conf.write_text("".join(f"{name} {a.name} sha256:{hashlib.sha256(a.read_bytes()).hexdigest()}\n"
                            for name, a in archives.items()))
    return tmp / "www", conf
