"""The EfficientNet family as data.

A :class:`ModelSpec` is a frozen description of a network: stem, a tuple of
:class:`StageSpec` (the paper's Table 1, one row per stage), head. ``B0`` is the
baseline; every other member is ``scale(B0, depth=..., width=...)``; the published
B0…B7 multipliers are :data:`OFFICIAL`. The model builder (:mod:`scalesearch.scaling.model`)
turns any spec into an ``nn.Module``.

Rounding follows the TF reference implementation (and timm/torchvision):
channels to multiples of 8 without losing more than 10 % (:func:`round_channels`),
repeats by ceil per stage (:func:`round_repeats`, ``depth_rounding="stage"``). The
alternative ``depth_rounding="total"`` scales the network's total block count and
distributes it over the stages (timm's ``depth_trunc`` idea): at small multipliers it
keeps the depth actually built close to the requested one (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

__all__ = ["StageSpec", "ModelSpec", "B0", "OfficialVariant", "OFFICIAL", "official", "round_channels",
           "round_repeats", "scale_depths", "scale", "load_baseline", "DEPTH_ROUNDING"]

DEPTH_ROUNDING = ("stage", "total")


def round_channels(channels: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``channels`` to the nearest multiple of ``divisor``, never below ``divisor``
    and never more than ``1 - round_limit`` (10 %) below the requested value."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < round_limit * channels:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up (at least one block)."""
    return max(1, int(math.ceil(repeats * depth - 1e-9)))


def scale_depths(repeats: list[int], depth: float, rounding: str = "stage") -> list[int]:
    """Block counts of the stages scaled by ``depth``.

    ``stage``: every stage by ceil (the paper's TF code; the official B1…B7). ``total``: the total
    block count is rounded to the nearest integer (at least the number of stages) and distributed
    over the stages in proportion to their repeats, from the last stage back (largest remainders
    first), each stage keeping at least one block."""
    if rounding == "stage":
        return [round_repeats(r, depth) for r in repeats]
    if rounding != "total":
        raise ValueError(f"depth_rounding={rounding!r} is unknown; allowed: {', '.join(DEPTH_ROUNDING)}")
    total = max(len(repeats), int(round(sum(repeats) * depth)))
    shares = [r * total / sum(repeats) for r in repeats]
    out = [max(1, math.floor(s)) for s in shares]
    order = sorted(range(len(repeats)), key=lambda i: (-(shares[i] - math.floor(shares[i])), -i))
    k = 0
    while sum(out) < total:
        out[order[k % len(order)]] += 1
        k += 1
    while sum(out) > total:  # the 1-block floor overshot: take from the largest stages
        i = max(range(len(out)), key=lambda i: (out[i], i))
        out[i] -= 1
    return out


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

    def __post_init__(self):  # every builder (build_model, EfficientNet, to_torchvision, the dict form) checks here
        _checked(self, _STAGE_RULES, ())
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel={self.kernel} is even: padding kernel // 2 keeps a feature map's size only for "
                             "odd kernels; allowed: an odd kernel size (1, 3, 5, 7, ...)")


_STAGE_RULES = {"expand_ratio": (int, 1), "kernel": (int, 1), "stride": (int, 1), "out_channels": (int, 1),
                "repeats": (int, 1), "se_ratio": (float, 0)}
_MODEL_RULES = {"stem_channels": (int, 1), "head_channels": (int, 1), "dropout": (float, 0), "drop_path": (float, 0),
                "bn_eps": (float, 0), "bn_momentum": (float, 0)}
_BELOW_ONE = ("dropout", "drop_path", "bn_momentum")


