"""Shared fixtures: a tiny ESPnet Conformer AED built through espnet2's own ASRTask, the CI corpus,
and the fixtures of the paper-scale recipes' test modules (tests/egs2/<corpus>/).

One conftest for the whole tree: test modules import helpers with ``from conftest import ...``,
which a second conftest module (e.g. tests/egs2/conftest.py) would shadow in a full run.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "tests" / "egs2"):  # the package; recipe_checks for tests/egs2/<corpus>/
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)

TINY_CONFIG = {
    "frontend": "default",
    "frontend_conf": {"n_fft": 400, "hop_length": 160, "n_mels": 40},
    "normalize": "utterance_mvn",
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2,
        "input_layer": "conv2d", "macaron_style": True, "use_cnn_module": True,
        "cnn_module_kernel": 7, "pos_enc_layer_type": "rel_pos",
        "selfattention_layer_type": "rel_selfattn", "rel_pos_type": "latest",
    },
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 128, "num_blocks": 1},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
}
TOKENS = ["<blank>", "<unk>"] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] + ["'", "<space>", "<sos/eos>"]


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """(config.yaml, model.pth) of a randomly initialised tiny Conformer AED (seeded)."""
    from espnet_p4q.models.asr_model import build_asr_model, espnet_config_from_train_yaml

    tmp = tmp_path_factory.mktemp("tiny_asr")
    (tmp / "train.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    config = espnet_config_from_train_yaml(tmp / "train.yaml", TOKENS, tmp / "config.yaml")
    torch.manual_seed(0)
    model, _ = build_asr_model(config)
    model_file = tmp / "valid.acc.ave.pth"
    torch.save(model.state_dict(), model_file)
    return config, model_file


@pytest.fixture(scope="session")
def speech_batch():
    g = torch.Generator().manual_seed(1)
    speech = torch.randn(2, 16000, generator=g) * 0.1
    lens = torch.tensor([16000, 12000])
    ys = torch.randint(2, len(TOKENS) - 1, (2, 6), generator=g)
    ys_lens = torch.tensor([6, 4])
    return speech, lens, ys, ys_lens


def model_outputs(model, batch):
    """Encoder output, CTC log-probabilities and decoder logits for a batch (eval mode)."""
    speech, lens, ys, ys_lens = batch
    model.eval()
    with torch.no_grad():
        enc, enc_lens = model.encode(speech, lens)
        ctc = model.ctc.log_softmax(enc)
        dec, _ = model.decoder(enc, enc_lens, ys, ys_lens)
    return enc, ctc, dec


RECIPE = REPO / "egs2" / "synth_sa" / "asr1"


@pytest.fixture(scope="session")
def ci_corpus(tmp_path_factory):
    """The CI-size synthetic corpus (conf/data_ci.yaml) built by the recipe's local/data.sh:
    ``<tmp>/recipe/data``, its audio in ``<tmp>/downloads``, outside the recipe dir, so that
    wav.scp lists absolute paths and the tests can read it from anywhere."""
    import subprocess

    tmp = tmp_path_factory.mktemp("ci_corpus")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        ["local/data.sh", "--config", "conf/data_ci.yaml", "--data_dir", str(tmp / "recipe" / "data"),
         "--download_dir", str(tmp / "downloads"), "--nj", "1"],
        cwd=RECIPE, env=env, check=True, capture_output=True,
    )
    return tmp / "recipe" / "data"


@pytest.fixture(scope="session")
def tiny_char_model_files(tmp_path_factory):
    """(config.yaml, model.pth) of a random tiny Conformer AED with character tokens."""
    from espnet_p4q.models.asr_model import build_asr_model, espnet_config_from_train_yaml

    tmp = tmp_path_factory.mktemp("tiny_char")
    (tmp / "train.yaml").write_text(yaml.safe_dump({**TINY_CONFIG, "token_type": "char"}))
    config = espnet_config_from_train_yaml(tmp / "train.yaml", TOKENS, tmp / "config.yaml")
    torch.manual_seed(0)
    model, _ = build_asr_model(config)
    torch.save(model.state_dict(), tmp / "model.pth")
    return config, tmp / "model.pth"


# Fixtures of the paper-scale recipes' test modules, built from what each module names: RECIPE
# (egs2/<corpus>/asr1) and ``tiny``, its tiny-corpus module (make_corpus(root),
# make_archives(root, mirror) -> {name: archive}). Module-scoped: built once per module.
@pytest.fixture(scope="module")
def help_text(request) -> str:
    """run.sh --help of the module's RECIPE."""
    from recipe_checks import run_help

    return run_help(request.module.RECIPE)


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory) -> Path:
    """The module's tiny corpus, as extracted."""
    return request.module.tiny.make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def mirror(request, tmp_path_factory):
    """(www, sums.txt): a file:// mirror with the tiny corpus's archives, and their sha256 in the
    format of local/download.py --checksums."""
    tiny, tmp = request.module.tiny, tmp_path_factory.mktemp("mirror")
    archives = tiny.make_archives(tiny.make_corpus(tmp / "src"), tmp / "www")
    conf = tmp / "sums.txt"
    conf.write_text("".join(f"{name} {a.name} sha256:{hashlib.sha256(a.read_bytes()).hexdigest()}\n"
                            for name, a in archives.items()))
    return tmp / "www", conf
