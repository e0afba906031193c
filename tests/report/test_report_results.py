"""The numbers of the results table, against hand-computed values and the scoring package."""

from __future__ import annotations

import json
import random

import pytest
from report_fixtures import HYPS, MANIFEST, REFS, write_json, write_kaldi_text

from espnet_p4q.bin import make_results
from espnet_p4q.report.manifest import load_manifest
from espnet_p4q.report.markdown import fmt_p, render
from espnet_p4q.report.results import build_results, relative_change
from espnet_p4q.scoring.mapsswe import mapsswe


def words(d):
    return {u: w.split() for u, w in d.items()}


def eval_only(d):
    return {u: w for u, w in d.items() if not u.startswith("spkT")}


@pytest.fixture
def res(run_dir):
    return build_results(load_manifest(run_dir / "exp/systems.json", run_dir))


def by_name(res):
    return {r["name"]: r for r in res["systems"]}


def test_pooled_wer_and_relative_changes(res):
    rows = by_name(res)
    assert [r["name"] for r in res["systems"]] == ["fp32", "nf4", "p4q", "fft"]
    # 17 reference words over spkA and spkB; errors: fp32 1 sub + 1 del, nf4 2 sub + 1 ins +
    # 1 del + 4 del, p4q 1 del
    assert {n: (r["errors"], r["words"]) for n, r in rows.items()} == {
        "fp32": (2, 17), "nf4": (8, 17), "p4q": (1, 17), "fft": (2, 17)}
    assert rows["fp32"]["wer"] == pytest.approx(100 * 2 / 17)
    assert rows["nf4"]["wer"] == pytest.approx(100 * 8 / 17)
    assert rows["p4q"]["wer"] == pytest.approx(100 / 17)
    assert rows["fp32"]["rel_wer_vs_reference"] == 0.0
    assert rows["nf4"]["rel_wer_vs_reference"] == pytest.approx(300.0)
    assert rows["p4q"]["rel_wer_vs_reference"] == pytest.approx(-50.0)
    assert rows["fp32"]["rel_wer_vs_nf4"] == pytest.approx(-75.0)
    assert rows["p4q"]["rel_wer_vs_nf4"] == pytest.approx(-87.5)
    assert rows["nf4"]["rel_wer_vs_nf4"] == 0.0
    assert res["utterances"] == 4 and res["reference_words"] == 17
    assert res["speakers"]["reported"] == ["spkA", "spkB"]
    assert res["speakers"]["tuning"] == ["spkT"]


def test_per_speaker_wer(res):
    rows = by_name(res)
    assert rows["nf4"]["per_speaker"]["spkA"]["wer"] == pytest.approx(100 * 3 / 8)
    assert rows["nf4"]["per_speaker"]["spkB"]["wer"] == pytest.approx(100 * 5 / 9)
    assert rows["p4q"]["per_speaker"]["spkA"]["wer"] == 0.0
    assert rows["p4q"]["per_speaker"]["spkB"]["wer"] == pytest.approx(100 / 9)
    assert res["per_speaker_reference"] == {"spkA": {"utterances": 2, "words": 8},
                                            "spkB": {"utterances": 2, "words": 9}}


def test_sizes_params_time_rtf(res):
    rows = by_name(res)
    assert rows["fp32"]["size_bytes"] == 4000 and rows["fp32"]["speaker_file"] is None
    assert rows["nf4"]["size_bytes"] == 1000
    # model files 1000 + 50, adapters 100 and 300 bytes (spkT's is not reported)
    assert rows["p4q"]["size_bytes"] == 1050 + 200
    assert rows["p4q"]["size_mb"] == pytest.approx(1250 / 1e6)
    assert rows["p4q"]["speaker_file"] == "adapter.pth"
    assert rows["fft"]["size_bytes"] == 8000 and rows["fft"]["speaker_file"] == "model.pth"
    assert rows["fp32"]["speaker_params"] == 0 and rows["fp32"]["adapt_seconds_mean"] is None
    assert rows["p4q"]["speaker_params"] == 500
    assert rows["p4q"]["speaker_params_percent"] == pytest.approx(0.5)
    assert rows["p4q"]["adapt_seconds_mean"] == pytest.approx(15.0)
    assert rows["p4q"]["adapt_steps_mean"] == 20 and rows["p4q"]["adapt_utterances_mean"] == 5
    assert rows["fft"]["speaker_params_percent"] == pytest.approx(100.0)
    assert rows["fft"]["adapt_seconds_mean"] == pytest.approx(30.0)
    assert rows["fp32"]["rtf"] == pytest.approx(7.0 / 40.0)  # audio-weighted
    assert rows["nf4"]["rtf"] == pytest.approx(0.4)  # no durations: mean of rtf
    assert rows["p4q"]["rtf"] is None
    assert any("p4q" in w and "spkB_test/decode.json" in w for w in res["warnings"])


def test_mapsswe_matches_scoring_package(res):
    ref = words(eval_only({u: w for d in REFS.values() for u, w in d.items()}))
    nf4 = words(eval_only(HYPS["nf4"]))
    rows = by_name(res)
    assert rows["nf4"]["mapsswe_vs_nf4"] is None
    for name in ("fp32", "p4q", "fft"):
        direct = mapsswe(ref, words(eval_only(HYPS[name])), nf4, name, "nf4").as_dict()
        assert rows[name]["mapsswe_vs_nf4"] == pytest.approx(direct)
        assert direct["better"] == name and direct["n_segments"] > 0