def _number(where: str, key: str, value, kind: type, low: float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and kind is int:
        ok = float(value).is_integer()
    if not ok or value < low:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{where + ': ' if where else ''}{key}={value!r}; allowed: {what} >= {low}")
    return kind(value)


def _checked(obj, rules: dict, below_one: tuple) -> None:
    """A frozen spec's numbers checked against ``rules`` (one-line ValueError naming the field and what is allowed)
    and stored as their kind (16.0 channels become 16)."""
    for key, (kind, low) in rules.items():
        object.__setattr__(obj, key, _number("", key, getattr(obj, key), kind, low))
    for key in below_one:
        if getattr(obj, key) >= 1:
            raise ValueError(f"{key}={getattr(obj, key)!r}; allowed: a number in [0, 1)")


def _unwrap(d):
    """The spec inside a document that holds it under ``spec`` (specs/<name>.json, baseline.json), else ``d``."""
    return d["spec"] if isinstance(d, dict) and "spec" in d and "stages" not in d else d


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

    def __post_init__(self):  # every builder checks here: an empty network, or a stage that is not a StageSpec
        stages = tuple(self.stages) if isinstance(self.stages, (list, tuple)) else ()
        if not stages or not all(isinstance(st, StageSpec) for st in stages):
            raise ValueError(f"stages={self.stages!r}; allowed: a non-empty tuple of StageSpec")
        object.__setattr__(self, "stages", stages)
        _checked(self, _MODEL_RULES, _BELOW_ONE)

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stages"}
        d["stages"] = [vars(s).copy() for s in self.stages]
        return d

    @classmethod
    def of(cls, value, where: str = "spec") -> "ModelSpec":
        """``value`` as a ModelSpec: a ModelSpec as is; a mapping through :meth:`from_dict`: the spec's own
        (:meth:`to_dict`, a family member's ``spec``) or a document holding it under ``spec`` (``specs/<name>.json``,
        ``baseline.json``). Anything else: a TypeError naming what is allowed."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.from_dict(_unwrap(value), where)
        raise TypeError(f"{where}: a {type(value).__name__} is not a model spec; allowed: a ModelSpec, a mapping as "
                        "ModelSpec.to_dict() writes it, or a specs/<name>.json document (its 'spec')")

    @classmethod
    def from_dict(cls, d, where: str = "spec") -> "ModelSpec":
        """The inverse of :meth:`to_dict`, checked: a one-line ValueError naming ``where`` and the key."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: a model spec must be a mapping with 'stages', got {type(d).__name__}; "
                             "allowed: the 'spec' of a baseline.json or a family member")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(f.name for f in fields(cls))}")
        stages = d.get("stages")
        if not isinstance(stages, list) or not stages:
            raise ValueError(f"{where}: 'stages' is missing or empty; allowed: a non-empty list of stages "
                             f"({', '.join(_STAGE_RULES)})")
        out = []
        for i, s in enumerate(stages):
            at = f"{where} stage {i}"
            if not isinstance(s, dict):
                raise ValueError(f"{at}: {s!r} is not a mapping; allowed: keys {', '.join(_STAGE_RULES)}")
            if set(s) - set(_STAGE_RULES) or set(s) < set(_STAGE_RULES) - {"se_ratio"}:
                raise ValueError(f"{at}: keys {sorted(s)}; allowed: {', '.join(_STAGE_RULES)} (se_ratio optional)")
            try:
                out.append(StageSpec(**s))
            except ValueError as e:
                raise ValueError(f"{at}: {e}") from None
        try:
            return cls(stages=tuple(out), **{k: v for k, v in d.items() if k != "stages"})
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


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


@dataclass(frozen=True)
class OfficialVariant:
    width: float
    depth: float
    resolution: int
    dropout: float


# The published table (Tan & Le 2019; TF reference efficientnet_builder.py).
OFFICIAL: dict[str, OfficialVariant] = {
    "b0": OfficialVariant(1.0, 1.0, 224, 0.2),
    "b1": OfficialVariant(1.0, 1.1, 240, 0.2),
    "b2": OfficialVariant(1.1, 1.2, 260, 0.3),
    "b3": OfficialVariant(1.2, 1.4, 300, 0.3),
    "b4": OfficialVariant(1.4, 1.8, 380, 0.4),
    "b5": OfficialVariant(1.6, 2.2, 456, 0.4),
    "b6": OfficialVariant(1.8, 2.6, 528, 0.5),
    "b7": OfficialVariant(2.0, 3.1, 600, 0.5),
}


def official(name: str) -> OfficialVariant:
    key = str(name).lower().removeprefix("efficientnet_").removeprefix("efficientnet-")
    if key not in OFFICIAL:
        raise ValueError(f"unknown official variant {name!r}; allowed: {', '.join(OFFICIAL)}")
    return OFFICIAL[key]


def load_baseline(path: str | None) -> ModelSpec:
    """B0, or a baseline spec written by ``scalesearch-nas`` (``baseline.json``); one-line errors naming
    the file and the key."""
    if not path:
        return B0
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model.baseline={path!r} does not exist; allowed: a baseline.json written by scalesearch-nas")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"model.baseline={path!r}: {p} is not readable JSON ({str(e).splitlines()[0]}); allowed: a "
                         "baseline.json written by scalesearch-nas") from None
    return ModelSpec.from_dict(_unwrap(data), where=f"model.baseline={path!r}")


def scale(spec: ModelSpec, depth: float = 1.0, width: float = 1.0, depth_rounding: str = "stage") -> ModelSpec:
    """Scale every stage's repeats by ``depth`` (:func:`scale_depths`) and every channel count
    (stem, stages, head) by ``width``, with the TF rounding rules."""
    if not (depth > 0 and width > 0):
        raise ValueError(f"depth and width multipliers must be > 0, got depth={depth}, width={width}")
    if depth == 1 and width == 1:  # the spec as given (a baseline's widths need not be multiples of 8)
        return spec
    repeats = scale_depths([s.repeats for s in spec.stages], depth, depth_rounding)
    stages = tuple(replace(s, out_channels=round_channels(s.out_channels * width), repeats=r)
                   for s, r in zip(spec.stages, repeats))
    return replace(
        spec,
        stages=stages,
        stem_channels=round_channels(spec.stem_channels * width),
        head_channels=round_channels(spec.head_channels * width),
    )
