"""plot_sweep: pooled WER per point, the CSV and the PNG."""

from __future__ import annotations

import csv

import pytest
from report_fixtures import write_json

from espnet_p4q.bin import plot_sweep
from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.sweep import load_points, score_points

POINTS = {
    "data_dir": "data", "x_name": "adaptation utterances",
    "labels": {"lora_pretrain": "LoRA pretrain + adaptation"},
    "points": [
        {"system": "lora_pretrain", "x": 10, "decode_dir": "exp/decode/p4q", "speakers": "eval"},
        {"system": "lora_pretrain", "x": 5, "decode_dir": "exp/decode/fp32", "speakers": ["spkA"]},
        {"system": "lora_scratch", "x": 5, "decode_dir": "exp/decode/nf4", "speakers": "eval"},
        {"system": "lora_pretrain", "x": 20, "decode_dir": "exp/decode/p4q", "speakers": ["spkA"]},
        {"system": "lora_scratch", "x": 10, "decode_dir": "exp/decode/fft",
         "speakers": ["spkA", "spkB"]},
    ],
}


def run(run_dir, points=POINTS, extra=()):
    write_json(run_dir / "points.json", points)
    return plot_sweep.main(["--points", str(run_dir / "points.json"), "--root", str(run_dir),
                            "--csv", str(run_dir / "out/sweep.csv"),
                            "--png", str(run_dir / "out/sweep.png"), *extra])


def test_csv_values(run_dir):
    assert run(run_dir) == 0
    with open(run_dir / "out/sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["system", "x", "wer", "errors", "words"]
    got = [(r["system"], r["x"], float(r["wer"]), int(r["errors"]), int(r["words"])) for r in rows]
    assert got == [
        ("lora_pretrain", "5", pytest.approx(12.5), 1, 8),  # fp32 on spkA: 1 substitution
        ("lora_pretrain", "10", pytest.approx(100 / 17, abs=1e-4), 1, 17),
        ("lora_pretrain", "20", 0.0, 0, 8),
        ("lora_scratch", "5", pytest.approx(800 / 17, abs=1e-4), 8, 17),
        ("lora_scratch", "10", pytest.approx(200 / 17, abs=1e-4), 2, 17),
    ]


def test_png_written(run_dir):
    assert run(run_dir, extra=["--log_x", "--x_label", "utterances per speaker"]) == 0
    png = (run_dir / "out/sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert sorted(p.name for p in (run_dir / "out").iterdir()) == ["sweep.csv", "sweep.png"]


def test_score_points_direct(run_dir):
    write_json(run_dir / "points.json", POINTS)
    sweep = load_points(run_dir / "points.json", run_dir)
    assert sweep.points[0].speakers == ("spkA", "spkB")
    rows = score_points(sweep)
    assert [(r["system"], r["x"]) for r in rows] == [
        ("lora_pretrain", 5), ("lora_pretrain", 10), ("lora_pretrain", 20),
        ("lora_scratch", 5), ("lora_scratch", 10)]


@pytest.mark.parametrize("change, message", [
    (lambda p: p["points"].append(dict(p["points"][0])), "a second point for system"),
    (lambda p: p["points"][0].update(speakers=[]), "'speakers' must be a non-empty list"),
    (lambda p: p["points"][1].update(x="5"), r"points\[1\]: field 'x' must be number"),
    (lambda p: p.pop("x_name"), "missing field 'x_name'"),
])
def test_bad_points(run_dir, change, message):
    import copy

    points = copy.deepcopy(POINTS)
    change(points)
    write_json(run_dir / "points.json", points)
    with pytest.raises(ReportError, match=f"^{run_dir / 'points.json'}.*{message}"):
        load_points(run_dir / "points.json", run_dir)


def test_missing_decoding(run_dir, capsys):
    import copy

    points = copy.deepcopy(POINTS)
    points["points"][2]["decode_dir"] = "exp/decode/none"
    assert run(run_dir, points) == 1
    assert "exp/decode/none: no such decoding directory (system 'lora_scratch' at x = 5)" in \
        capsys.readouterr().err
    assert not (run_dir / "out/sweep.csv").exists()
