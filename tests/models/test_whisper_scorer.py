"""The cached cross-attention scorer gives espnet2's Whisper decoder scores, projecting the audio once."""

import pytest
import torch

from espnet_p4q.models.whisper_asr import build_whisper_asr_model
from espnet_p4q.models.whisper_scorer import CachedCrossAttentionScorer
from espnet_p4q.models.whisper_tokens import tokenizer_for
from espnet_p4q.quant.apply import quantize_model
from espnet_p4q.quant.config import QuantConfig
from tiny_whisper import DIMS, noise_clip, tiny_whisper, tiny_whisper_config  # noqa: F401

NF4 = QuantConfig.from_yaml("conf/quant/nf4_whisper.yaml")
PROMPT = list(tokenizer_for(DIMS.n_vocab).sot_sequence_including_notimestamps)


def _encoded(model):
    audio = noise_clip(seconds=1.0)
    with torch.no_grad():
        enc, _, _ = model.encoder(audio[None], torch.tensor([audio.numel()]))
    return enc[0]


@pytest.mark.parametrize("packed", [False, True], ids=["fp32", "nf4"])
def test_scores_equal_espnet2s_decoder_at_every_prefix(tiny_whisper_config, packed):
    model, _ = build_whisper_asr_model(tiny_whisper_config)
    model.eval()
    if packed:
        quantize_model(model, NF4)
    x = _encoded(model)
    scorer = CachedCrossAttentionScorer(model.decoder)
    state = scorer.init_state(x)
    prefix = list(PROMPT)
    for step in range(5):
        y = torch.tensor(prefix)
        got, kept = scorer.score(y, state, x)
        with torch.no_grad():
            want, _ = model.decoder.score(y, None, x)
        assert kept is state
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        prefix.append(int(want.argmax()) if step % 2 else 220 + step)  # greedy and forced tokens


def test_audio_projections_run_once_per_utterance(tiny_whisper_config):
    model, _ = build_whisper_asr_model(tiny_whisper_config)
    model.eval()
    x = _encoded(model)
    calls = []
    handles = [block.cross_attn.key.register_forward_hook(lambda *a: calls.append(1))
               for block in model.decoder.decoders.blocks]
    scorer = CachedCrossAttentionScorer(model.decoder)
    state = scorer.init_state(x)
    for n in range(3):
        scorer.score(torch.tensor(PROMPT + [220] * n), state, x)
    for h in handles:
        h.remove()
    assert len(calls) == DIMS.n_text_layer  # once per block, in init_state only
