"""Checks every paper-scale recipe (egs2/<corpus>/asr1) must pass, shared by its test module.

A recipe test module keeps what is particular to its corpus (the full-size model, the data
options, the tiny corpus its stages 1-2 run on) and calls these for the rest: the links into
egs2/TEMPLATE, run.sh --help with the stages and the recipe's defaults, the adaptation and
decoding configs, local/data.sh run with the corpus location set, and a temporary
repository-shaped copy of the recipe to run stages in. tests/egs2/conftest.py builds the fixtures
the modules share (help text, tiny corpus, checksummed mirror) from their RECIPE and tiny module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from collections import Counter
from typing import Callable, Dict, Sequence, Tuple

import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = {1: "data", 2: "validate", 3: "tokens", 4: "stats", 5: "train", 6: "quantize", 7: "lora_pretrain",
          8: "adapt", 9: "decode", 10: "score", 11: "compare", 12: "sweep_utts", 13: "sweep_rank"}
ADAPT_CONFIGS = ["lora_pretrain.yaml", "adapt_lora.yaml", "adapt_lora_scratch.yaml", "adapt_fft.yaml"]


def env(**extra) -> Dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def run_data_sh(recipe: Path, args, cwd, corpus_var: str, corpus=None, check: bool = True):
    """Run RECIPE/local/data.sh ARGS in CWD (the corpus location in the env var CORPUS_VAR)."""
    extra = {"PYTHON": sys.executable, **({corpus_var: str(corpus)} if corpus is not None else {})}
    proc = subprocess.run(["bash", str(recipe / "local/data.sh"), *args], cwd=cwd, env=env(**extra),
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"data.sh failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def data_sh_runner(recipe: Path, corpus_var: str) -> Callable:
    """run(args, cwd, corpus=None, check=True): :func:`run_data_sh` of RECIPE, corpus in CORPUS_VAR."""
    def run(args, cwd, corpus=None, check: bool = True):
        return run_data_sh(recipe, args, cwd, corpus_var, corpus, check)
    return run


def run_help(recipe: Path) -> str:
    proc = subprocess.run(["./run.sh", "--help"], cwd=recipe, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def option(help_text: str, name: str) -> str:
    """Current value of --name in the help (quotes removed)."""
    m = re.search(rf"^\s+--{name}=(\"[^\"]*\"|\S*)", help_text, re.M)
    assert m, f"--{name} not in --help"
    return m.group(1).strip('"')


def check_layout(recipe: Path) -> None:
    """Shared stage logic is linked from egs2/TEMPLATE; db.sh and run.sh are the recipe's own."""
    for name in ("p4q.sh", "cmd.sh", "path.sh", "utils"):
        link = recipe / name
        assert link.is_symlink() and os.readlink(link) == f"../../TEMPLATE/asr1/{name}", name
        assert link.resolve() == (REPO / "egs2/TEMPLATE/asr1" / name).resolve()
    assert (recipe / "db.sh").is_file() and not (recipe / "db.sh").is_symlink()
    assert os.access(recipe / "run.sh", os.X_OK)


def check_help(recipe: Path, help_text: str, expected: Dict[str, str]) -> None:
    """--help lists every stage, shows the recipe's defaults, and the configs it names exist."""
    listed = {int(n): name for n, name in re.findall(r"^\s+(\d+)\s+(\w+)\s", help_text, re.M)}
    assert listed == STAGES
    for name, value in expected.items():
        assert option(help_text, name) == value, name
    for name in ("train_config", "inference_config", "lora_pretrain_config", "adapt_lora_config",
                 "adapt_scratch_config", "adapt_fft_config"):
        assert (recipe / option(help_text, name)).is_file(), name
    # --ngpu is left to p4q.sh's detection (nvidia-smi), not fixed by run.sh
    assert not re.search(r"^\s*--ngpu\b", (recipe / "run.sh").read_text(), re.M)


def check_adaptation_config(recipe: Path, name: str) -> None:
    from espnet_p4q.train.loop import TrainConfig

    text = (recipe / "conf" / name).read_text()
    cfg = TrainConfig(**yaml.safe_load(text))
    assert cfg.epochs >= 1 and cfg.batch_size >= 1 and 0 < cfg.lr < 0.01 and cfg.warmup_steps >= 0
    if name.startswith("adapt_"):  # a-priori values: the file says how to choose them
        assert "tune_adapt.py" in text


def check_decode_config(recipe: Path) -> None:
    dec = yaml.safe_load((recipe / "conf/decode.yaml").read_text())
    train = yaml.safe_load((recipe / "conf/train.yaml").read_text())
    assert 10 <= dec["beam_size"] <= 20 and dec["lm_weight"] == 0
    assert dec["ctc_weight"] == train["model_conf"]["ctc_weight"]


