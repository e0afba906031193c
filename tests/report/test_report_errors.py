"""Missing or malformed inputs fail with a message naming the file."""

from __future__ import annotations

import json
import shutil

import pytest
from report_fixtures import MANIFEST, write_json

from espnet_p4q.bin import make_results
from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.manifest import load_manifest
from espnet_p4q.report.results import build_results
from espnet_p4q.scoring.trn import TranscriptError


def build(run_dir):
    return build_results(load_manifest(run_dir / "exp/systems.json", run_dir))


def manifest_error(run_dir, obj) -> str:
    path = run_dir / "exp/systems.json"
    if isinstance(obj, str):
        path.write_text(obj)
    else:
        write_json(path, obj)
    with pytest.raises(ReportError) as e:
        load_manifest(path, run_dir)
    assert str(e.value).startswith(str(path))
    return str(e.value)


def test_missing_hypothesis_dir(run_dir):
    shutil.rmtree(run_dir / "exp/decode/p4q/spkB_test")
    with pytest.raises(ReportError, match=r"exp/decode/p4q/spkB_test/text: no such hypothesis "
                                          r"file \(system 'p4q' has not decoded speaker 'spkB'\)"):
        build(run_dir)


def test_missing_decode_dir_via_cli(run_dir, capsys):
    shutil.rmtree(run_dir / "exp/decode/fft")
    rc = make_results.main(["--manifest", str(run_dir / "exp/systems.json"), "--output",
                            str(run_dir / "RESULTS.md"), "--root", str(run_dir)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "make_results: error:" in err and "exp/decode/fft: no such decoding directory" in err
    assert not (run_dir / "RESULTS.md").exists() and not (run_dir / "exp/RESULTS.json").exists()


def test_unfinished_decoding(run_dir):
    (run_dir / "exp/decode/nf4/spkA_test/text").write_text("spkA-u1 THE CAT\n")
    with pytest.raises(ReportError, match=r"nf4/spkA_test/text: 1 of 2 reference utterances"):
        build(run_dir)


def test_hypothesis_for_unknown_utterance(run_dir):
    with open(run_dir / "exp/decode/nf4/spkA_test/text", "a") as f:
        f.write("spkA-u9 EXTRA\n")
    with pytest.raises(TranscriptError, match=r"nf4/spkA_test/text:3: hypothesis for 'spkA-u9'"):
        build(run_dir)


def test_malformed_manifests(run_dir):
    assert "not valid JSON" in manifest_error(run_dir, '{"systems": [')
    assert "missing field 'systems'" in manifest_error(
        run_dir, {k: v for k, v in MANIFEST.items() if k != "systems"})
    assert "systems[1]: missing field 'decode_dir'" in manifest_error(
        run_dir, dict(MANIFEST, systems=[MANIFEST["systems"][0],
                                         {"name": "x", "model_files": ["a"]}]))
    assert "'nf4_system' is 'q4'" in manifest_error(run_dir, dict(MANIFEST, nf4_system="q4"))
    assert "unknown field(s) system" in manifest_error(run_dir, dict(MANIFEST, system=[]))
    assert "'speakers' must be one of" in manifest_error(run_dir, dict(MANIFEST, speakers="all"))
    assert "used more than once" in manifest_error(
        run_dir, dict(MANIFEST, systems=MANIFEST["systems"] + [MANIFEST["systems"][0]]))
    assert "'model_files' must be a list of paths, non-empty unless" in manifest_error(
        run_dir, dict(MANIFEST, systems=[dict(MANIFEST["systems"][0], model_files=[])]))
    assert "field 'speaker_dir' must be str or null" in manifest_error(
        run_dir, dict(MANIFEST, systems=[dict(MANIFEST["systems"][0], speaker_dir=3)]))
    assert "expected a JSON object" in manifest_error(run_dir, "[]")
    missing = run_dir / "nope.json"
    with pytest.raises(ReportError, match=f"{missing}: no such systems manifest file"):
        load_manifest(missing)


@pytest.mark.parametrize("remove, message", [
    ("exp/adapt/p4q/spkB/train.json", "spkB/train.json: no such fine-tuning summary file"),
    ("exp/adapt/p4q/spkA/adapter.pth", "exp/adapt/p4q/spkA: neither adapter.pth nor model.pth"),
    ("exp/nf4/pre.pth", "exp/nf4/pre.pth: no such model file (system 'p4q')"),
    ("data/sa_tune.list", "data/sa_tune.list: no such speaker list"),
    ("data/spkA_test/text", "data/spkA_test/text: no such reference text"),
])
def test_missing_files(run_dir, remove, message):
    (run_dir / remove).unlink()
    with pytest.raises(ReportError, match=message.replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")):
        build(run_dir)


def test_bad_train_and_decode_json(run_dir):
    path = run_dir / "exp/adapt/fft/spkA/train.json"
    obj = json.loads(path.read_text())
    write_json(path, {k: v for k, v in obj.items() if k != "adapter_share"})
    with pytest.raises(ReportError, match=r"fft/spkA/train\.json: missing field 'adapter_share'"):
        build(run_dir)
    write_json(path, dict(obj, wall_seconds="ten"))
    with pytest.raises(ReportError, match=r"train\.json: field 'wall_seconds' must be number"):
        build(run_dir)
    write_json(path, obj)
    write_json(run_dir / "exp/decode/nf4/spkB_test/decode.json", {"decode_seconds": 1})
    with pytest.raises(ReportError, match=r"nf4/spkB_test/decode\.json: missing field 'rtf'"):
        build(run_dir)


def test_overlapping_speaker_lists(run_dir):
    (run_dir / "data/sa_tune.list").write_text("spkT\nspkB\n")
    with pytest.raises(ReportError, match=r"spkB are also in .*sa_tune\.list"):
        build(run_dir)


def test_missing_sweep_csv(run_dir, capsys):
    rc = make_results.main(["--manifest", str(run_dir / "exp/systems.json"), "--output",
                            str(run_dir / "R.md"), "--root", str(run_dir),
                            "--sweep_csv", str(run_dir / "none.csv")])
    assert rc == 1 and "none.csv: no such sweep CSV file" in capsys.readouterr().err
