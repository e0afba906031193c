"""Whisper as an espnet2 ASR model: its training options, building, and decoding with its prompt.

Why: the model is espnet2's own (``ASRTask.build_model`` with ``encoder: whisper`` and
``decoder: whisper``, no frontend, no CTC), so training, LoRA and quantisation treat it like any
other espnet2 model. Two things espnet2 cannot do with PyPI's openai-whisper are supplied here:
loading the rebuilt weights (:func:`local_whisper`) and Whisper's tokenizer, whose start-of-
transcript prompt (language, task, no timestamps) primes espnet's own beam search.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import yaml
from espnet.nets.beam_search import BeamSearch
from whisper.tokenizer import Tokenizer

from espnet_p4q.config_check import build_checked
from espnet_p4q.fileio import atomic_path, write_text_atomic
from espnet_p4q.models.asr_model import espnet_config_from_train_yaml, resolved_config
from espnet_p4q.models.tied_embedding import tie_embedding
from espnet_p4q.models.whisper_bridge import local_whisper
from espnet_p4q.models.whisper_scorer import CachedCrossAttentionScorer
from espnet_p4q.models.whisper_tokens import SYM_EOS, SYM_SOS, hypothesis_text, scored_text, token_list, tokenizer_for
from espnet_p4q.models.whisper_weights import verified_checkpoint

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


def write_espnet_base(cache_dir: Path, out_dir: Path, name: str = "base") -> Tuple[Path, Path]:
    """An espnet2 model directory of Whisper ``name`` from its verified cache: (config, model).

    ``config.yaml`` is a full espnet2 ASR config (as asr_train writes it: inline token list, the
    cache named by its absolute path) and ``base.pth`` the model's state dict, so a recipe treats
    Whisper like any trained espnet2 base (stage 5's ``--pretrained_model whisper:NAME``).
    """
    cache_dir, out_dir = Path(cache_dir).resolve(), Path(out_dir)
    ckpt = verified_checkpoint(cache_dir, name)
    n_vocab = torch.load(ckpt, map_location="cpu", weights_only=True)["dims"]["n_vocab"]
    out_dir.mkdir(parents=True, exist_ok=True)
    train_yaml = write_text_atomic(out_dir / "whisper_train.yaml",
                                   yaml.safe_dump(whisper_train_options(cache_dir, name)))
    config = espnet_config_from_train_yaml(train_yaml, token_list(tokenizer_for(n_vocab)),
                                           out_dir / "config.yaml")
    train_yaml.unlink()
    model, _ = build_whisper_asr_model(config)
    with atomic_path(out_dir / "base.pth") as tmp:
        torch.save(model.state_dict(), tmp)
    return config, out_dir / "base.pth"


def build_whisper_asr_model(config_path: Path) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """espnet2's ASR model from ``config_path`` (an espnet2 config.yaml) with its Whisper weights."""
    args = argparse.Namespace(**resolved_config(Path(config_path)))
    return build_whisper_model(args), args


def best_hypothesis(model: torch.nn.Module, speech: torch.Tensor, tokenizer: Tokenizer, beam_size: int = 1,
                    max_tokens: Optional[int] = None):
    """espnet's best Hypothesis (``yseq``: prompt first, end token last; ``score``) for one
    16 kHz waveform, at most ``max_tokens`` text tokens (default: as many as the decoder has
    positions). The decoder scores through :class:`CachedCrossAttentionScorer` (same scores,
    the audio's cross-attention projections computed once)."""
    search = BeamSearch(
        scorers={"decoder": CachedCrossAttentionScorer(model.decoder)}, weights={"decoder": 1.0}, beam_size=beam_size,
        vocab_size=model.vocab_size, sos=model.sos, eos=model.eos, token_list=None,
        pre_beam_score_key="full",
    )
    primer = list(tokenizer.sot_sequence_including_notimestamps)
    search.set_hyp_primer(primer)
    # at most as many tokens as the decoder has positions (espnet: a negative ratio is a length)
    room = model.decoder.decoders.positional_embedding.shape[0] - len(primer)
    max_tokens = room if max_tokens is None else max(1, min(max_tokens, room))
    with torch.no_grad():
        enc, _, _ = model.encoder(speech[None], torch.tensor([speech.numel()]))
        hyps = search(enc[0], maxlenratio=-float(max_tokens), minlenratio=0.0)
    return hyps[0]


def beam_decode(model: torch.nn.Module, speech: torch.Tensor, tokenizer: Tokenizer, beam_size: int = 1,
                max_tokens: Optional[int] = None) -> str:
    """Text of one utterance (1-D waveform, 16 kHz)."""
    hyp = best_hypothesis(model, speech, tokenizer, beam_size, max_tokens)
    return hypothesis_text(tokenizer, hyp.yseq.tolist())


@dataclass
class WhisperDecodeOptions:
    """A Whisper recipe's decoding config (its conf/decode*.yaml).

    ``pad_to_30s``: pad (or cut) the audio to Whisper's 30 s window as in its training; false
    encodes only the utterance (about 10x less encoder work on 3 s clips).
    ``max_tokens_per_second``: hypotheses longer than this many tokens per second of audio
    (plus 8) are cut; a loop of repeated words (which Whisper can fall into, above all on
    unpadded audio) then costs little time and few insertions. 0: up to the decoder's context.
    """

    beam_size: int = 1
    pad_to_30s: bool = False
    max_tokens_per_second: float = 0.0

    def __post_init__(self):
        if self.beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        if self.max_tokens_per_second < 0:
            raise ValueError("max_tokens_per_second must be >= 0 (0: no limit but the decoder's context)")


class WhisperSpeech2Text:
    """Whisper's decoding with espnet2 Speech2Text's calling convention.

    Why: espnet2's ``Speech2Text`` builds espnet's whisper tokenizer (its fork's Hugging Face
    API, missing here); the recipe's decoder (espnet_p4q.decoding) only needs ``asr_model`` and
    ``s2t(speech) -> [(text, ...)]``. Texts follow the Whisper text rule (whisper_tokens).
    """

    def __init__(self, config_path: Path, decode_conf: Dict[str, Any], device: str = "cpu"):
        opts = build_checked(WhisperDecodeOptions, decode_conf, config_path, "Whisper decoding option")
        self.asr_model, _ = build_whisper_asr_model(config_path)
        self.asr_model.to(device).eval()
        self.asr_model.encoder.do_pad_trim = opts.pad_to_30s
        self.opts, self.device = opts, device
        self.tokenizer = tokenizer_for(self.asr_model.vocab_size)

    def __call__(self, speech) -> List[Tuple[str, None, None, None]]:
        audio = torch.as_tensor(speech, dtype=torch.float32, device=self.device)
        rate = self.opts.max_tokens_per_second
        limit = int(rate * audio.numel() / 16000) + 8 if rate > 0 else None
        text = beam_decode(self.asr_model, audio, self.tokenizer, self.opts.beam_size, limit)
        return [(scored_text(text), None, None, None)]
