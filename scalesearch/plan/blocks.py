"""The baseline search's space (``scalesearch-nas``, MnasNet-style): per stage kernel, expansion, repeats, SE ratio and
output channels (``search_spaces/blocks.yaml``; stage count and strides fixed). Every point is a
:class:`~scalesearch.scaling.spec.ModelSpec`; B0 is one point; :meth:`BlockSpace.define_by_run` is the Optuna
define-by-run space. A malformed space file is one line naming the key and what is allowed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..paths import SPACES_DIR
from ..scaling.spec import ModelSpec, StageSpec, round_channels

__all__ = ["CHOICE_KEYS", "PARAMS", "StageChoices", "BlockSpace", "arch_string", "load_block_space"]

CHOICE_KEYS = ("kernel", "expand_ratio", "se_ratio", "repeats_delta", "channel_mult")


STAGE_KEYS = {"stride", "out_channels", "repeats", *CHOICE_KEYS}


TOP_KEYS = {"description", "stem_channels", "head_channels", "min_repeats", "choices", "stages"}


PARAMS = ("kernel", "expand_ratio", "se_ratio", "repeats", "out_channels")  # per stage, in the spec


@dataclass(frozen=True)
class StageChoices:
    """The values one stage may take (its stride is fixed)."""

    stride: int
    kernel: tuple[int, ...]
    expand_ratio: tuple[int, ...]
    se_ratio: tuple[float, ...]
    repeats: tuple[int, ...]
    out_channels: tuple[int, ...]


@dataclass(frozen=True)
class BlockSpace:
    """A block-level space: one :class:`StageChoices` per stage, fixed stem and head."""

    stages: tuple[StageChoices, ...]
    stem_channels: int = 32
    head_channels: int = 1280
    name: str = "blocks"

    @property
    def size(self) -> int:
        """Number of distinct architectures in the space."""
        return math.prod(len(getattr(s, k)) for s in self.stages for k in PARAMS)

    def define_by_run(self, trial) -> dict:
        """Optuna define-by-run: one categorical per stage and choice (``s<i>_<param>``)."""
        return {f"s{i}_{k}": trial.suggest_categorical(f"s{i}_{k}", list(getattr(s, k)))
                for i, s in enumerate(self.stages) for k in PARAMS}

    def spec(self, params: dict) -> ModelSpec:
        """The :class:`ModelSpec` of a point (the dict :meth:`define_by_run` returns)."""
        return ModelSpec(
            stages=tuple(StageSpec(expand_ratio=int(params[f"s{i}_expand_ratio"]), kernel=int(params[f"s{i}_kernel"]),
                                   stride=s.stride, out_channels=int(params[f"s{i}_out_channels"]),
                                   repeats=int(params[f"s{i}_repeats"]), se_ratio=float(params[f"s{i}_se_ratio"]))
                         for i, s in enumerate(self.stages)),
            stem_channels=self.stem_channels, head_channels=self.head_channels)

    def params_of(self, spec: ModelSpec) -> dict:
        """The point of ``spec`` (inverse of :meth:`spec`); ValueError if it is not in the space."""
        if len(spec.stages) != len(self.stages):
            raise ValueError(f"spec has {len(spec.stages)} stages; space {self.name} has {len(self.stages)}")
        if (spec.stem_channels, spec.head_channels) != (self.stem_channels, self.head_channels):
            raise ValueError(f"spec stem/head channels {spec.stem_channels}/{spec.head_channels}; space {self.name} "
                             f"fixes {self.stem_channels}/{self.head_channels}")
        params = {}
        for i, (st, ch) in enumerate(zip(spec.stages, self.stages)):
            if st.stride != ch.stride:
                raise ValueError(f"stage {i} stride {st.stride}; space {self.name} fixes {ch.stride}")
            for k in PARAMS:
                if getattr(st, k) not in getattr(ch, k):
                    raise ValueError(f"stage {i} {k}={getattr(st, k)} is not in space {self.name}; "
                                     f"allowed: {list(getattr(ch, k))}")
                params[f"s{i}_{k}"] = getattr(st, k)
        return params

    def contains(self, spec: ModelSpec) -> bool:
        """Whether ``spec`` is a point of the space (dropout, BN settings and all)."""
        try:
            return spec == self.spec(self.params_of(spec))
        except ValueError:
            return False


def arch_string(spec: ModelSpec) -> str:
    """One line per network: ``<repeats>xMB<expand>-k<kernel>-c<channels>[-se<ratio>]`` per stage."""
    return " ".join(f"{s.repeats}xMB{s.expand_ratio}-k{s.kernel}-c{s.out_channels}"
                    + (f"-se{s.se_ratio:g}" if s.se_ratio else "") for s in spec.stages)


def _resolve_space_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if not p.suffix:
        p = SPACES_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ValueError(f"nas.space={name_or_path!r} not found; allowed: blocks or a path to a .yaml file")
    return p


def _choice_list(where: str, key: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"space {where}: {key}=[] admits no value (contradictory); allowed: a non-empty list")
    return values


def _check_values(where: str, key: str, values: list, ok, allowed: str) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
            raise ValueError(f"space {where}: {key}={v!r} is outside what the builder accepts; allowed: {allowed}")


_RULES = {  # choice key → (test, allowed)
    "kernel": (lambda v: isinstance(v, int) and v >= 1 and v % 2 == 1,
               "odd integers >= 1 (padding k//2 keeps the size)"),
    "expand_ratio": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
    "se_ratio": (lambda v: 0 <= v <= 1, "numbers in [0, 1] (0: no squeeze-excite)"),
    "repeats_delta": (lambda v: isinstance(v, int), "integers (added to the stage's repeats)"),
    "channel_mult": (lambda v: v > 0 and math.isfinite(v), "numbers > 0"),
}


def _read_space(p: Path) -> dict:
    """The mapping of a space file: one-line ValueErrors for invalid YAML, an empty file or unknown keys."""
    where = p.name
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"space {where} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"space {where} is empty or not a mapping; allowed: keys {sorted(TOP_KEYS)}")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ValueError(f"space {where}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    return raw


def _fixed_settings(where: str, raw: dict) -> dict:
    """The space's stem_channels, head_channels and min_repeats (defaults 32, 1280, 1), checked."""
    fixed = {}
    for key, default, ok, allowed in (
            ("stem_channels", 32, lambda v: v >= 8 and v % 8 == 0,
             "a multiple of 8 (the builder's channel rounding)"),
            ("head_channels", 1280, lambda v: v >= 8 and v % 8 == 0,
             "a multiple of 8 (the builder's channel rounding)"),
            ("min_repeats", 1, lambda v: v >= 1, "an integer >= 1")):
        v = fixed[key] = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not ok(v):
            raise ValueError(f"space {where}: {key}={v!r}; allowed: {allowed}")
    return fixed


