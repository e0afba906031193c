"""What the recipe needs of Whisper: an espnet2 model dir from the cache, the text rule, training
batches with Whisper's tokenizer, and decoding behind the recipe's decoder (SpeakerDecoder)."""

import argparse

import numpy as np
import pytest
import torch
import yaml

from espnet_p4q.decoding import SpeakerDecoder
from espnet_p4q.fileio import InputError
from espnet_p4q.models.asr_model import load_fp32_asr_model, uses_whisper
from espnet_p4q.models.base import BaseSpec
from espnet_p4q.models.whisper_asr import WhisperSpeech2Text, best_hypothesis, write_espnet_base
from espnet_p4q.models.whisper_tokens import WhisperPreprocessor, scored_text, target_ids, tokenizer_for, training_text
from espnet_p4q.train.data import preprocess_fn
from tiny_whisper import DIMS, NAME, noise_clip, tiny_whisper, tiny_whisper_config  # noqa: F401

TOKENIZER = tokenizer_for(DIMS.n_vocab)


@pytest.fixture(scope="module")
def espnet_dir(tiny_whisper, tmp_path_factory):
    cache, _ = tiny_whisper
    out = tmp_path_factory.mktemp("espnet_base")
    config, model = write_espnet_base(cache, out, NAME)
    return config, model


def test_write_espnet_base_gives_a_loadable_espnet2_model_dir(espnet_dir, tiny_whisper):
    config, model_file = espnet_dir
    _, ref = tiny_whisper
    cfg = yaml.load(config.read_text(), Loader=yaml.CSafeLoader)
    assert uses_whisper(cfg) and len(cfg["token_list"]) == DIMS.n_vocab
    assert sorted(p.name for p in config.parent.iterdir()) == ["base.pth", "config.yaml"]
    model, _ = load_fp32_asr_model(config, model_file)  # strict: every tensor present and used
    assert torch.equal(model.decoder.decoders.blocks[0].attn.query.weight, ref.decoder.blocks[0].attn.query.weight)


def test_the_text_rule():
    assert scored_text("Hello, world! It's 5 o'clock.") == "HELLO WORLD IT'S FIVE O'CLOCK"
    assert training_text("HELLO WORLD IT'S FIVE") == "hello world it's five"
    out = WhisperPreprocessor(TOKENIZER)("u", {"text": "HELLO WORLD"})
    assert out["text"].tolist() == target_ids(TOKENIZER, "hello world")


def test_training_batches_use_whispers_tokenizer(espnet_dir):
    from espnet_p4q.models.asr_model import resolved_config

    config, _ = espnet_dir
    fn = preprocess_fn(argparse.Namespace(**resolved_config(config)))
    assert isinstance(fn, WhisperPreprocessor)
    ids = fn("u", {"speech": np.zeros(10, np.float32), "text": "THE CAT"})["text"]
    assert ids.tolist() == target_ids(TOKENIZER, "the cat")


def test_max_tokens_bounds_a_hypothesis(espnet_dir):
    config, model_file = espnet_dir
    model, _ = load_fp32_asr_model(config, model_file)
    hyp = best_hypothesis(model.eval(), noise_clip(1.0), TOKENIZER, beam_size=1, max_tokens=3)
    prompt = len(TOKENIZER.sot_sequence_including_notimestamps)
    assert len(hyp.yseq) <= prompt + 3 + 1  # at most 3 text tokens, then the end token


def test_speaker_decoder_decodes_whisper_with_the_text_rule(espnet_dir):
    config, model_file = espnet_dir
    dec = SpeakerDecoder(BaseSpec("fp32", config, model_file), {"beam_size": 2, "max_tokens_per_second": 4})
    assert isinstance(dec.s2t, WhisperSpeech2Text)
    text = dec(noise_clip(1.0).numpy())
    assert text == scored_text(text) and len(text.split()) <= 12  # 4 tokens/s x 1 s + 8


@pytest.mark.parametrize("conf, message", [
    ({"beam_size": 2, "ctc_weight": 0.3}, "unknown Whisper decoding option"),
    ({"beam_size": 0}, "beam_size must be at least 1"),
    ({"pad_to_30s": "yes"}, "pad_to_30s"),
])
def test_bad_whisper_decoding_options_are_refused(espnet_dir, conf, message):
    config, _ = espnet_dir
    with pytest.raises(InputError, match=message):
        WhisperSpeech2Text(config, conf)
