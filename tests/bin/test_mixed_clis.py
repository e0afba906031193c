"""The mixed-precision CLIs on the tiny model and the CI corpus: sensitivity -> allocate -> quantize,
and size_wer's table, MAPSSWE and "lossless" choice."""

import csv
import json
import subprocess
import sys

import pytest
import yaml

from espnet_p4q.bin import allocate, quantize, sensitivity, size_wer

# 10 modules of the tiny model (2 encoder layers x 2 feed-forward blocks x 2, CTC, decoder embedding);
# its packed file is 24.96 bits/param at 2 bits, 25.52 at 4, 26.51 at 8 (most weights stay FP32)
FEW = {"targets": [r"encoder\.encoders\.\d\.feed_forward(_macaron)?\.w_[12]", r"ctc\.ctc_lo", r"decoder\.embed\.0"],
       "blocksize": 64, "double_quant": True}
N_MODULES = 10


def speakers(data, role):
    return (data / f"sa_{role}.list").read_text().split()


@pytest.fixture(scope="module")
def few_conf(tmp_path_factory):
    p = tmp_path_factory.mktemp("conf") / "few.yaml"
    p.write_text(yaml.safe_dump(FEW))
    return p


@pytest.fixture(scope="module")
def table(ci_corpus, tiny_char_model_files, few_conf, tmp_path_factory):
    config, model = tiny_char_model_files
    out = tmp_path_factory.mktemp("sens") / "sensitivity.csv"
    dirs = [str(ci_corpus / f"{s}_adapt") for s in speakers(ci_corpus, "tune")]
    assert sensitivity.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                             "--quant_conf", str(few_conf), "--data_dirs", *dirs, "--n_utts", "2",
                             "--bits", "2", "4", "8", "--eval_list", str(ci_corpus / "sa_eval.list"),
                             "--output_csv", str(out)]) == 0
    return out


def test_sensitivity_table_has_every_module_and_width(table):
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == N_MODULES * 3
    assert {r["bits"] for r in rows} == {"2", "4", "8"}
    for name in {r["module"] for r in rows}:
        kl = {int(r["bits"]): float(r["kl"]) for r in rows if r["module"] == name}
        assert kl[2] > kl[4] > kl[8] >= 0, (name, kl)


def test_sensitivity_logs_extremes(ci_corpus, tiny_char_model_files, few_conf, tmp_path):
    config, model = tiny_char_model_files
    spk = speakers(ci_corpus, "tune")[0]
    r = subprocess.run([sys.executable, "-m", "espnet_p4q.bin.sensitivity", "--asr_train_config", str(config),
                        "--asr_model_file", str(model), "--quant_conf", str(few_conf),
                        "--data_dirs", str(ci_corpus / f"{spk}_adapt"), "--n_utts", "1", "--bits", "3",
                        "--output_csv", str(tmp_path / "s.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "most sensitive at 3 bits: " in r.stderr and "least sensitive at 3 bits: " in r.stderr
    assert "1 utterances from 1 data dir(s)" in r.stderr


def test_sensitivity_refuses_evaluation_speakers(ci_corpus, tiny_char_model_files, few_conf, tmp_path, capsys):
    config, model = tiny_char_model_files
    spk = speakers(ci_corpus, "eval")[0]
    d = ci_corpus / f"{spk}_adapt"
    assert sensitivity.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                             "--quant_conf", str(few_conf), "--data_dirs", str(d),
                             "--eval_list", str(ci_corpus / "sa_eval.list"),
                             "--output_csv", str(tmp_path / "s.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sensitivity: error: speaker(s) ") and f"({d / 'utt2spk'})" in err
    assert not (tmp_path / "s.csv").exists()


def _allocate(table, model_files, conf, budget, out):
    config, model = model_files
    return allocate.main(["--sensitivity", str(table), "--budget", str(budget), "--asr_train_config", str(config),
                          "--asr_model_file", str(model), "--quant_conf", str(conf), "--output_yaml", str(out)])


@pytest.mark.parametrize("budget", [25.1, 25.6, 26.2])
def test_allocation_file_stays_within_the_whole_file_budget(table, tiny_char_model_files, few_conf, budget, tmp_path):
    """The model quantised with the written YAML is within the budget, all counted."""
    out = tmp_path / "alloc.yaml"
    assert _allocate(table, tiny_char_model_files, few_conf, budget, out) == 0
    text = out.read_text()
    assert text.startswith("# Mixed-precision NormalFloat allocation") and f"budget {budget} bits/param" in text
    cfg = yaml.safe_load(text)
    assert cfg["targets"] == FEW["targets"] and cfg["bits"] in (2, 4, 8)
    config, model = tiny_char_model_files
    assert quantize.main(["--asr_train_config", str(config), "--asr_model_file", str(model),
                          "--quant_conf", str(out), "--output_dir", str(tmp_path / "q")]) == 0
    size = json.loads((tmp_path / "q" / "size.json").read_text())
    assert size["bits_per_param"] <= budget
    widths = sorted(m["bits"] for m in size["bits_per_module"].values())
    assert len(widths) == N_MODULES


def test_larger_budget_never_gives_more_kl(table, tiny_char_model_files, few_conf, tmp_path):
    from espnet_p4q.quant.config import QuantConfig
    from espnet_p4q.quant.sensitivity import by_module, read_table

    t = by_module(read_table(table))
    kls = []
    for budget in (25.1, 25.8, 26.6):
        out = tmp_path / f"a{budget}.yaml"
        assert _allocate(table, tiny_char_model_files, few_conf, budget, out) == 0
        cfg = QuantConfig.from_yaml(out)
        kls.append(sum(t[n][cfg.bits_for(n)].kl for n in t))
    assert kls[0] >= kls[1] >= kls[2]
    assert kls[2] == pytest.approx(sum(opts[8].kl for opts in t.values()))  # room for 8 bits everywhere


def test_allocate_errors_are_one_line(table, tiny_char_model_files, few_conf, tmp_path, capsys):
    assert _allocate(table, tiny_char_model_files, few_conf, 1.0, tmp_path / "a.yaml") == 1
    err = capsys.readouterr().err
    assert err.startswith("allocate: error: budget 1.0 bits/param is below the cheapest allocation") and err.count("\n") == 1
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**FEW, "targets": FEW["targets"][:2]}))
    assert _allocate(table, tiny_char_model_files, other, 26.0, tmp_path / "a.yaml") == 1
    err = capsys.readouterr().err
    assert "the table's modules are not the targets of" in err and f"({table})" in err
    assert not (tmp_path / "a.yaml").exists()


