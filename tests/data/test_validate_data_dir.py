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


def test_missing_audio(tmp_path):
    d = _make(tmp_path)
    (tmp_path / "wav" / "aa-0002.wav").unlink()
    _expect(_issues(d, tmp_path), f"{d}/wav.scp:2", "audio file not found")
    assert _issues(d, tmp_path, check_audio=False) == []


def test_unreadable_audio(tmp_path):
    d = _make(tmp_path)
    (tmp_path / "wav" / "bb-0001.wav").write_bytes(b"not a wav file at all")
    _expect(_issues(d, tmp_path), f"{d}/wav.scp:3", "unreadable audio")


def test_wrong_sample_rate_and_channels(tmp_path):
    d = _make(tmp_path)
    _wav(tmp_path / "wav" / "aa-0001.wav", rate=8000)
    _wav(tmp_path / "wav" / "bb-0002.wav", channels=2)
    issues = _issues(d, tmp_path)
    _expect(issues, f"{d}/wav.scp:1", "sample rate 8000 Hz, expected 16000 Hz")
    _expect(issues, f"{d}/wav.scp:4", "2 channels")


def test_empty_transcript(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "text")
    lines[2] = "bb-0001"
    _put(d, "text", lines)
    _expect(_issues(d, tmp_path), f"{d}/text:3", "empty transcript for 'bb-0001'")


def test_id_missing_from_text(tmp_path):
    d = _make(tmp_path)
    _put(d, "text", _lines(d, "text")[1:])
    issues = _issues(d, tmp_path)
    _expect(issues, f"{d}/wav.scp:1", "'aa-0001' has no entry in text")
    _expect(issues, f"{d}/utt2spk:1", "'aa-0001' has no entry in text")


def test_id_missing_from_spk2utt(tmp_path):
    d = _make(tmp_path)
    _put(d, "spk2utt", ["aa aa-0001", "bb bb-0001 bb-0002"])
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:2", "'aa-0002' has no entry in spk2utt")


def test_spk2utt_inconsistent(tmp_path):
    d = _make(tmp_path)
    _put(d, "spk2utt", ["aa aa-0001 aa-0002 bb-0001", "bb bb-0002"])
    _expect(_issues(d, tmp_path), f"{d}/spk2utt:1", "'bb-0001' listed under 'aa' but utt2spk:3 says 'bb'")


def test_unsorted(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "utt2spk")
    lines[1], lines[2] = lines[2], lines[1]
    _put(d, "utt2spk", lines)
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:3", "not sorted in C locale order")


def test_c_locale_order(tmp_path):
    # '-' sorts before '_' in C order: aa-0001 < aa_b-0001 (a natural-language sort might disagree)
    d = _make(tmp_path, [("aa", "aa-0001"), ("aa_b", "aa_b-0001"), ("aab", "aab-0001")])
    assert _issues(d, tmp_path) == []


def test_duplicate_id(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "wav.scp")
    _put(d, "wav.scp", lines[:2] + [lines[1]] + lines[2:])
    _expect(_issues(d, tmp_path), f"{d}/wav.scp:3", "duplicate id 'aa-0002' (first on line 2)")


def test_speaker_id_with_dash(tmp_path):
    d = _make(tmp_path, [("a-b", "a-b-0001"), ("cc", "cc-0001")])
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:1", "speaker id 'a-b' contains '-'")


def test_utt_id_without_speaker_prefix(tmp_path):
    d = _make(tmp_path, [("aa", "aa-0001"), ("bb", "xx0001")])
    _expect(_issues(d, tmp_path), f"{d}/utt2spk:2", "utterance id 'xx0001' does not start with 'bb-'")


def test_missing_file(tmp_path):
    d = _make(tmp_path)
    (d / "spk2utt").unlink()
    _expect(_issues(d, tmp_path), f"{d}/spk2utt", "file is missing")


def test_blank_line_and_dos_ending(tmp_path):
    d = _make(tmp_path)
    raw = (d / "text").read_text().replace("\n", "\r\n", 1)
    (d / "text").write_text(raw + "\n")
    issues = _issues(d, tmp_path)
    _expect(issues, f"{d}/text:1", "carriage return")
    _expect(issues, f"{d}/text:5", "empty line")


def test_pipes_are_run_by_default(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "wav.scp")
    lines[0] = f"aa-0001 cat {tmp_path}/wav/aa-0001.wav |"
    lines[1] = "aa-0002 false |"
    _put(d, "wav.scp", lines)
    issues = _issues(d, tmp_path)
    assert len(issues) == 1
    _expect(issues, f"{d}/wav.scp:2", "audio pipe failed")
    assert _issues(d, tmp_path, check_pipes=False) == []


def test_piped_audio_is_checked_for_rate_and_channels(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "wav.scp")
    lines[0] = f"aa-0001 sox {tmp_path}/wav/aa-0001.wav -r 8000 -t wav - |"
    lines[1] = f"aa-0002 sox {tmp_path}/wav/aa-0002.wav -c 2 -t wav - |"
    _put(d, "wav.scp", lines)
    issues = _issues(d, tmp_path)
    _expect(issues, f"{d}/wav.scp:1", "sample rate 8000 Hz, expected 16000 Hz")
    _expect(issues, f"{d}/wav.scp:2", "2 channels, expected mono")


def test_pipe_fraction_runs_an_even_share(tmp_path):
    d = _make(tmp_path)
    lines = _lines(d, "wav.scp")
    lines = [line.split()[0] + " false |" for line in lines]
    _put(d, "wav.scp", lines)
    every = _issues(d, tmp_path)
    some = _issues(d, tmp_path, pipe_fraction=0.5)
    assert len(every) == len(lines) and 1 <= len(some) < len(every)
    with pytest.raises(ValueError, match="pipe_fraction"):
        validate_data_dir(d, pipe_fraction=0)


def test_empty_data_dir_is_refused(tmp_path):
    d = _make(tmp_path)
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        (d / name).write_text("")
    issues = _issues(d, tmp_path)
    _expect(issues, f"{d}/wav.scp", "no utterances")


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
