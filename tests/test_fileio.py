"""espnet_p4q.fileio: atomic writes, one Kaldi table reader, one id-list rule."""

from __future__ import annotations

import os

import pytest

from espnet_p4q.fileio import (InputError, atomic_path, read_id_list, read_kaldi_table, write_id_list,
                               write_json_atomic, write_text_atomic)


def test_kaldi_table_splits_on_spaces_and_tabs_alike(tmp_path):
    p = tmp_path / "wav.scp"
    p.write_text("a-1 /x/a1.wav\nb-2\t/x/b 2.wav\n\nc-3  sox x.wav -t wav - |\nd-4\n")
    assert read_kaldi_table(p) == {"a-1": "/x/a1.wav", "b-2": "/x/b 2.wav", "c-3": "sox x.wav -t wav - |", "d-4": ""}
    with pytest.raises(InputError, match=r"'d-4' has no value \(.*wav.scp:5\)"):
        read_kaldi_table(p, allow_empty_value=False)


@pytest.mark.parametrize("content, message", [
    ("a x\na y\n", r"duplicate id 'a' \(first on line 1\) \(.*t:2\)"),
    (b"a \xff\n", r"line is not valid UTF-8 \(.*t:1\)"),
])
def test_kaldi_table_errors_name_file_and_line(content, message, tmp_path):
    p = tmp_path / "t"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=message):
        read_kaldi_table(p)
    with pytest.raises(InputError, match=r"no such file \(.*missing\)"):
        read_kaldi_table(tmp_path / "missing")


def test_id_list_has_one_comment_rule(tmp_path):
    p = tmp_path / "sa_eval.list"
    p.write_text("# evaluation speakers\nspk1\n  # indented comment\nspk2   # trailing comment\n\n")
    assert read_id_list(p) == ["spk1", "spk2"]


@pytest.mark.parametrize("content, message", [
    ("spk1 spk2\n", r"one id a line, got 'spk1 spk2' \(.*:1\)"),
    ("spk1\nspk1\n", r"'spk1' listed twice \(first on line 1\) \(.*:2\)"),
    ("# only a comment\n", r"the list is empty"),
])
def test_id_list_errors(content, message, tmp_path):
    p = tmp_path / "l"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        read_id_list(p)


def test_id_list_round_trip(tmp_path):
    write_id_list(tmp_path / "l", ["b", "a"])
    assert read_id_list(tmp_path / "l") == ["b", "a"]


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    p = tmp_path / "out.txt"
    write_text_atomic(p, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old\n" and os.listdir(tmp_path) == ["out.txt"]
    write_json_atomic(p, {"a": 1})
    assert p.read_text() == '{\n  "a": 1\n}\n' and oct(p.stat().st_mode & 0o777) != "0o600"
