"""The EfficientNet family as data.

A :class:`ModelSpec` is a frozen description of a network: stem, a tuple of
:class:`StageSpec` (the paper's Table 1, one row per stage), head. ``B0`` is the
baseline; every other member is ``scale(B0, depth=..., width=...)``. The model
builder (:mod:`scalesearch.model`) turns any spec into an ``nn.Module``.

Rounding follows the TF reference implementation (and timm/torchvision):
channels to multiples of 8 without losing more than 10 % (:func:`round_channels`),
repeats by ceil (:func:`round_repeats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["StageSpec", "ModelSpec", "B0", "round_channels", "round_repeats", "scale"]


def round_channels(channels: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``channels`` to the nearest multiple of ``divisor``, never below ``divisor``
    and never more than ``1 - round_limit`` (10 %) below the requested value."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < round_limit * channels:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up (at least one block)."""
    return max(1, int(math.ceil(repeats * depth)))


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` MBConv blocks; the first has ``stride``, the others 1.

    ``se_ratio`` is relative to the block's *input* channels (as in the paper's code).
    """

    expand_ratio: int
    kernel: int
    stride: int
    out_channels: int
    repeats: int
    se_ratio: float = 0.25


@dataclass(frozen=True)
class ModelSpec:
    """A whole network. ``dropout`` is applied before the classifier; stochastic
    depth grows linearly from 0 to ``drop_path`` over all blocks."""

    stages: tuple[StageSpec, ...]
    stem_channels: int = 32
    head_channels: int = 1280
    dropout: float = 0.2
    drop_path: float = 0.2
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "stages"}
        d["stages"] = [vars(s).copy() for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        stages = tuple(StageSpec(**s) for s in d.pop("stages"))
        return cls(stages=stages, **d)


#                 expand kernel stride  out  repeats      (Tan & Le 2019, Table 1)
B0 = ModelSpec(
    stages=(
        StageSpec(1, 3, 1, 16, 1),
        StageSpec(6, 3, 2, 24, 2),
        StageSpec(6, 5, 2, 40, 2),
        StageSpec(6, 3, 2, 80, 3),
        StageSpec(6, 5, 1, 112, 3),
        StageSpec(6, 5, 2, 192, 4),
        StageSpec(6, 3, 1, 320, 1),
    ),
    stem_channels=32,
    head_channels=1280,
)


def scale(spec: ModelSpec, depth: float = 1.0, width: float = 1.0) -> ModelSpec:
    """Scale every stage's repeats by ``depth`` and every channel count (stem, stages,
    head) by ``width``, with the TF rounding rules."""
    if depth <= 0 or width <= 0:
        raise ValueError(f"depth and width multipliers must be > 0, got depth={depth}, width={width}")
    stages = tuple(
        replace(s, out_channels=round_channels(s.out_channels * width), repeats=round_repeats(s.repeats, depth))
        for s in spec.stages
    )
    return replace(
        spec,
        stages=stages,
        stem_channels=round_channels(spec.stem_channels * width),
        head_channels=round_channels(spec.head_channels * width),
    )
