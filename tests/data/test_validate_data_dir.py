"""The data-dir validator accepts a good dir and names file and line for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_p4q.bin import validate_data_dir as cli
from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir
from espnet_p4q.data.validate import DataDirError, check_data_dir, validate_data_dir


def _wav(path: Path, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((1600, channels), dtype=np.int16) if channels > 1 else np.zeros(1600, dtype=np.int16)
    soundfile.write(str(path), data, rate, subtype="PCM_16")


def _make(tmp_path: Path, utts=None) -> Path:
    utts = utts or [("aa", "aa-0001"), ("aa", "aa-0002"), ("bb", "bb-0001"), ("bb", "bb-0002")]
    rows = []
    for spk, utt in utts:
        _wav(tmp_path / "wav" / f"{utt}.wav")
        rows.append(Utterance(utt, spk, f"wav/{utt}.wav", f"HELLO {utt.upper()}"))
    return write_data_dir(tmp_path / "data", rows)


def _lines(d: Path, name: str):
    return (d / name).read_text().splitlines()


def _put(d: Path, name: str, lines) -> None:
    (d / name).write_text("".join(f"{x}\n" for x in lines))


def _issues(d: Path, tmp_path: Path, **kw):
    return [str(i) for i in validate_data_dir(d, audio_root=tmp_path, **kw).issues]


def _expect(issues, where: str, text: str) -> None:
    assert any(i.startswith(where + ":") and text in i for i in issues), issues


def test_good_dir_passes(tmp_path):
    d = _make(tmp_path)
    report = check_data_dir(d, audio_root=tmp_path)
    assert report.ok and report.n_utts == 4 and report.n_spks == 2


def _set_lines(name: str, lines: dict):
    """Edit of the dir's file NAME: line i replaced by LINES[i] ({root}: the audio root)."""
    def edit(d: Path, root: Path) -> None:
        new = _lines(d, name)
        for i, line in lines.items():
            new[i] = line.format(root=root)
        _put(d, name, new)
    return edit


def _rewrite(name: str, change):
    """Edit of the dir's file NAME: its lines through CHANGE."""
    return lambda d, root: _put(d, name, change(_lines(d, name)))


def _write(name: str, lines):
    return lambda d, root: _put(d, name, lines)


def _dos_line_and_blank_line(d: Path, root: Path) -> None:
    raw = (d / "text").read_text().replace("\n", "\r\n", 1)
    (d / "text").write_text(raw + "\n")


def _empty_every_file(d: Path, root: Path) -> None:
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        (d / name).write_text("")


# (edit of a good dir, the issues it must cause as (file[:line], text), options under which the
# dir passes again); each edit must cause exactly the issues listed
BAD_INPUTS = [
    pytest.param(lambda d, root: (root / "wav" / "aa-0002.wav").unlink(),
                 [("wav.scp:2", "audio file not found")], {"check_audio": False}, id="missing_audio"),
    pytest.param(lambda d, root: (root / "wav" / "bb-0001.wav").write_bytes(b"not a wav file at all"),
                 [("wav.scp:3", "unreadable audio")], None, id="unreadable_audio"),
    pytest.param(lambda d, root: (_wav(root / "wav" / "aa-0001.wav", rate=8000),
                                  _wav(root / "wav" / "bb-0002.wav", channels=2)),
                 [("wav.scp:1", "sample rate 8000 Hz, expected 16000 Hz"), ("wav.scp:4", "2 channels")], None,
                 id="wrong_sample_rate_and_channels"),
    pytest.param(_set_lines("text", {2: "bb-0001"}),
                 [("text:3", "empty transcript for 'bb-0001'")], None, id="empty_transcript"),
    pytest.param(_rewrite("text", lambda lines: lines[1:]),
                 [("wav.scp:1", "'aa-0001' has no entry in text"), ("utt2spk:1", "'aa-0001' has no entry in text")],
                 None, id="id_missing_from_text"),
    pytest.param(_write("spk2utt", ["aa aa-0001", "bb bb-0001 bb-0002"]),
                 [("utt2spk:2", "'aa-0002' has no entry in spk2utt")], None, id="id_missing_from_spk2utt"),
    pytest.param(_write("spk2utt", ["aa aa-0001 aa-0002 bb-0001", "bb bb-0002"]),
                 [("spk2utt:1", "'bb-0001' listed under 'aa' but utt2spk:3 says 'bb'")], None,
                 id="spk2utt_inconsistent"),
    pytest.param(_rewrite("utt2spk", lambda lines: [lines[0], lines[2], lines[1], *lines[3:]]),
                 [("utt2spk:3", "not sorted in C locale order")], None, id="unsorted"),
    pytest.param(_rewrite("wav.scp", lambda lines: lines[:2] + [lines[1]] + lines[2:]),
                 [("wav.scp:3", "duplicate id 'aa-0002' (first on line 2)")], None, id="duplicate_id"),
    pytest.param(lambda d, root: (d / "spk2utt").unlink(),
                 [("spk2utt", "file is missing")], None, id="missing_file"),
    pytest.param(_dos_line_and_blank_line,
                 [("text:1", "carriage return"), ("text:5", "empty line")], None, id="blank_line_and_dos_ending"),
    # pipes are run by default: a good one passes, a failing one is named
    pytest.param(_set_lines("wav.scp", {0: "aa-0001 cat {root}/wav/aa-0001.wav |", 1: "aa-0002 false |"}),
                 [("wav.scp:2", "audio pipe failed")], {"check_pipes": False}, id="pipes_are_run_by_default"),
    pytest.param(_set_lines("wav.scp", {0: "aa-0001 sox {root}/wav/aa-0001.wav -r 8000 -t wav - |",
                                        1: "aa-0002 sox {root}/wav/aa-0002.wav -c 2 -t wav - |"}),
                 [("wav.scp:1", "sample rate 8000 Hz, expected 16000 Hz"), ("wav.scp:2", "2 channels, expected mono")],
                 None, id="piped_audio_is_checked_for_rate_and_channels"),
    pytest.param(_empty_every_file, [("wav.scp", "no utterances")], None, id="empty_data_dir_is_refused"),
]


