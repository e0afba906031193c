"""A LoRA branch beside any linear-like base layer, frozen or packed 4-bit.

loralib's own ``lora.Linear`` *is* an ``nn.Linear`` and multiplies by its weight directly, which
meets a packed uint8 tensor when the base is a bitsandbytes ``Linear4bit``. So the base is kept as
a child module and only the low-rank branch lives here; the class still derives from loralib's
``LoRALayer`` and names its tensors ``lora_A``/``lora_B``, so loralib's
``mark_only_lora_as_trainable`` and ``lora_state_dict`` work unchanged.
"""

from __future__ import annotations

import math

import loralib
import torch


def _features(base: torch.nn.Module):
    """(in, out, channels_first) of a Linear-like or point-wise Conv1d-like base."""
    if hasattr(base, "in_features"):
        return base.in_features, base.out_features, False
    ks = getattr(base, "kernel_size", None)
    if ks is not None and tuple(ks) == (1,) and getattr(base, "groups", 1) == 1:
        return base.in_channels, base.out_channels, True
    raise TypeError(f"LoRA needs a Linear or a point-wise Conv1d, got {type(base).__name__}")


class LoRAWrapper(torch.nn.Module, loralib.LoRALayer):
    """y = base(x) + (dropout(x) A^T B^T) * alpha / r, with B zero-initialised (y = base(x) at start)."""

    def __init__(self, base: torch.nn.Module, r: int, alpha: float, dropout: float):
        torch.nn.Module.__init__(self)
        loralib.LoRALayer.__init__(self, r=r, lora_alpha=alpha, lora_dropout=dropout, merge_weights=False)
        self.base = base
        self.in_features, self.out_features, self.channels_first = _features(base)
        dev = next((p.device for p in base.parameters()), torch.device("cpu"))
        self.lora_A = torch.nn.Parameter(torch.empty(r, self.in_features, device=dev))
        self.lora_B = torch.nn.Parameter(torch.zeros(self.out_features, r, device=dev))
        self.scaling = self.lora_alpha / self.r
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """Random A (Kaiming-uniform, as loralib), zero B: a fresh adapter changes nothing."""
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        torch.nn.init.zeros_(self.lora_B)

    @property
    def bias(self):
        # loralib's bias="lora_only" looks for the adapted layer's bias on the LoRA layer itself
        return getattr(self.base, "bias", None)

    def lora_delta(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:  # point-wise conv: (B, C, T) -> (B, T, C) and back
            x = x.transpose(1, 2)
        a = self.lora_A.to(x.dtype)
        b = self.lora_B.to(x.dtype)
        y = (self.lora_dropout(x) @ a.t() @ b.t()) * self.scaling
        return y.transpose(1, 2) if self.channels_first else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or self.channels_first or x.dtype != self.lora_A.dtype:
            return self.base(x) + self.lora_delta(x)
        return self.inference_forward(x)

    def inference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """base(x) + x A^T B^T * scaling with the scaling and the sum folded into one addmm.

        Why: at inference the branch is two tiny matmuls whose cost is per-call overhead; this
        does it in two calls instead of four (matmul, matmul, scale, add). Same sum as ``forward``
        up to float rounding order.
        """
        y = self.base(x)
        h = torch.nn.functional.linear(x, self.lora_A)
        out = torch.addmm(y.reshape(-1, self.out_features), h.reshape(-1, self.r), self.lora_B.t(),
                          alpha=self.scaling)
        return out.view(y.shape)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.lora_alpha}"