def run_in_group(args: Sequence[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a recipe command in its own process group; on timeout the whole group is killed (a
    p4q.sh left running would keep writing into the tree), then TimeoutExpired is raised."""
    import signal

    proc = subprocess.Popen(list(args), cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def copy_recipe(recipe: Path, root: Path) -> Path:
    """A repository-shaped copy of the recipe under root (TEMPLATE, the top-level local/ and path.sh
    linked), so that running its stages writes nothing into egs2/."""
    (root / "egs2").mkdir(parents=True)
    (root / "path.sh").symlink_to(REPO / "path.sh")
    (root / "local").symlink_to(REPO / "local")
    (root / "egs2/TEMPLATE").symlink_to(REPO / "egs2/TEMPLATE")
    copy = root / recipe.relative_to(REPO)
    shutil.copytree(recipe, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("data", "exp", "dump", "downloads", "RESULTS*"))
    return copy


def check_full_size_model(recipe: Path, nbpe: int, tmp_path: Path, n_params: tuple) -> None:
    """conf/train.yaml through espnet2's own parser and ASRTask.build_model (random weights): a
    12-block Conformer + 6-block decoder of ``n_params`` (low, high), NF4-friendly shapes, and a
    rank-4 speaker LoRA under 1% of it."""
    import torch

    from espnet_p4q.lora.config import LoRAConfig
    from espnet_p4q.lora.inject import count_parameters, inject_lora
    from espnet_p4q.models.asr_model import build_asr_model, espnet_config_from_train_yaml

    train = yaml.safe_load((recipe / "conf/train.yaml").read_text())
    assert train["encoder"] == "conformer" and train["decoder"] == "transformer"
    assert train["batch_type"] == "numel" and train["use_amp"] is True and train["use_tensorboard"] is False
    assert train["specaug"] == "specaug" and train["model_conf"]["ctc_weight"] == 0.3
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(nbpe - 3)] + ["<sos/eos>"]
    config = espnet_config_from_train_yaml(recipe / "conf/train.yaml", tokens, tmp_path / "config.yaml",
                                           {"normalize": "utterance_mvn", "normalize_conf": {}})
    model, args = build_asr_model(config)
    assert args.max_epoch == train["max_epoch"] and args.batch_bins == train["batch_bins"]
    assert len(model.encoder.encoders) == 12 and len(model.decoder.decoders) == 6
    assert model.decoder.output_layer.out_features == nbpe
    n = sum(p.numel() for p in model.parameters())
    assert n_params[0] < n < n_params[1], n
    # NF4 blocks of 64 along the input: bitsandbytes' fast 4-bit CPU kernel needs in_features % 64 == 0
    linears = {name: m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears and all(k % 64 == 0 for k in linears.values()), linears
    inject_lora(model, LoRAConfig.from_yaml(REPO / "conf/lora/rank4.yaml"))
    assert 0 < count_parameters(model)["adapter_share"] < 0.01


def check_paper_scale_help(recipe: Path, help_text: str, nbpe: int) -> None:
    """run.sh --help of a paper-scale recipe: its stages and the defaults both recipes share."""
    check_help(recipe, help_text, {
        "nbpe": str(nbpe), "token_type": "bpe", "bpemode": "unigram", "train_set": "train", "valid_set": "dev",
        "train_config": "conf/train.yaml", "inference_config": "conf/decode.yaml", "n_adapt": "0",
        "systems": "fp32 nf4 lora_pretrain_nf4 p4q lora_scratch_nf4 fft_nf4 fft_fp32",
        "lora_pretrain_config": "conf/lora_pretrain.yaml", "adapt_lora_config": "conf/adapt_lora.yaml",
        "adapt_scratch_config": "conf/adapt_lora_scratch.yaml", "adapt_fft_config": "conf/adapt_fft.yaml",
        "pretrained_model": "",
    })


def check_sa_data_opts(recipe: Path, help_text: str, tmp_path: Path, partition: Sequence[Tuple[str, str, str]],
                       smallest_train_split: int) -> list:
    """--local_data_opts of a paper-scale recipe: the authors' partition, its whole train split,
    sweep points within the smallest train split of PARTITION ((speaker, split, id) rows; that split
    has SMALLEST_TRAIN_SPLIT utterances), and data.sh accepting them (stage 99: options parsed and
    checked, nothing runs). Returns the options."""
    import shlex

    assert min(Counter(spk for spk, split, _ in partition if split == "train").values()) == smallest_train_split
    opts = shlex.split(option(help_text, "local_data_opts"))
    assert opts[opts.index("--sa_partition") + 1] == "paper" and "--n_adapt" not in opts  # whole train split
    assert max(int(n) for n in option(help_text, "sweep_n_adapt").split()) <= smallest_train_split
    proc = subprocess.run(["bash", str(recipe / "local/data.sh"), *opts, "--stage", "99"], cwd=tmp_path,
                          env=env(PYTHON=sys.executable), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return opts
