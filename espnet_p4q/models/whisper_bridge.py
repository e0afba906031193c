"""Let espnet2's own Whisper encoder/decoder load rebuilt checkpoints offline.

Why: espnet 202511's ``OpenAIWhisperEncoder``/``OpenAIWhisperDecoder`` call
``whisper.load_model(whisper_model, download_root=download_dir)``, which only accepts OpenAI's
file (its SHA-256) and otherwise downloads; and the encoder imports ``whisper.audio.N_MELS``,
which PyPI's openai-whisper 20250625 no longer defines. Inside :func:`local_whisper`, a model
name whose ``download_dir`` holds a checkpoint rebuilt by :mod:`espnet_p4q.models.whisper_weights`
loads that file (checked against its recorded sha256); any other call goes to openai-whisper
unchanged. So an espnet2 config says where its weights are::

    encoder: whisper
    encoder_conf: {whisper_model: base, download_dir: exp/whisper}
    decoder: whisper
    decoder_conf: {whisper_model: base, download_dir: exp/whisper}

and espnet2's ``ASRTask.build_model`` builds it inside ``with local_whisper():``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import whisper
import whisper.audio

from espnet_p4q.models.whisper_weights import checkpoint_files, verified_checkpoint

N_MELS = 80  # what espnet's encoder computes; every Whisper before large-v3 uses 80 mel bins


@contextlib.contextmanager
def local_whisper() -> Iterator[None]:
    """Route ``whisper.load_model(name, download_root=D)`` to ``D/<name>.pt`` where one was built."""
    original = whisper.load_model
    had_n_mels = hasattr(whisper.audio, "N_MELS")

    @functools.wraps(original)
    def load_model(name, device=None, download_root=None, in_memory=False):
        if download_root is not None and checkpoint_files(download_root, name)["provenance"].is_file():
            name = str(verified_checkpoint(download_root, name))
        return original(name, device=device, download_root=download_root, in_memory=in_memory)

    whisper.load_model = load_model
    if not had_n_mels:
        whisper.audio.N_MELS = N_MELS
    try:
        yield
    finally:
        whisper.load_model = original
        if not had_n_mels:
            del whisper.audio.N_MELS
