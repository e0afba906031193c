"""Whisper as an espnet2 ASR model: its training options, building, and decoding with its prompt.

Why: the model is espnet2's own (``ASRTask.build_model`` with ``encoder: whisper`` and
``decoder: whisper``, no frontend, no CTC), so training, LoRA and quantisation treat it like any
other espnet2 model. Two things espnet2 cannot do with PyPI's openai-whisper are supplied here:
loading the rebuilt weights (:func:`local_whisper`) and Whisper's tokenizer, whose start-of-
transcript prompt (language, task, no timestamps) primes espnet's own beam search.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from espnet.nets.beam_search import BeamSearch
from whisper.tokenizer import Tokenizer

from espnet_p4q.models.asr_model import resolved_config
from espnet_p4q.models.tied_embedding import tie_embedding
from espnet_p4q.models.whisper_bridge import local_whisper
from espnet_p4q.models.whisper_tokens import SYM_EOS, SYM_SOS, hypothesis_text

# The decoder's token embedding, also its output projection (kept tied: see tied_embedding).
TOKEN_EMBEDDING = "decoder.decoders.token_embedding"


def whisper_train_options(cache_dir: Path, name: str = "base", dropout_rate: float = 0.0) -> Dict[str, Any]:
    """espnet2 ASR training options for Whisper ``name`` whose checkpoint is in ``cache_dir``."""
    whisper = {"whisper_model": name, "download_dir": str(cache_dir), "dropout_rate": dropout_rate}
    return {
        "input_size": 1,  # raw waveform: the encoder computes Whisper's own log-mel features
        "frontend": None,
        "normalize": None,
        "specaug": None,
        "encoder": "whisper",
        "encoder_conf": dict(whisper),
        "decoder": "whisper",
        "decoder_conf": dict(whisper),
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "sym_sos": SYM_SOS, "sym_eos": SYM_EOS},
        # the tokenizer is openai-whisper's (whisper_tokens); no bpemodel: espnet's whisper token
        # converters need its fork's Hugging Face API, and a bpemodel names a file to copy
        "token_type": "whisper_multilingual",
        "bpemodel": None,
    }


def uses_whisper(args: argparse.Namespace) -> bool:
    return "whisper" in (getattr(args, "encoder", None), getattr(args, "decoder", None))


def _same_sinusoids(module, state_dict, prefix, *args) -> None:
    """Accept checkpoints written by espnet2 itself (they store the table): it must be this one."""
    stored = state_dict.pop(prefix + "positional_embedding", None)
    if stored is not None and not torch.equal(stored.to(module.positional_embedding), module.positional_embedding):
        raise ValueError(f"{prefix}positional_embedding in the checkpoint differs from the Whisper weights")


def build_whisper_model(args: argparse.Namespace) -> torch.nn.Module:
    """``ASRTask.build_model(args)`` with the Whisper weights the options name, embedding tied.

    The state dict therefore names the table ``decoder.decoders.token_embedding.table.weight``
    and holds no encoder sinusoid table.
    """
    from espnet2.tasks.asr import ASRTask

    with local_whisper():
        model = ASRTask.build_model(args)
    if getattr(args, "encoder", None) == "whisper":
        # Whisper's encoder positions are a fixed sinusoid table (not trained), set from the
        # verified checkpoint at every build: model files need not carry it (3 MB for base).
        enc = model.encoder.encoders
        enc.register_buffer("positional_embedding", enc.positional_embedding, persistent=False)
        enc.register_load_state_dict_pre_hook(_same_sinusoids)
    if getattr(args, "decoder", None) == "whisper":
        tie_embedding(model, TOKEN_EMBEDDING)
    return model


def build_whisper_asr_model(config_path: Path) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """espnet2's ASR model from ``config_path`` (an espnet2 config.yaml) with its Whisper weights."""
    args = argparse.Namespace(**resolved_config(Path(config_path)))
    return build_whisper_model(args), args


def best_hypothesis(model: torch.nn.Module, speech: torch.Tensor, tokenizer: Tokenizer, beam_size: int = 1):
    """espnet's best Hypothesis (``yseq``: prompt first, end token last; ``score``) for one
    16 kHz waveform."""
    search = BeamSearch(
        scorers={"decoder": model.decoder}, weights={"decoder": 1.0}, beam_size=beam_size,
        vocab_size=model.vocab_size, sos=model.sos, eos=model.eos, token_list=None,
        pre_beam_score_key="full",
    )
    primer = list(tokenizer.sot_sequence_including_notimestamps)
    search.set_hyp_primer(primer)
    # at most as many tokens as the decoder has positions (espnet: a negative ratio is a length)
    max_tokens = model.decoder.decoders.positional_embedding.shape[0] - len(primer)
    with torch.no_grad():
        enc, _, _ = model.encoder(speech[None], torch.tensor([speech.numel()]))
        hyps = search(enc[0], maxlenratio=-float(max_tokens), minlenratio=0.0)
    return hyps[0]


def beam_decode(model: torch.nn.Module, speech: torch.Tensor, tokenizer: Tokenizer, beam_size: int = 1) -> str:
    """Text of one utterance (1-D waveform, 16 kHz)."""
    return hypothesis_text(tokenizer, best_hypothesis(model, speech, tokenizer, beam_size).yseq.tolist())