@pytest.mark.parametrize("edit, expected, passes_with", BAD_INPUTS)
def test_bad_input_is_named_by_file_and_line(tmp_path, edit, expected, passes_with):
    d = _make(tmp_path)
    edit(d, tmp_path)
    issues = _issues(d, tmp_path)
    for where, text in expected:
        _expect(issues, f"{d}/{where}", text)
    assert len(issues) == len(expected), issues
    if passes_with:
        assert _issues(d, tmp_path, **passes_with) == []


def test_c_locale_order(tmp_path):
    # '-' sorts before '_' in C order: aa-0001 < aa_b-0001 (a natural-language sort might disagree)
    d = _make(tmp_path, [("aa", "aa-0001"), ("aa_b", "aa_b-0001"), ("aab", "aab-0001")])
    assert _issues(d, tmp_path) == []


def test_speaker_id_with_dash(tmp_path):
    d = _make(tmp_path, [("a-b", "a-b-0001"), ("cc", "cc-0001")])
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:1", "speaker id 'a-b' contains '-'")


def test_utt_id_without_speaker_prefix(tmp_path):
    d = _make(tmp_path, [("aa", "aa-0001"), ("bb", "xx0001")])
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:2", "utterance id 'xx0001' does not start with 'bb-'")


def test_pipe_fraction_runs_an_even_share(tmp_path):
    d = _make(tmp_path)
    _rewrite("wav.scp", lambda lines: [line.split()[0] + " false |" for line in lines])(d, tmp_path)
    every = _issues(d, tmp_path)
    some = _issues(d, tmp_path, pipe_fraction=0.5)
    assert len(every) == 4 and 1 <= len(some) < len(every)
    with pytest.raises(ValueError, match="pipe_fraction"):
        validate_data_dir(d, pipe_fraction=0)


def test_check_raises_with_all_messages(tmp_path):
    d = _make(tmp_path)
    (tmp_path / "wav" / "aa-0001.wav").unlink()
    with pytest.raises(DataDirError) as e:
        check_data_dir(d, audio_root=tmp_path)
    assert f"{d}/wav.scp:1: 'aa-0001': audio file not found" in str(e.value)


def test_cli_exit_codes(tmp_path, capsys):
    good = _make(tmp_path / "g")
    bad = _make(tmp_path / "b")
    _put(bad, "text", _lines(bad, "text")[:-1])
    argv = ["--audio_root", str(tmp_path / "g")]
    assert cli.main([str(good), *argv]) == 0
    assert cli.main([str(good), str(bad), "--no_audio_check"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}/wav.scp:4: utterance 'bb-0002' has no entry in text" in err
