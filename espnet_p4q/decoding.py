"""A beam-search decoder that loads its base once and switches speakers in place.

Why: a recipe decodes many speakers' test sets with one base and per-speaker parts (LoRA
adapters, or fully fine-tuned models for the FFT baselines). Loading the base per speaker would
cost more than decoding; swapping an adapter is a ``copy_`` into the existing LoRA tensors. The
beam search, scorers and tokeniser are espnet2's ``Speech2Text`` unchanged.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import yaml

from espnet_p4q.data.audio import load_audio
from espnet_p4q.fileio import InputError
from espnet_p4q.models.base import BaseSpec


def speech2text(config_path: Path, decode_conf: Dict, device: str = "cpu"):
    """An espnet2 Speech2Text with the structure of ``config_path``; the caller loads the weights.

    The config's file references (BPE model, feature statistics) may be relative to its directory.
    Whisper models get :class:`~espnet_p4q.models.whisper_asr.WhisperSpeech2Text` (same interface).
    """
    from espnet2.bin.asr_inference import Speech2Text

    from espnet_p4q.models.asr_model import resolved_config, uses_whisper

    cfg = resolved_config(Path(config_path))
    if uses_whisper(cfg):
        from espnet_p4q.models.whisper_asr import WhisperSpeech2Text

        return WhisperSpeech2Text(Path(config_path), dict(decode_conf), device)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        yaml.safe_dump(cfg, tmp)
    try:
        return Speech2Text(asr_train_config=tmp.name, asr_model_file=None, device=device,
                           bpemodel=cfg.get("bpemodel"), **decode_conf)
    finally:
        os.unlink(tmp.name)


class SpeakerDecoder:
    """espnet2's Speech2Text over a base (FP32 or packed) with optional per-speaker parts.

    Exactly one of ``adapter`` (one LoRA adapter for everything), ``adapter_dir``
    (``DIR/<spk>/adapter.pth``) or ``model_dir`` (``DIR/<spk>/model.pth`` FP32, or a packed
    ``DIR/<spk>/``) may be given; with the last two, call :meth:`switch_to` before decoding a
    speaker's utterances.
    """

    def __init__(self, spec: BaseSpec, decode_conf: Mapping, device: str = "cpu",
                 adapter: Optional[Path] = None, adapter_dir: Optional[Path] = None,
                 model_dir: Optional[Path] = None, first_speaker: Optional[str] = None):
        if sum(x is not None for x in (adapter, adapter_dir, model_dir)) > 1:
            raise ValueError("give at most one of adapter, adapter_dir, model_dir")
        self.spec, self.decode_conf, self.device = spec, dict(decode_conf), device
        self.adapter, self.adapter_dir, self.model_dir = adapter, adapter_dir, model_dir
        self.s2t, self.base = self._speech2text(spec)
        self.current: Optional[str] = None
        first = adapter if adapter else (adapter_dir / first_speaker / "adapter.pth"
                                         if adapter_dir and first_speaker else None)
        if first:
            from espnet_p4q.lora.adapter_io import load_adapter, read_adapter
            from espnet_p4q.lora.config import LoRAConfig
            from espnet_p4q.lora.inject import inject_lora

            inject_lora(self.s2t.asr_model, LoRAConfig(**read_adapter(first)["lora_config"]))
            if adapter:
                load_adapter(self.s2t.asr_model, adapter, self.base.fingerprint)
            self.s2t.asr_model.eval()

    @property
    def per_speaker(self) -> bool:
        return self.adapter_dir is not None or self.model_dir is not None

    def _speech2text(self, spec: BaseSpec):
        from espnet_p4q.models.base import load_base

        s2t = speech2text(spec.config, self.decode_conf, self.device)
        base = load_base(spec, into=s2t.asr_model)
        s2t.asr_model.to(self.device).eval()
        return s2t, base

    def switch_to(self, spk: str) -> None:
        """Put speaker ``spk``'s adapter or model in place (nothing to do for shared systems)."""
        if spk == self.current or not self.per_speaker:
            self.current = spk
            return
        if self.adapter_dir is not None:
            from espnet_p4q.lora.adapter_io import load_adapter

            load_adapter(self.s2t.asr_model, self.adapter_dir / spk / "adapter.pth", self.base.fingerprint)
        else:
            from espnet_p4q.models.base import load_base

            own = self.model_dir / spk
            if (own / "quant.yaml").is_file():
                self.s2t, _ = self._speech2text(BaseSpec.parse(f"nf4:{own}"))
            else:
                load_base(BaseSpec("fp32", self.spec.config, own / "model.pth"), into=self.s2t.asr_model)
                self.s2t.asr_model.to(self.device).eval()
        self.current = spk
        logging.info("speaker %s", spk)

    def __call__(self, speech: np.ndarray) -> str:
        """The 1-best text of one utterance (16 kHz float32 samples)."""
        import torch

        with torch.inference_mode():
            results = self.s2t(speech)
        return results[0][0].strip() if results else ""


def decode_utterances(decoder: SpeakerDecoder, wavs: Mapping[str, str], utt2spk: Mapping[str, str],
                      where: Optional[Path] = None) -> Tuple[Dict[str, str], float, float]:
    """Decode ``wavs`` ({utt: wav.scp entry}); per-speaker decoders go speaker by speaker.

    Returns (hypotheses, audio seconds, decoding seconds); ``where`` (the wav.scp) locates errors.
    """
    if decoder.per_speaker:
        missing = [u for u in wavs if u not in utt2spk]
        if missing:
            raise InputError(f"no speaker for utterance '{missing[0]}' in the utt2spk", where)
        order = sorted(wavs, key=lambda u: (utt2spk[u], u))
    else:
        order = list(wavs)
    hyps: Dict[str, str] = {}
    audio_seconds, t0 = 0.0, time.perf_counter()
    for utt in order:
        if decoder.per_speaker:
            decoder.switch_to(utt2spk[utt])
        speech = load_audio(wavs[utt], utt, where)
        audio_seconds += len(speech) / 16000.0
        hyps[utt] = decoder(speech)
    return hyps, audio_seconds, time.perf_counter() - t0
