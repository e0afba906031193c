"""espnet2's Whisper decoder as a beam-search scorer that projects the audio once per utterance.

Why: espnet2's ``OpenAIWhisperDecoder.score`` (202511) keeps no state, so at every decoding step
each block re-runs its cross-attention key and value projections over all encoder frames (1,500
for Whisper's 30 s window): for Whisper base about 9 GFLOP a step, several times the whole
encoder over a sentence. Those projections depend on the audio only. openai-whisper's attention
takes them from a ``kv_cache`` dict keyed by the key/value modules; :class:`CachedCrossAttentionScorer`
fills that dict in ``init_state`` (once per utterance, espnet's beam search calls it before the
first step) and hands it to every block as the hypothesis state. The rest of a step is espnet2's
``forward_one_step`` for one hypothesis; the log-probabilities are the same (tests compare them).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from espnet.nets.scorer_interface import ScorerInterface


class CachedCrossAttentionScorer(ScorerInterface):
    """Next-token log-probabilities of an espnet2 ``OpenAIWhisperDecoder`` (eval mode), one hypothesis
    at a time (espnet's ``BeamSearch``), the cross-attention keys/values computed once per utterance."""

    def __init__(self, decoder: torch.nn.Module):
        self.decoder = decoder

    @torch.no_grad()
    def init_state(self, x: torch.Tensor) -> Dict[torch.nn.Module, torch.Tensor]:
        """Every block's cross-attention keys and values of encoder output ``x`` (frames, dim)."""
        memory = x.unsqueeze(0)
        cache = {}
        for block in self.decoder.decoders.blocks:
            attn = block.cross_attn
            cache[attn.key] = attn.key(memory)
            cache[attn.value] = attn.value(memory)
        return cache

    def select_state(self, state: Any, i: int, new_id: int = None) -> Any:
        return state  # one utterance's projections, shared by every hypothesis

    @torch.no_grad()
    def score(self, y: torch.Tensor, state: Dict[torch.nn.Module, torch.Tensor],
              x: torch.Tensor) -> Tuple[torch.Tensor, Dict[torch.nn.Module, torch.Tensor]]:
        """Log-probabilities (vocabulary) of the token after prefix ``y`` (prompt included)."""
        text = self.decoder.decoders
        tokens = y.unsqueeze(0)
        h = text.token_embedding(tokens) + text.positional_embedding[: tokens.size(1)]
        memory = x.unsqueeze(0)
        h = h.to(memory.dtype)
        for block in text.blocks:
            h = block(h, memory, mask=text.mask, kv_cache=state)
        last = text.ln(h)[:, -1]
        logits = (last @ torch.transpose(text.token_embedding.weight.to(last.dtype), 0, 1)).float()
        return torch.log_softmax(logits, dim=-1).squeeze(0), state
