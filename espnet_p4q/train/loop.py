"""A small fine-tuning loop over espnet2's model loss, for adapters and per-speaker models.

Why not espnet2's Trainer: it checkpoints and averages the whole state dict (the packed uint8
base would be averaged into floats), and it runs one process per training job, paying espnet2's
import for every speaker. Here one process loops over speakers; the model, loss, tokeniser,
collate function and optimiser come from espnet2/torch unchanged.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Union

import torch

from espnet_p4q.config_check import load_checked
from espnet_p4q.train.data import UtteranceSet

PROGRESS_EVERY = 50  # steps between progress lines within long epochs (LoRA pretraining)


@dataclass
class TrainConfig:
    """Optimisation settings of one fine-tuning run (written in conf/, chosen on tuning speakers)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"'lr' must be a finite number > 0, got {self.lr}")
        for name in ("warmup_steps",):
            if getattr(self, name) < 0:
                raise ValueError(f"'{name}' must be >= 0, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"'{name}' must be a finite number >= 0, got {getattr(self, name)}")

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "TrainConfig":
        """Read a training YAML (conf/adapt_*.yaml, conf/lora_pretrain.yaml), checked."""
        return load_checked(cls, path, what="training option")


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss became NaN or infinite. Nothing of the run may be saved."""

    user_facing = True


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Keep BatchNorm running statistics fixed: they belong to the shared base, not the adapter."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def train(model: torch.nn.Module, data: UtteranceSet, cfg: TrainConfig, log_prefix: str = "",
          device: str = "cpu") -> Dict[str, float]:
    """Fine-tune the parameters of ``model`` that require grad on ``data``; returns a summary."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    def lr_at(step: int) -> float:  # linear warm-up, then linear decay to 10% at the end
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
        return 1.0 - 0.9 * frac

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.perf_counter()
    losses: List[float] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        freeze_batchnorm(model)
        epoch_losses = []
        for batch in data.batches(cfg.batch_size, rng):
            loss, stats, _ = model(**{k: v.to(device) for k, v in batch.items()})
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(
                    f"{log_prefix}training diverged: loss is {float(loss.detach())} at step {step + 1} "
                    f"(epoch {epoch}, lr {cfg.lr:g}); nothing was saved; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            epoch_losses.append(float(loss.detach()))
            if steps_per_epoch >= 2 * PROGRESS_EVERY and len(epoch_losses) % PROGRESS_EVERY == 0:
                logging.info("%sepoch %d/%d: step %d/%d, loss %.3f (%.1f s)", log_prefix, epoch,
                             cfg.epochs, len(epoch_losses), steps_per_epoch,
                             sum(epoch_losses[-PROGRESS_EVERY:]) / PROGRESS_EVERY, time.perf_counter() - t0)
        losses.append(sum(epoch_losses) / len(epoch_losses))
        logging.info("%sepoch %d/%d: loss %.3f (%d steps, %.1f s)", log_prefix, epoch, cfg.epochs,
                     losses[-1], step, time.perf_counter() - t0)
    model.eval()
    return {"epochs": cfg.epochs, "steps": step, "first_loss": losses[0], "last_loss": losses[-1],
            "seconds": time.perf_counter() - t0, "utterances": len(data), "audio_seconds": data.seconds()}
