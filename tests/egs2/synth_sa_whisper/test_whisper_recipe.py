"""egs2/synth_sa_whisper/asr1 at CI size: every stage of the P4Q comparison on a tiny random Whisper.

The recipe runs in a repository-shaped copy (nothing is written into egs2/) on the CI corpus
(synth_sa's conf/data_ci.yaml, audio reused from the session's ``ci_corpus``), with
``--pretrained_model whisper:tiny`` read from a cache the test writes (the tiny Whisper of
tests/models/tiny_whisper.py, converted as the real base is). Numbers are not meaningful; the test
checks that stage 5 imports Whisper as an espnet2 model, that every system is trained, decoded,
scored and compared, and that hypotheses follow the Whisper text rule.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml
from recipe_checks import REPO, copy_recipe, env, run_in_group

sys.path.insert(0, str(REPO / "tests" / "models"))
from tiny_whisper import NAME, ct2_bytes, ct2_variables, random_whisper, write_parts  # noqa: E402

RECIPE = REPO / "egs2/synth_sa_whisper/asr1"
CI_TRAIN_CONFS = ("lora_pretrain_config", "adapt_lora_config", "adapt_scratch_config", "adapt_fft_config")
SYSTEMS = ["fp32", "nf4", "lora_pretrain_nf4", "p4q", "p4q_unsup", "lora_scratch_nf4", "fft_nf4", "fft_fp32"]


def test_run_sh_help_names_whisper_and_its_configs():
    out = subprocess.run(["./run.sh", "--help"], cwd=RECIPE, env=env(), capture_output=True, text=True, check=True).stdout
    assert "--pretrained_model=whisper:base" in out and "nf4_whisper.yaml" in out
    for conf in ("decode.yaml", "decode_ci.yaml", "lora_pretrain.yaml", "adapt_lora.yaml", "adapt_lora_scratch.yaml",
                 "adapt_fft.yaml", "finetune_ci.yaml"):
        assert yaml.safe_load((RECIPE / "conf" / conf).read_text()), conf


def test_ci_size_comparison_on_a_tiny_whisper(tmp_path, ci_corpus):
    from espnet_p4q.models.whisper_weights import build_checkpoint

    recipe = copy_recipe(RECIPE, tmp_path / "repo")
    (tmp_path / "repo/egs2/synth_sa").symlink_to(REPO / "egs2/synth_sa")
    parts, sha = write_parts(ct2_bytes(ct2_variables(random_whisper())), tmp_path / "ct2")
    (tmp_path / "LICENSE").write_text("test licence\n")
    build_checkpoint(recipe / "exp/whisper", NAME, parts=parts, expected_sha256=sha, license_file=tmp_path / "LICENSE")

    data_opts = (f"--config ../../synth_sa/asr1/conf/data_ci.yaml --download_dir {ci_corpus.parents[1] / 'downloads'} "
                 "--train_per_speaker 4 --nj 1")
    proc = run_in_group(
        ["./run.sh", "--pretrained_model", f"whisper:{NAME}", "--local_data_opts", data_opts,
         "--train_set", "train_w4", "--inference_config", "conf/decode_ci.yaml", "--n_adapt", "0",
         "--inference_nj", "2", "--train_threads", "1"]
        + [arg for conf in CI_TRAIN_CONFS for arg in (f"--{conf}", "conf/finetune_ci.yaml")],
        cwd=recipe, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    data, exp = recipe / "data", recipe / f"exp/asr_whisper_{NAME}"
    assert len((data / "train_w4/utt2spk").read_text().splitlines()) == 4 * 4  # 4 training speakers
    assert len((data / "dev_w1/utt2spk").read_text().splitlines()) == 4
    # stage 5: an espnet2 config with Whisper's encoder/decoder and its token list, and the weights
    cfg = yaml.load((exp / "config.yaml").read_text(), Loader=yaml.CSafeLoader)
    assert cfg["encoder"] == cfg["decoder"] == "whisper" and len(cfg["token_list"]) == 51865
    assert (exp / "base.pth").is_file() and (exp / "nf4/size.json").is_file()
    speakers = (data / "sa_tune.list").read_text().split() + (data / "sa_eval.list").read_text().split()
    for sys_name in ("p4q", "p4q_unsup", "lora_scratch_nf4"):
        for spk in speakers:
            assert (exp / f"adapt_{sys_name}/{spk}/adapter.pth").is_file()
    for sys_name in SYSTEMS:
        for spk in speakers:
            out = exp / f"decode_{sys_name}/{spk}_test"
            assert json.loads((out / "decode.json").read_text())["rtf"] > 0
            lines = (out / "text").read_text().splitlines()
            assert len(lines) == 3
            for line in lines:  # the Whisper text rule: normalised words
                assert re.fullmatch(r"\S+( [A-Z0-9']+)*", line), line
            assert (out / "score_wer/result.txt").is_file()
    results = (recipe / "RESULTS.md").read_text()
    assert "LoRA-pretrain-NF4 + adaptation (P4Q)" in results and "FFT-FP32 per speaker" in results
    assert "(pretrained from whisper:tiny, Whisper's own tokens)" in results  # not the unused --nbpe
