"""The embedded synthetic dataset: generated from ``seed``, no files.

**The synthetic dataset** is the embedded default and is built so that all three scaling
dimensions matter. Class ``c`` is the *combination* of a coarse shape (``c % 5``: disc, square,
triangle, ring, cross) and a fine texture filling it (``c // 5``: vertical or horizontal stripes,
period 2.2–4.5 px at the native ``image_size``). The shapes are randomly placed, sized (radius
50–70 % of the half-width), tilted (±14°) and coloured, on a dark or bright gradient background
with pixel noise; the stripes alternate a dark and a bright colour, so a shape stays visible
when its stripes blur away. Shapes survive any downsampling, stripes do not: at resolution R
their period is ``p·R/image_size`` px and they fade below the Nyquist limit of 2 px, so the share
of images whose texture is visible grows with R up to the native size — resolution (γ) helps
(with the defaults, image_size 64 and base_resolution 32, across every γ of the search). A class
is only known from shape *and* texture together, which gives depth (α) and width (β) something
to do. ``num_classes`` ≤ 5 keeps only the shapes.

Returned as tensors; :mod:`scalesearch.train.data` registers it as ``synthetic`` and wraps it in a ``ProxyData``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["SHAPES", "TEXTURES", "synthetic_splits"]

SHAPES = ("disc", "square", "triangle", "ring", "cross")
TEXTURES = ("vertical", "horizontal")


def _synthetic_chunk(y: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    n = len(y)
    shape, texture = y % len(SHAPES), y // len(SHAPES)
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    lin = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx, cy = (u(n, 1, 1) - 0.5) * 0.4, (u(n, 1, 1) - 0.5) * 0.4
    r = 0.5 + 0.2 * u(n, 1, 1)
    th = (u(n, 1, 1) - 0.5) * 0.5  # +-14 deg
    dx, dy = xx - cx, yy - cy
    pu, pv = dx * torch.cos(th) + dy * torch.sin(th), -dx * torch.sin(th) + dy * torch.cos(th)
    d = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack([
        d < r,  # disc
        torch.maximum(pu.abs(), pv.abs()) < 0.8 * r,  # square
        (pv > -0.5 * r) & (pv - 1.732 * pu < r) & (pv + 1.732 * pu < r),  # triangle
        (d < r) & (d > 0.55 * r),  # ring
        ((pu.abs() < 0.3 * r) & (pv.abs() < r)) | ((pv.abs() < 0.3 * r) & (pu.abs() < r)),  # cross
    ], 1)
    mask = masks[torch.arange(n), shape].float().unsqueeze(1)
    # fine stripes: period 2.2-4.5 px at the native size, vertical or horizontal (+-12 deg jitter)
    period = 2.2 + 2.3 * u(n, 1, 1)
    ang = texture.view(n, 1, 1) * (math.pi / 2) + (u(n, 1, 1) - 0.5) * 0.4
    px, py = (xx + 1) * (size - 1) / 2, (yy + 1) * (size - 1) / 2
    phase = u(n, 1, 1) * 2 * math.pi
    wave = torch.sin(2 * math.pi * (px * torch.cos(ang) + py * torch.sin(ang)) / period + phase)
    stripes = (wave > 0).float().unsqueeze(1)
    # stripes of a dark and a bright colour (mean ~0.5) on a background that is either dark or bright,
    # so the shape stays visible when the stripes blur away
    c1, c2 = 0.3 * u(n, 3, 1, 1), 0.7 + 0.3 * u(n, 3, 1, 1)
    fg = c1 * stripes + c2 * (1 - stripes)
    dark = (u(n, 1, 1, 1) < 0.5).float()
    b1, b2 = 0.15 * u(n, 3, 1, 1), 0.15 * u(n, 3, 1, 1)
    ramp = ((xx * torch.cos(th) + yy * torch.sin(th)) * 0.5 + 0.5).unsqueeze(1)
    bg = b1 * ramp + b2 * (1 - ramp)
    bg = dark * bg + (1 - dark) * (1 - bg)
    img = bg * (1 - mask) + fg * mask + 0.06 * torch.randn(n, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _synthetic_split(n: int, num_classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    x = torch.cat([_synthetic_chunk(y[i : i + 512], size, g) for i in range(0, n, 512)])
    return x, y


def synthetic_splits(cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(train_x, train_y, val_x, val_y, class names) of the synthetic dataset a ``DatasetConfig`` describes."""
    k, size = int(cfg.num_classes), int(cfg.image_size)
    if not 2 <= k <= len(SHAPES) * len(TEXTURES):
        raise ValueError(f"dataset.num_classes={k} for synthetic; allowed: 2..{len(SHAPES) * len(TEXTURES)} "
                         f"({len(SHAPES)} shapes x {len(TEXTURES)} textures)")
    if size < 16:
        raise ValueError(f"dataset.image_size={size} is below 16; allowed: >= 16")
    if cfg.train_size < k or cfg.val_size < k:
        raise ValueError(f"dataset.train_size={cfg.train_size}, val_size={cfg.val_size}; "
                         f"allowed: >= num_classes ({k})")
    tx, ty = _synthetic_split(int(cfg.train_size), k, size, int(cfg.seed) * 2 + 1)
    vx, vy = _synthetic_split(int(cfg.val_size), k, size, int(cfg.seed) * 2 + 2)
    classes = [f"{SHAPES[c % len(SHAPES)]}-{TEXTURES[c // len(SHAPES)]}" for c in range(k)]
    return tx, ty, vx, vy, classes
