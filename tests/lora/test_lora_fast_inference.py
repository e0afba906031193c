"""The LoRA branch's inference shortcut against its training-mode sum, and gradients in training."""

import pytest
import torch

from espnet_p4q.lora.layers import LoRAWrapper
from espnet_p4q.quant.config import QuantConfig
from espnet_p4q.quant.layers import linear_to_4bit

NF4 = QuantConfig.from_yaml("conf/quant/nf4.yaml")


def _wrapped(path):
    torch.manual_seed(0)
    base = linear_to_4bit(torch.nn.Linear(128, 96), NF4)
    base.set_cpu_path(path)
    lora = LoRAWrapper(base, r=4, alpha=8, dropout=0.0)
    with torch.no_grad():
        lora.lora_B.copy_(torch.randn_like(lora.lora_B) * 0.1)
    return lora


@pytest.mark.parametrize("path", ["dequant", "reference"])
def test_inference_shortcut_equals_sum(path):
    lora = _wrapped(path).eval()
    x = torch.randn(2, 5, 128)
    with torch.no_grad():
        expected = lora.base(x) + lora.lora_delta(x)
    with torch.inference_mode():
        y = lora(x)
    assert y.shape == (2, 5, 96)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y, expected - lora.lora_delta(x).detach(), atol=1e-4)  # the branch counts


def test_gradients_reach_lora_in_training():
    lora = _wrapped("dequant").train()
    lora.base.requires_grad_(False)
    x = torch.randn(4, 128)
    lora(x).pow(2).sum().backward()
    assert lora.lora_A.grad is not None and lora.lora_A.grad.abs().sum() > 0
    assert lora.lora_B.grad is not None and lora.lora_B.grad.abs().sum() > 0


def test_gradients_reach_lora_in_eval_mode_with_grad():
    """Evaluation mode with autograd on (e.g. a frozen-BN adaptation step) keeps the full graph."""
    lora = _wrapped("dequant").eval()
    x = torch.randn(4, 128, requires_grad=True)
    lora(x).sum().backward()
    assert lora.lora_B.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