def test_mapsswe_on_many_utterances(run_dir):
    """A corpus big enough for a significant difference; pooled over both speakers."""
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(30)]
    ref, good, bad = {}, {}, {}
    for spk in ("spkA", "spkB"):
        utts = {}
        for i in range(40):
            u = f"{spk}-n{i:03d}"
            r = [rng.choice(vocab) for _ in range(rng.randint(3, 12))]
            ref[u] = r
            good[u] = [w if rng.random() > 0.05 else "x" for w in r]
            bad[u] = [w if rng.random() > 0.3 else "y" for w in r]
            utts[u] = " ".join(r)
        write_kaldi_text(run_dir / "data" / f"{spk}_test" / "text", utts)
        for name, hyp in (("fp32", good), ("fft", good), ("p4q", good), ("nf4", bad)):
            write_kaldi_text(run_dir / "exp/decode" / name / f"{spk}_test" / "text",
                             {u: " ".join(hyp[u]) for u in utts})
    res = build_results(load_manifest(run_dir / "exp/systems.json", run_dir))
    direct = mapsswe(ref, good, bad, "p4q", "nf4")
    got = by_name(res)["p4q"]["mapsswe_vs_nf4"]
    assert got == pytest.approx(direct.as_dict())
    assert got["n_sentences"] == 80 and got["significant"] and got["better"] == "p4q"


def test_relative_change_undefined():
    assert relative_change(1.0, 0.0) is None
    assert relative_change(None, 2.0) is None
    assert relative_change(3.0, 2.0) == pytest.approx(50.0)


def test_markdown_table(res, run_dir):
    md = render(res, str(run_dir))
    row = next(line for line in md.splitlines() if line.startswith("| LoRA-pretrain-NF4"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    t = by_name(res)["p4q"]["mapsswe_vs_nf4"]
    assert cells == ["LoRA-pretrain-NF4 + adaptation (P4Q) (`p4q`)", f"{100 / 17:.2f}", "-50.0",
                     "-87.5", "0.00", "500", "0.5", "15.0", "—", f"{t['z']:+.2f}",
                     fmt_p(t["p"]), "yes" if t["significant"] else "no", "`p4q`"]
    nf4_row = next(line for line in md.splitlines() if line.startswith("| NF4 base"))
    assert "| +300.0 | ref. |" in nf4_row and nf4_row.endswith("| — | — | — | — |")
    fft_row = next(line for line in md.splitlines() if line.startswith("| FP32 full"))
    assert fft_row.endswith("| +0.0 | -75.0 | 0.01 | 100,000 | 100 | 30.0 | 0.200 | -1.73 | "
                            "0.083 | no | `fft` |")
    assert "evaluation speakers of" in md and "(spkA, spkB; 4 utterances, 17 reference words)" in md
    assert "tuning speakers of" in md and "(spkT), none of whom is reported" in md
    assert "| spkB | 2 | 9 | 11.11 | 55.56 | 11.11 | 11.11 |" in md
    assert "| **Pooled** | 4 | 17 |" in md
    assert "exp/adapt/p4q/<spk>/adapter.pth` (0.000 MB)" in md


def test_tuning_speakers_reported(run_dir):
    m = dict(MANIFEST, speakers="tune")
    write_json(run_dir / "exp/systems.json", m)
    res = build_results(load_manifest(run_dir / "exp/systems.json", run_dir))
    rows = by_name(res)
    assert res["speakers"]["reported"] == ["spkT"]
    assert rows["nf4"]["wer"] == 0.0 and rows["fp32"]["rel_wer_vs_nf4"] is None
    assert rows["p4q"]["size_bytes"] == 1050 + 999
    assert "optimistic" in render(res)


def test_cli_writes_markdown_and_json(run_dir, capsys):
    out = run_dir / "RESULTS.md"
    sweep = run_dir / "exp/sweep_utts.csv"
    sweep.write_text("system,x,wer,errors,words\n")
    sweep.with_suffix(".png").write_bytes(b"\x89PNG")
    rank = run_dir / "exp/sweep_rank.csv"
    rank.write_text("system,x,wer,errors,words\n")
    rc = make_results.main([
        "--exp_dir", str(run_dir / "exp"), "--manifest", str(run_dir / "exp/systems.json"), "--output", str(out),
        "--root", str(run_dir), "--title", "Tiny run", "--sweep_csv", str(sweep), "--sweep_csv", str(rank)])
    assert rc == 0
    md = out.read_text()
    data = json.loads((run_dir / "exp/RESULTS.json").read_text())  # the comparison, beside the manifest
    assert md.startswith("<!-- Generated by") and "\n# Tiny run\n" in md
    assert "[sweep_utts.csv](results/sweep_utts.csv)" in md  # copied beside RESULTS.md, linked there
    assert "![sweep_utts.png](results/sweep_utts.png)" in md
    assert (run_dir / "results/sweep_utts.png").read_bytes() == b"\x89PNG"
    assert "[sweep_utts.csv](sweep_utts.csv)" in (run_dir / "exp/RESULTS.md").read_text()
    assert md.index("# Tiny run") < md.index("\n---\n") < md.index("# RESULTS")  # the per-set tables below
    assert "[sweep_rank.csv](results/sweep_rank.csv)" in md  # a repeated --sweep_csv adds to the list
    assert data["title"] == "Tiny run" and data["sweeps"] == [
        {"csv": str(sweep), "png": str(sweep.with_suffix(".png"))}, {"csv": str(rank), "png": None}]
    assert by_name(data)["p4q"]["errors"] == 1
    assert sorted(p.name for p in run_dir.iterdir()) == ["RESULTS.md", "data", "exp", "results"]
    assert "warning: system 'p4q': no RTF" in capsys.readouterr().err
