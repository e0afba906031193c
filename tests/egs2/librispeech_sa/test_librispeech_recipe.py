"""egs2/librispeech_sa/asr1 as a recipe: run.sh --help, its configs, and stages 1-2 offline.

Fast checks of what the paper-scale run needs before it meets the corpus and a GPU: run.sh reaches
p4q.sh with this corpus's options, every config it names exists and loads (the base AED builds
with espnet2 at full size, the adaptation YAMLs load into TrainConfig), and p4q.sh's stages 1-2
run on a tiny LibriSpeech tree through the recipe's own run.sh (in a temporary copy shaped like
the repository, so nothing is written into egs2/).
"""

from __future__ import annotations

import subprocess

import tiny_librispeech as tiny
from recipe_checks import REPO, check_sa_data_opts, copy_recipe, env, option, run_help

RECIPE = REPO / "egs2/librispeech_sa/asr1"


def test_local_data_opts_are_accepted_by_data_sh(help_text, tmp_path):
    opts = check_sa_data_opts(RECIPE, help_text, tmp_path, tiny.partition_rows(), smallest_train_split=58)
    assert opts[opts.index("--audio") + 1] == "path"  # espnet2's sound reader cannot run pipes


def test_stages_1_2_on_tiny_corpus(tmp_path, monkeypatch):
    """./run.sh --stage 1 --stop_stage 2 with the recipe's data options on a tiny extracted copy."""
    from espnet2.fileio.sound_scp import SoundScpReader

    recipe = copy_recipe(RECIPE, tmp_path / "repo")
    corpus = tiny.make_corpus(tmp_path / "corpus")
    # the recipe's own data options (the authors' partition), no download
    local_opts = option(run_help(recipe), "local_data_opts") + " --mirrors file:///nowhere"
    proc = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "2", "--local_data_opts", local_opts],
                          cwd=recipe, env=env(LIBRISPEECH=str(corpus)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = recipe / "data"
    assert (data / ".validate.done").is_file()
    assert (data / "sa_tune.list").read_text().split() == ["ls115", "ls829"]
    monkeypatch.chdir(recipe)  # wav.scp paths may be relative to the recipe dir, where p4q.sh runs
    for d in ("train", "dev", "ls115_adapt", "ls210_test"):  # plain flac paths espnet2 can open
        reader = SoundScpReader(str(data / d / "wav.scp"))
        for key in reader.keys():
            rate, wav = reader[key]
            assert rate == 16000 and wav.ndim == 1 and len(wav) > 0
    assert len((data / "ls115_adapt/wav.scp").read_text().splitlines()) == 59
    assert not (data / "ls115_dev").exists()
