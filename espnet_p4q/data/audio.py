"""Read one wav.scp entry as the models expect it: 16 kHz mono float32 in [-1, 1].

Why one loader: training and decoding must see the same samples espnet2's ``sound`` reader gave
the base model, and neither may accept audio the model was not trained for: an 8 kHz or a stereo
file decodes to garbage without a word. kaldiio reads paths and ``cmd |`` pipes alike.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from espnet_p4q.fileio import InputError

SAMPLE_RATE = 16000


def load_audio(rxfile: str, utt: str = "", where: Optional[os.PathLike] = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of ``rxfile`` (a path or a pipe), checked: ``sample_rate`` Hz, one channel.

    ``utt`` and ``where`` (the wav.scp) only locate errors.
    """
    import kaldiio

    name = f"'{utt}'" if utt else f"'{rxfile}'"
    try:
        rate, wav = kaldiio.load_mat(rxfile)
    except Exception as e:  # a failing pipe, a missing or unreadable file
        raise InputError(f"cannot read the audio of {name} ({type(e).__name__}: {e})", where) from None
    wav = np.asarray(wav)
    if sample_rate and rate != sample_rate:
        raise InputError(f"audio of {name} is {rate} Hz, expected {sample_rate} Hz mono", where)
    if wav.ndim != 1 and not (wav.ndim == 2 and wav.shape[1] == 1):
        raise InputError(f"audio of {name} has {wav.shape[1] if wav.ndim == 2 else wav.shape} channels, "
                         "expected one (mono)", where)
    wav = wav.reshape(-1)
    if wav.dtype == np.int16:
        return wav.astype(np.float32) / 32768.0
    return wav.astype(np.float32)