def _fake_system(root, data, spks, name, nbytes, drop_words):
    """A packed dir with a size.json and a decoding that deletes the first word (every second time the
    first two) of the first ``drop_words`` utterances."""
    d = root / name
    d.mkdir()
    (d / "size.json").write_text(json.dumps({"quantized_bytes": nbytes, "total_params": 1000}))
    n = 0
    for s in spks:
        (root / f"dec_{name}" / f"{s}_test").mkdir(parents=True)
        lines = []
        for line in (data / f"{s}_test" / "text").read_text().splitlines():
            utt, *words = line.split()
            if n < drop_words:
                words = words[1 + n % 2:]
            n += 1
            lines.append(" ".join([utt, *words]))
        (root / f"dec_{name}" / f"{s}_test" / "text").write_text("\n".join(lines) + "\n")
    return d, root / f"dec_{name}"


def test_size_wer_table_and_lossless_choice(ci_corpus, tmp_path, capsys):
    spks = speakers(ci_corpus, "tune") + speakers(ci_corpus, "eval")
    (tmp_path / "all.list").write_text("\n".join(spks) + "\n")
    n_utts = sum(len((ci_corpus / f"{s}_test" / "text").read_text().splitlines()) for s in spks)
    fp32_file = tmp_path / "base.pth"
    fp32_file.write_bytes(b"x" * 4000)
    fp32_dec = _fake_system(tmp_path, ci_corpus, spks, "fp32", 0, 0)[1]
    systems = {"big": (1000, 0), "mid": (500, 1), "tiny": (250, n_utts)}  # bytes, utterances with a deleted word
    args = ["--data_dir", str(ci_corpus), "--speaker_list", str(tmp_path / "all.list"),
            "--reference", "fp32", str(fp32_file), str(fp32_dec)]
    for name, (nbytes, drop) in systems.items():
        d, dec = _fake_system(tmp_path, ci_corpus, spks, name, nbytes, drop)
        args += ["--system", name, "uniform" if name != "mid" else "mixed", str(d), str(dec)]
    out = tmp_path / "out"
    assert size_wer.main(args + ["--vs", "tiny", "mid", "--csv", str(out / "t.csv"), "--markdown", str(out / "t.md"),
                                 "--png", str(out / "t.png"), "--lossless_to", str(out / "chosen")]) == 0
    rows = {r["system"]: r for r in csv.DictReader(open(out / "t.csv"))}
    assert rows["fp32"]["p_vs_ref"] == "" and float(rows["fp32"]["wer"]) == 0
    assert int(rows["big"]["bytes"]) == 1000 and float(rows["big"]["ratio"]) == 4.0
    assert float(rows["big"]["bits_per_param"]) == 8.0  # 1000 bytes over 1000 params
    assert float(rows["tiny"]["p_vs_ref"]) < 0.05 < float(rows["mid"]["p_vs_ref"])
    assert (out / "chosen").read_text() == "mid\n"  # tiny is smaller but significantly worse
    md = (out / "t.md").read_text()
    assert "| tiny |" in md and "(worse)" in md and "p vs mid" in md
    assert (out / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "smallest not significantly worse than fp32: mid" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["sensitivity", "allocate", "size_wer"])
def test_help(verb):
    r = subprocess.run([sys.executable, "-m", f"espnet_p4q.bin.{verb}", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage:" in r.stdout and "python -m espnet_p4q.bin." + verb in r.stdout
