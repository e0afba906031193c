"""The score and compare entry points, end to end on small Kaldi text files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scoring_helpers import HAND_HYP_A, HAND_HYP_B, HAND_REF, needs_sclite, random_corpus, run_sclite_sum

from espnet_p4q.bin import compare, score
from espnet_p4q.scoring.sclite_report import score_utterances, sum_report


def write_text(path, transcripts):
    path.write_text("".join(" ".join([u, *w]) + "\n" for u, w in transcripts.items()),
                    encoding="utf-8")
    return str(path)


REF, HYP, HYP_B = HAND_REF, HAND_HYP_A, HAND_HYP_B


def test_score_writes_all_files(tmp_path, capsys):
    out = tmp_path / "score_wer"
    rc = score.main(["--ref_text", write_text(tmp_path / "ref", REF),
                     "--hyp_text", write_text(tmp_path / "hyp", HYP), "--output_dir", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["hyp.trn", "ref.trn", "result.txt",
                                                     "wer.json"]
    assert (out / "hyp.trn").read_text() == ("THE CAT SAT IN MAT (spk1-u1)\n"
                                             "HELLO BIG WORLD (spk1-u2)\n(spk2-u1)\n")
    assert (out / "result.txt").read_text() == \
        sum_report(score_utterances(REF, HYP), str(out / "hyp.trn"))
    summary = json.loads((out / "wer.json").read_text())
    assert summary["wer"] == pytest.approx(100 * 8 / 13)
    assert summary["per_speaker"] == {"spk1": 37.5, "spk2": 100.0}
    assert summary["counts"] == {"n_snt": 3, "n_wrd": 13, "corr": 6, "sub": 1, "del": 6,
                                 "ins": 1, "err": 8, "snt_err": 3}
    assert summary["per_speaker_counts"]["spk2"]["del"] == 5
    assert "WER 61.54%" in capsys.readouterr().out


def test_score_missing_and_unknown_hypotheses(tmp_path, capsys):
    ref = write_text(tmp_path / "ref", REF)
    partial = write_text(tmp_path / "hyp", {"spk1-u1": HYP["spk1-u1"]})
    args = ["--ref_text", ref, "--hyp_text", partial, "--output_dir", str(tmp_path / "o")]
    assert score.main(args) == 1
    assert "--allow_missing_hyp" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert score.main(args + ["--allow_missing_hyp"]) == 0
    summary = json.loads((tmp_path / "o" / "wer.json").read_text())
    assert summary["n_missing_hyp"] == 2 and summary["counts"]["n_snt"] == 1

    (tmp_path / "bad").write_text("spk1-u1 A\nspk7-u1 B\n")
    assert score.main(["--ref_text", ref, "--hyp_text", str(tmp_path / "bad"),
                       "--output_dir", str(tmp_path / "o2")]) == 1
    assert "bad:2: hypothesis for 'spk7-u1'" in capsys.readouterr().err


def test_help_runs_as_module():
    for mod in ("espnet_p4q.bin.score", "espnet_p4q.bin.compare"):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True,
                             text=True, check=True)
        assert "--ref_text" in out.stdout


def test_compare(tmp_path, capsys):
    ref = write_text(tmp_path / "ref", REF)
    a = write_text(tmp_path / "a", HYP)
    b = write_text(tmp_path / "b", HYP_B)
    out_json = tmp_path / "m" / "mapsswe.json"
    rc = compare.main(["--ref_text", ref, "--hyp_text_a", a, "--hyp_text_b", b,
                       "--name_a", "base", "--name_b", "p4q", "--output_json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.startswith("MAPSSWE test: base vs p4q\n")
    assert "p4q is significantly better" in printed
    result = json.loads(out_json.read_text())
    assert (result["n_segments"], result["better"], result["significant"]) == (3, "p4q", True)

    assert compare.main(["--ref_text", ref, "--hyp_text_a", a, "--hyp_text_b", b,
                         "--name_a", "x", "--name_b", "x"]) == 1
    short = write_text(tmp_path / "short", {"spk1-u1": []})
    assert compare.main(["--ref_text", ref, "--hyp_text_a", a, "--hyp_text_b", short]) == 1
    assert "different utterances" in capsys.readouterr().err


@needs_sclite
def test_score_result_equals_sclite(tmp_path, monkeypatch):
    ref, (hyp,) = random_corpus(11, speakers=("f01", "m02", "speaker_three"))
    monkeypatch.chdir(tmp_path)
    assert score.main(["--ref_text", write_text(tmp_path / "ref", ref),
                       "--hyp_text", write_text(tmp_path / "hyp", hyp),
                       "--output_dir", "exp/decode/test/score_wer"]) == 0
    expected = run_sclite_sum(tmp_path, "exp/decode/test/score_wer/ref.trn",
                              "exp/decode/test/score_wer/hyp.trn")
    assert (tmp_path / "exp/decode/test/score_wer/result.txt").read_text() == expected
