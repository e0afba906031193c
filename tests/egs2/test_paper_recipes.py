"""What both paper-scale recipes (egs2/librispeech_sa, egs2/tedlium3_sa) must pass alike: their
links into egs2/TEMPLATE, run.sh --help with the stages and the shared defaults, the full-size
model their conf/train.yaml builds, and their adaptation and decoding configs. What differs per
corpus (data options, tiny-corpus stages) is in tests/egs2/<corpus>/."""

from __future__ import annotations

import pytest
from recipe_checks import (ADAPT_CONFIGS, REPO, check_adaptation_config, check_decode_config, check_full_size_model,
                           check_layout, check_paper_scale_help, run_help)

RECIPES = {  # recipe: (BPE units, parameter range of the full-size model)
    "librispeech_sa": (5000, (30e6, 40e6)),  # 34.2 M
    "tedlium3_sa": (500, (28e6, 36e6)),  # 30.8 M
}


@pytest.fixture(params=sorted(RECIPES), scope="module")
def recipe(request):
    return REPO / "egs2" / request.param / "asr1"


def test_recipe_layout(recipe):
    check_layout(recipe)


def test_help_lists_stages_and_recipe_defaults(recipe):
    check_paper_scale_help(recipe, run_help(recipe), RECIPES[recipe.parent.name][0])


def test_train_config_builds_full_size_model(recipe, tmp_path):
    nbpe, n_params = RECIPES[recipe.parent.name]
    check_full_size_model(recipe, nbpe, tmp_path, n_params)


@pytest.mark.parametrize("name", ADAPT_CONFIGS)
def test_adaptation_configs_load(recipe, name):
    check_adaptation_config(recipe, name)


def test_decode_config(recipe):
    check_decode_config(recipe)