def _stage_choices(at: str, st: dict, choices: dict, min_repeats: int) -> StageChoices:
    """One stage of a space file (``at``: where, for the errors): its fixed keys checked, its choices the stage's
    own or else the shared ``choices``."""
    unknown = set(st) - STAGE_KEYS
    if unknown:
        raise ValueError(f"space {at}: unknown keys {sorted(unknown)}; allowed: {sorted(STAGE_KEYS)}")
    for key, ok, allowed in (("stride", lambda v: v in (1, 2), "1 or 2 (strides are fixed per stage)"),
                             ("out_channels", lambda v: v >= 1, "an integer >= 1"),
                             ("repeats", lambda v: v >= 1, "an integer >= 1")):
        v = st.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not ok(v):
            raise ValueError(f"space {at}: {key}={v!r}; allowed: {allowed}")
    vals = {}
    for key in CHOICE_KEYS:
        if key not in st and key not in choices:
            raise ValueError(f"space {at}: no {key} choices; allowed: a list under choices: or in the stage")
        vals[key] = _choice_list(at, key, st.get(key, choices.get(key)))
        _check_values(at, key, vals[key], *_RULES[key])
    repeats = sorted({st["repeats"] + d for d in vals["repeats_delta"] if st["repeats"] + d >= min_repeats})
    if not repeats:
        raise ValueError(f"space {at}: repeats {st['repeats']} + repeats_delta {vals['repeats_delta']} leaves no "
                         f"block count >= min_repeats {min_repeats} (contradictory); "
                         "allowed: deltas that keep one")
    return StageChoices(
        stride=st["stride"],
        kernel=tuple(sorted(set(vals["kernel"]))),
        expand_ratio=tuple(sorted(set(vals["expand_ratio"]))),
        se_ratio=tuple(sorted({float(v) for v in vals["se_ratio"]})),
        repeats=tuple(repeats),
        out_channels=tuple(sorted({round_channels(st["out_channels"] * m) for m in vals["channel_mult"]})),
    )


def load_block_space(name_or_path: str = "blocks") -> BlockSpace:
    """Load and validate ``search_spaces/<name>.yaml`` (or a path): one-line ValueErrors for an empty
    or contradictory file, unknown keys, or values the model builder does not accept."""
    p = _resolve_space_path(name_or_path)
    where = p.name
    raw = _read_space(p)
    choices = raw.get("choices") or {}
    if not isinstance(choices, dict) or set(choices) - set(CHOICE_KEYS):
        bad = sorted(set(choices) - set(CHOICE_KEYS)) if isinstance(choices, dict) else choices
        raise ValueError(f"space {where}: unknown choices {bad}; allowed: {list(CHOICE_KEYS)}")
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise ValueError(f"space {where}: stages must be a non-empty list of mappings "
                         "({stride, out_channels, repeats[, choice overrides]})")
    fixed = _fixed_settings(where, raw)
    out = [_stage_choices(f"{where} stage {i}", st, choices, fixed["min_repeats"]) for i, st in enumerate(stages)]
    return BlockSpace(stages=tuple(out), stem_channels=fixed["stem_channels"], head_channels=fixed["head_channels"],
                      name=p.stem)
