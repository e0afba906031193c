"""Whisper's own tokenizer (openai-whisper, tiktoken) for espnet2 models: token list and text.

Why: espnet2 builds a model's output size from its ``token_list`` file, and its ``whisper_*``
token converters call the Hugging Face tokenizer API of espnet's whisper fork, which PyPI's
openai-whisper (tiktoken) does not have. So the token list is written here from the tiktoken
encoding itself (one entry per id, byte-level tokens in GPT-2's printable form so every entry is
unique and whitespace-free), training targets are made as espnet's converter makes them (the
prompt after the start token, then the text), and hypotheses are turned into text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List

import numpy as np
from whisper.tokenizer import Tokenizer, get_tokenizer

from espnet_p4q.fileio import write_text_atomic

SYM_SOS = "<|startoftranscript|>"
SYM_EOS = "<|endoftext|>"


def tokenizer_for(n_vocab: int, language: str = "en", task: str = "transcribe") -> Tokenizer:
    """The tokenizer of a Whisper model with ``n_vocab`` outputs (multilingual if > 51864)."""
    multilingual = n_vocab >= 51865
    num_languages = n_vocab - 51765 - int(multilingual)  # as whisper.model.Whisper.num_languages
    return get_tokenizer(multilingual, num_languages=num_languages, language=language, task=task)


def _printable_bytes() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character table (printable bytes map to themselves)."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def token_list(tokenizer: Tokenizer) -> List[str]:
    """One string per token id, in id order (special tokens by their names)."""
    enc = tokenizer.encoding
    specials = {i: s for s, i in enc._special_tokens.items()}
    table = _printable_bytes()
    out = []
    for i in range(enc.n_vocab):
        if i in specials:
            out.append(specials[i])
            continue
        raw = enc.decode_single_token_bytes(i)
        out.append("".join(table[b] for b in raw) if raw else f"<|unused_{i}|>")
    return out


def write_token_list(path: Path, tokenizer: Tokenizer) -> Path:
    tokens = token_list(tokenizer)
    if len(set(tokens)) != len(tokens):
        raise ValueError("token list would hold duplicate entries")
    return write_text_atomic(path, "\n".join(tokens) + "\n")


def hypothesis_text(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Text of a decoded id sequence, special tokens (prompt, timestamps, end) left out."""
    return tokenizer.decode([int(i) for i in ids if int(i) < tokenizer.eot]).strip()


# The text rule of every Whisper system (one rule, so no system gains by learning a style):
# - hypotheses, FP32 zero-shot included, are put through the corpus normaliser
#   (espnet_p4q.data.text_norm.normalize: upper case, numbers spelled out, no punctuation) before
#   they are written and scored, exactly as the references were made;
# - training targets are the (normalised) references in lower case: Whisper writes mostly lower
#   case, so the adapters learn the words, not a switch to capitals, and the normaliser maps
#   either back to the reference form.
def scored_text(hypothesis: str) -> str:
    """A Whisper hypothesis in the references' form (the corpus normaliser)."""
    from espnet_p4q.data.text_norm import normalize

    return normalize(hypothesis)


def training_text(reference: str) -> str:
    """The words a Whisper model is trained to write for a (normalised) reference."""
    return reference.lower()


def target_ids(tokenizer: Tokenizer, text: str) -> List[int]:
    """Training target of ``text``: Whisper's prompt (language, task, no timestamps) and the text.

    espnet2's model adds the start and end tokens (``sym_sos``/``sym_eos``) around it, as
    espnet's ``OpenAIWhisperTokenIDConverter.tokens2ids`` expects. Whisper's text starts with a
    space, so the words are encoded with one.
    """
    return list(tokenizer.sot_sequence_including_notimestamps[1:]) + tokenizer.encode(" " + text.strip())


class WhisperPreprocessor:
    """An espnet2 ``preprocess_fn`` (``(uid, data) -> data``) for Whisper models: text to target ids.

    Why: espnet2's ``CommonPreprocessor`` builds espnet's whisper tokenizer, which needs the
    Hugging Face API of espnet's whisper fork. Speech passes through unchanged (the encoder
    computes Whisper's own features); text becomes :func:`training_text` of it.
    """

    def __init__(self, tokenizer: Tokenizer, text_name: str = "text"):
        self.tokenizer, self.text_name = tokenizer, text_name

    def __call__(self, uid: str, data: Dict) -> Dict:
        out = dict(data)
        if self.text_name in out:
            text = training_text(out[self.text_name])
            out[self.text_name] = np.array(target_ids(self.tokenizer, text), dtype=np.int64)
        return out
