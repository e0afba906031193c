"""Fine-tune one base for many data dirs in one process: LoRA (pretraining, per speaker) or FFT.

Why one object: espnet2's import and the base's loading cost seconds, a speaker's adaptation a
few more; a :class:`Finetuner` loads the base once and restarts every run from the same point
(the pretrained or seeded random adapter, or the base weights for full fine-tuning), then writes
that run's output: ``adapter.pth`` (LoRA), ``model.pth`` (FFT on an FP32 base) or a packed
directory re-quantised with the base's config (FFT on a packed base, "FFT-NF4").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from espnet_p4q.lora.config import LoRAConfig
from espnet_p4q.train.loop import TrainConfig


class Finetuner:
    """A loaded base plus the trainable part that ``mode`` ("lora" or "full") gives it."""

    def __init__(self, base: str, mode: str, train_config: TrainConfig,
                 lora_config: Optional[LoRAConfig] = None, init_adapter: Optional[Path] = None,
                 device: str = "cpu"):
        from espnet_p4q.lora.inject import count_parameters, inject_lora
        from espnet_p4q.models.base import BaseSpec, fp32_model_from_packed, load_base

        if mode not in ("lora", "full"):
            raise ValueError(f"mode must be lora or full, got {mode!r}")
        if mode == "lora" and lora_config is None:
            raise ValueError("mode lora needs a LoRA config")
        self.mode, self.tcfg, self.lcfg, self.init_adapter = mode, train_config, lora_config, init_adapter
        self.device = device
        self.base_name = base
        self.spec = BaseSpec.parse(base)
        self.base = load_base(self.spec)
        self.model = self.base.model
        if mode == "lora":
            inject_lora(self.model, lora_config)
        else:
            if self.spec.kind == "nf4":
                self.model = fp32_model_from_packed(self.model, self.spec.config)
            for p in self.model.parameters():
                p.requires_grad_(True)
            self.start = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.to(device)
        counts = count_parameters(self.model)
        logging.info("base %s (%s), %d params; trainable %d", self.spec.model, self.spec.kind,
                     counts["base_params"], sum(p.numel() for p in self.model.parameters() if p.requires_grad))

    def _restart(self) -> None:
        """Every run starts from the same point: the pretrained/random adapter or the base weights."""
        from espnet_p4q.lora.adapter_io import load_adapter
        from espnet_p4q.lora.inject import reset_adapters

        with torch.no_grad():
            if self.mode == "full":
                self.model.load_state_dict(self.start, strict=True)
            elif self.init_adapter:
                load_adapter(self.model, self.init_adapter, self.base.fingerprint)
            else:  # LoRA from scratch: the same seeded random start for every run
                torch.manual_seed(self.tcfg.seed)
                reset_adapters(self.model)

    def run(self, data_dir: Path, name: str, out: Path, n_utts: Optional[int] = None,
            text_file: Optional[Path] = None, log_prefix: str = "") -> Dict[str, Any]:
        """Train on ``data_dir`` from the common start, write the output into ``out``; return the
        summary for train.json (which the caller writes last, as the run's completion mark)."""
        from espnet_p4q.lora.inject import count_parameters
        from espnet_p4q.train.data import UtteranceSet
        from espnet_p4q.train.loop import train

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").unlink(missing_ok=True)
        self._restart()
        data = UtteranceSet(data_dir, self.base.train_args, limit=n_utts, text_file=text_file)
        logging.info("%s%s: %d utterances (%.0f s of audio), output %s", log_prefix, name, len(data),
                     data.seconds(), out)
        t0 = time.perf_counter()
        summary = train(self.model, data, self.tcfg, log_prefix=f"{name}: ", device=self.device)
        self._save(out, {"data_dir": str(data_dir), "name": name})
        summary.update({
            "name": name, "data_dir": str(data_dir), "mode": self.mode, "base": self.base_name,
            "wall_seconds": time.perf_counter() - t0,
            "labels": str(text_file) if text_file else "reference", **count_parameters(self.model),
            "train_conf": self.tcfg.__dict__, "lora_conf": self.lcfg.to_dict() if self.lcfg else None,
            "init_adapter": str(self.init_adapter) if self.init_adapter else None,
        })
        if self.mode == "full":
            summary["adapter_params"] = summary["base_params"]  # every weight is speaker-specific
            summary["adapter_share"] = 1.0
        return summary

    def _save(self, out: Path, meta: Dict[str, str]) -> None:
        from espnet_p4q.lora.adapter_io import save_adapter
        from espnet_p4q.quant.apply import quantize_model
        from espnet_p4q.quant.serialize import atomic_torch_save, non_finite_names
        from espnet_p4q.models.asr_model import build_asr_model, save_packed_dir

        if self.mode == "lora":
            save_adapter(self.model, out / "adapter.pth", self.base.fingerprint, self.lcfg, meta)
            return
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        bad = non_finite_names(state)
        if bad:
            raise RuntimeError(f"{out}: refusing to save a model with NaN/inf in {', '.join(bad[:3])}")
        if self.spec.kind == "fp32":
            atomic_torch_save(state, out / "model.pth")
            return
        requant, _ = build_asr_model(self.spec.config)  # a fresh FP32 model to re-quantise
        requant.load_state_dict(state, strict=True)
        requant.eval()
        quantize_model(requant, self.base.quant_config)
        save_packed_dir(requant, self.base.quant_config, self.spec.config, out)
