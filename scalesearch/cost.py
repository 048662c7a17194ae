"""Measured cost of a built model: parameters, multiply-adds, activations.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), measured on
the model itself, never derived by hand. Activations are the output elements of
every conv layer per image (pycls's definition); they predict GPU time better than
FLOPs for depthwise-heavy nets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Cost", "count_cost", "count_params", "model_cost"]


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    activations: int
    resolution: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_cost(model: nn.Module, resolution: int, in_channels: int = 3) -> Cost:
    """Params, MACs and conv activations for one image of ``resolution``² pixels."""
    activations = 0

    def hook(_module, _inputs, output):
        nonlocal activations
        activations += output[0].numel()

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        x = torch.zeros(1, in_channels, resolution, resolution, device=device)
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Cost(count_params(model), counter.get_total_flops() // 2, activations, resolution)


def model_cost(resolution: int, in_channels: int = 3, **build_kwargs) -> Cost:
    """:func:`count_cost` of ``build_model(**build_kwargs)`` built on the meta device: the same
    counts (FlopCounterMode dispatches on shapes), no weights allocated — a B7-size member costs
    nothing to measure."""
    from .model import build_model

    with torch.device("meta"):
        model = build_model(in_channels=in_channels, **build_kwargs)
    return count_cost(model, resolution, in_channels)


def estimate_train_memory(cost: Cost, batch_size: int, bytes_per_activation: int = 2) -> int:
    """Rough upper estimate (bytes) of the GPU memory a training step needs: parameters,
    gradients and optimizer state in fp32 (4 copies), plus the conv outputs kept for backward
    (bf16) times 4 for the BN/activation/SE tensors saved beside each of them."""
    return 16 * cost.params + 4 * bytes_per_activation * cost.activations * batch_size
