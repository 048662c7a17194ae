"""Measured cost of a built module: parameters, multiply-adds, activations; and the
device-dependent costs users pay: inference latency and training-step time.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), measured on the
module itself, never derived by hand. Activations are the output elements of every conv
layer per image (pycls's definition; Dollár et al. 2021 show they predict GPU time better
than FLOPs for depthwise-heavy nets). Latency and training-step time are timed on a device
(warm-up, then the median of repeats: ``torch.utils.benchmark``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Cost", "COST_KINDS", "count_cost", "count_module", "count_params", "measure_latency",
           "measure_train_step", "estimate_train_memory", "PROCESS_BASE_BYTES"]

# search.cost / the measured-cost constraint: what "equal cost" means
COST_KINDS = {
    "macs": "multiply-adds per image (FlopCounterMode / 2)",
    "activations": "conv output elements per image",
    "latency": "inference ms per batch, measured on the trial's device",
    "train_step": "training-step ms per batch (forward, backward, optimizer), measured on the trial's device",
}


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
def count_module(module: nn.Module, x: torch.Tensor) -> tuple[int, int, int, torch.Tensor]:
    """(params, MACs, conv activations per image, output) of one forward of ``module`` on ``x``
    (batch 1), in eval mode; works on the meta device (shapes only)."""
    activations = 0

    def hook(_module, _inputs, output):
        nonlocal activations
        activations += output[0].numel()

    was_training = module.training
    module.eval()
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with FlopCounterMode(display=False) as counter:
            out = module(x)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return count_params(module), counter.get_total_flops() // 2, activations, out


def count_cost(model: nn.Module, resolution: int, in_channels: int = 3) -> Cost:
    """Params, MACs and conv activations of ``model`` for one image of ``resolution``² pixels."""
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, resolution, resolution, device=device)
    params, macs, acts, _ = count_module(model, x)
    return Cost(params, macs, acts, resolution)


def _device_batch(model: nn.Module, resolution: int, in_channels: int, batch: int, device, channels_last: bool):
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = model.to(device, memory_format=fmt)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, in_channels, resolution, resolution, device=device,
                    generator=g).contiguous(memory_format=fmt)
    return model, x, device


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else contextlib.nullcontext()


def _median_ms(fn, threads: int | None, min_run_time: float, warmup: int) -> float:
    from torch.utils.benchmark import Timer

    for _ in range(warmup):
        fn()
    timer = Timer("fn()", globals={"fn": fn}, num_threads=threads or torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def measure_latency(model: nn.Module, resolution: int, *, in_channels: int = 3, batch: int = 8,
                    device: str | torch.device = "cpu", channels_last: bool = True, amp: bool = True,
                    min_run_time: float = 0.2, threads: int | None = None, warmup: int = 3) -> float:
    """Median inference latency (ms per batch of ``batch`` images at ``resolution``²) in eval mode on
    ``device``: ``warmup`` forwards, then ``torch.utils.benchmark.Timer.blocked_autorange``
    (CUDA-synchronised) for at least ``min_run_time`` seconds."""
    model, x, device = _device_batch(model, resolution, in_channels, batch, device, channels_last)
    was_training = model.training
    model.eval()

    @torch.no_grad()
    def forward():
        with _autocast(device, amp):
            return model(x)

    try:
        return _median_ms(forward, threads, min_run_time, warmup)
    finally:
        model.train(was_training)


def measure_train_step(model: nn.Module, resolution: int, num_classes: int, *, in_channels: int = 3,
                       batch: int = 32, device: str | torch.device = "cpu", channels_last: bool = True,
                       amp: bool = True, min_run_time: float = 0.2, threads: int | None = None,
                       warmup: int = 1) -> float:
    """Median time (ms) of one training step on a batch of ``batch`` images at ``resolution``²:
    forward, cross-entropy, backward and a fused AdamW step, in train mode on ``device``: ``warmup`` steps, then
    ``Timer.blocked_autorange``, whose block-size estimate is a second untimed step (B0 at 58 px, batch 40, one CPU
    thread: 462–471 ms with one warm-up step, 461–467 ms with two, 470–500 ms with none). The model's weights change
    (measure a throw-away copy)."""
    model, x, device = _device_batch(model, resolution, in_channels, batch, device, channels_last)
    y = torch.arange(batch, device=device) % num_classes
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type in ("cpu", "cuda"))
    model.train()

    def step():
        with _autocast(device, amp):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _median_ms(step, threads, min_run_time, warmup)


# a CPU training process before its network: Python, torch, the package (measured: 0.67 GiB)
PROCESS_BASE_BYTES = int(0.7 * 2**30)


def estimate_train_memory(cost: Cost, batch_size: int, bytes_per_activation: int = 2) -> int:
    """Rough upper estimate (bytes) of the memory a training step needs: parameters, gradients and optimizer
    state in fp32 (4 copies), plus the conv outputs kept for backward times 4 for the BN/activation/SE tensors
    saved beside each of them (bf16 under CUDA autocast: 2 bytes; fp32 on CPU: 4). On CPU, B0 at 64/128/224 px,
    batch 64/64/32, grew a process by 0.58/2.04/2.86 GiB against estimates of 0.59/2.17/3.28 GiB
    (docs/RELIABILITY.md)."""
    return 16 * cost.params + 4 * bytes_per_activation * cost.activations * batch_size
