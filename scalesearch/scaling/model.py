"""EfficientNet as an ``nn.Module`` built from a :class:`~scalesearch.scaling.spec.ModelSpec`, and the
cost of any spec without building it.

State-dict names read like the paper: ``stem.conv``, ``stages.3.1.dwise.conv``,
``stages.3.1.se.fc1``, ``head.conv``, ``classifier``.

:func:`spec_cost` measures a spec's params, MACs and activations with ``FlopCounterMode`` on the
meta device, one *distinct* part at a time: the stem, the first block of each stage, one of its
repeated blocks (all repeats of a stage have the same shapes), the head and the classifier, each
multiplied by its count. Each part's counts are affine in its input's and output's pixel counts
(``c0 + c1·h·w + c2·oh·ow``: convolutions, linear layers on pooled features), so a part is traced at three
probe sizes once and every other resolution follows from that law: a 128×-deep member, or a bisection over
resolutions, costs no more to measure than B0 at one size. The totals equal those of the whole model at
every size tested.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from functools import partial

import torch
from torch import nn

from .cost import Cost, count_module
from .spec import B0, ModelSpec, official, round_channels, scale

__all__ = ["ConvBNAct", "MBConv", "EfficientNet", "build_spec", "build_model", "spec_cost", "model_cost",
           "to_torchvision", "timm_arch_def"]


class ConvBNAct(nn.Sequential):
    """Conv (no bias) → BatchNorm → optional SiLU, with named children."""

    def __init__(self, cin, cout, kernel=1, stride=1, groups=1, act=True, bn=nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = bn(cout)
        if act:
            self.act = nn.SiLU(inplace=True)


class SqueezeExcite(nn.Module):
    """Squeeze-excite as ``torchvision.ops.SqueezeExcitation`` computes it, with its module names (so its state dict
    is torchvision's), written here because importing torchvision costs a trial's process ~2.2 s (its ops load
    ``torch._dynamo``) and a trial needs nothing else from it."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class DropPath(nn.Module):
    """Stochastic depth per sample (``torchvision.ops.StochasticDepth(p, "row")``: the same draws from the same
    generator): in training, each sample's branch is zeroed with probability ``p``, the kept ones scaled by 1/(1−p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * (noise.div_(keep) if keep > 0.0 else noise)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Inverted residual: expand 1×1 → depthwise k×k → squeeze-excite → project 1×1,
    with a residual (and stochastic depth) when shape is preserved."""

    def __init__(self, cin, cout, expand_ratio, kernel, stride, se_ratio, drop_path=0.0, bn=nn.BatchNorm2d):
        super().__init__()
        mid = round_channels(cin * expand_ratio) if expand_ratio != 1 else cin
        self.expand = ConvBNAct(cin, mid, 1, bn=bn) if mid != cin else nn.Identity()
        self.dwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, bn=bn)
        se_channels = max(1, int(cin * se_ratio))
        self.se = SqueezeExcite(mid, se_channels) if se_ratio > 0 else nn.Identity()
        self.project = ConvBNAct(mid, cout, 1, act=False, bn=bn)
        self.residual = stride == 1 and cin == cout
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dwise(self.expand(x))))
        return x + self.drop_path(out) if self.residual else out


def _at_least_one(where: str, **counts) -> None:
    """Counts a network is built with (classes, input channels): integers ≥ 1, else one line naming the value."""
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: {key}={value!r}; allowed: an integer >= 1")


class EfficientNet(nn.Module):
    def __init__(self, spec: ModelSpec | dict, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.spec = spec = ModelSpec.of(spec, "EfficientNet(spec)")
        _at_least_one("EfficientNet", num_classes=num_classes, in_channels=in_channels)
        bn = partial(nn.BatchNorm2d, eps=spec.bn_eps, momentum=spec.bn_momentum)
        self.stem = ConvBNAct(in_channels, spec.stem_channels, 3, 2, bn=bn)
        stages, cin, index, total = [], spec.stem_channels, 0, spec.num_blocks
        for st in spec.stages:
            blocks = []
            for j in range(st.repeats):
                blocks.append(
                    MBConv(cin, st.out_channels, st.expand_ratio, st.kernel, st.stride if j == 0 else 1,
                           st.se_ratio, spec.drop_path * index / total, bn)
                )
                cin, index = st.out_channels, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ConvBNAct(cin, spec.head_channels, 1, bn=bn)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(spec.head_channels, num_classes)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)  # small logits at init: loss starts at ln(classes)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, MBConv) and m.residual:
                nn.init.zeros_(m.project.bn.weight)  # each residual block starts as the identity

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def build_spec(name: str | None = None, *, width: float = 1.0, depth: float = 1.0, dropout: float | None = None,
               spec: ModelSpec | dict | None = None, depth_rounding: str = "stage") -> ModelSpec:
    """The spec of an official variant by name (``"b0"``…``"b7"``: published width/depth/dropout), or
    of the baseline ``spec`` (default B0; a ModelSpec, or a mapping: :meth:`ModelSpec.of`) scaled by ``depth``
    and ``width``."""
    base = B0 if spec is None else ModelSpec.of(spec, "build_model(spec=...)")
    if name is not None:
        variant = official(name)
        width, depth = variant.width, variant.depth
        dropout = variant.dropout if dropout is None else dropout
    s = scale(base, depth=depth, width=width, depth_rounding=depth_rounding)
    return s if dropout is None else replace(s, dropout=dropout)


def build_model(name: str | None = None, *, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000,
                dropout: float | None = None, spec: ModelSpec | dict | None = None, in_channels: int = 3,
                depth_rounding: str = "stage") -> EfficientNet:
    """Build an official variant by name (``"b0"``…``"b7"``) or any scaled spec.

    ``build_model("b3")`` uses the published width/depth/dropout; otherwise the baseline ``spec``
    (default B0) is scaled by ``depth`` and ``width``; ``build_model(spec=member_spec)`` builds a
    family member exactly as emitted (``spec``: a ModelSpec, its dict, or a ``specs/<name>.json`` document)."""
    s = build_spec(name, width=width, depth=depth, dropout=dropout, spec=spec, depth_rounding=depth_rounding)
    return EfficientNet(s, num_classes=num_classes, in_channels=in_channels)


# ---------------------------------------------------------------- cost of a spec
def _part_module(kind: str, args: tuple) -> tuple[nn.Module, int]:
    """One part of the network on the meta device (shapes only) and its input channels."""
    with torch.device("meta"):
        if kind == "stem":
            cin, cout = args
            return ConvBNAct(cin, cout, 3, 2), cin
        if kind == "block":
            cin, cout, expand, kernel, stride, se = args
            return MBConv(cin, cout, expand, kernel, stride, se), cin
        if kind == "head":
            cin, cout = args
            return ConvBNAct(cin, cout, 1), cin
        cin, classes = args  # classifier: pooled features → logits
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)), cin


def _out_size(module: nn.Module, h: int, w: int) -> tuple[int, int]:
    """The spatial size after ``module``'s convolutions, by their own arithmetic (a part without any: 1×1)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return 1, 1
    for c in convs:  # the squeeze-excite's 1×1 convolutions (stride 1, no padding) leave the size as it is
        h = (h + 2 * c.padding[0] - c.dilation[0] * (c.kernel_size[0] - 1) - 1) // c.stride[0] + 1
        w = (w + 2 * c.padding[1] - c.dilation[1] * (c.kernel_size[1] - 1) - 1) // c.stride[1] + 1
    return h, w


def _measure(module: nn.Module, cin: int, h: int, w: int) -> tuple[int, int, int]:
    with torch.device("meta"):
        x = torch.zeros(1, cin, h, w)
    params, macs, acts, _ = count_module(module, x)
    return params, macs, acts


_PROBES = ((8, 8), (9, 9), (16, 16))  # input sizes whose (1, h·w, oh·ow) rows span the law at stride 1 and 2


@functools.lru_cache(maxsize=1024)
def _part_law(kind: str, args: tuple) -> tuple[nn.Module, object]:
    """A part's params, MACs and conv activations as ``c0 + c1·h·w + c2·oh·ow`` of its input (h, w) and output
    (oh, ow) sizes — exact for convolutions, linear layers on pooled features and their outputs — solved from
    FlopCounterMode's counts at three probe sizes. A part is thus traced three times, not once per resolution."""
    import numpy as np

    module, cin = _part_module(kind, args)
    rows, counts = [], []
    for h, w in _PROBES:
        oh, ow = _out_size(module, h, w)
        rows.append([1.0, h * w, oh * ow])
        counts.append(_measure(module, cin, h, w))
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(counts, dtype=float), rcond=None)
    return module, coef


def _part(kind: str, args: tuple, h: int, w: int) -> tuple[int, int, int, int, int]:
    """(params, MACs, activations, out_h, out_w) of one part at input size (h, w), from its law."""
    module, coef = _part_law(kind, args)
    oh, ow = _out_size(module, h, w)
    p, m, a = (round(v) for v in (coef[0] + coef[1] * h * w + coef[2] * oh * ow))
    return p, m, a, oh, ow


def spec_cost(spec: ModelSpec, resolution: int, num_classes: int = 1000, in_channels: int = 3) -> Cost:
    """Params, MACs and conv activations of ``EfficientNet(spec)`` at ``resolution``², measured part by
    part (see the module docstring): the same numbers as :func:`~scalesearch.scaling.cost.count_cost` on the
    built model, in milliseconds for any depth."""
    total = [0, 0, 0]

    def add(kind, args, h, w, times=1):
        p, m, a, oh, ow = _part(kind, args, h, w)
        total[0] += times * p
        total[1] += times * m
        total[2] += times * a
        return oh, ow

    h, w = add("stem", (in_channels, spec.stem_channels), resolution, resolution)
    cin = spec.stem_channels
    for st in spec.stages:
        args = (st.expand_ratio, st.kernel)
        oh, ow = add("block", (cin, st.out_channels, *args, st.stride, st.se_ratio), h, w)
        if st.repeats > 1:
            add("block", (st.out_channels, st.out_channels, *args, 1, st.se_ratio), oh, ow, st.repeats - 1)
        h, w, cin = oh, ow, st.out_channels
    h, w = add("head", (cin, spec.head_channels), h, w)
    add("classifier", (spec.head_channels, num_classes), h, w)
    return Cost(total[0], total[1], total[2], int(resolution))


def model_cost(resolution: int, in_channels: int = 3, *, num_classes: int = 1000, **build_kwargs) -> Cost:
    """:func:`spec_cost` of ``build_spec(**build_kwargs)`` (name, width, depth, spec, depth_rounding)."""
    build_kwargs.pop("dropout", None)
    return spec_cost(build_spec(**build_kwargs), resolution, num_classes, in_channels)


# ---------------------------------------------------------------- using a spec elsewhere
def to_torchvision(spec: ModelSpec | dict, num_classes: int = 1000) -> nn.Module:
    """The same network as torchvision's ``EfficientNet`` (its module names, no scalesearch needed to load
    the weights later): stages as ``MBConvConfig`` rows with multipliers 1, explicit head width."""
    from torchvision.models.efficientnet import EfficientNet as TVEfficientNet
    from torchvision.models.efficientnet import MBConvConfig

    spec = ModelSpec.of(spec, "to_torchvision(spec)")
    _at_least_one("to_torchvision", num_classes=num_classes)
    if any(st.se_ratio != 0.25 for st in spec.stages):
        raise ValueError("to_torchvision: torchvision's MBConv has a fixed squeeze-excite ratio of 0.25; this spec has "
                         f"{sorted({st.se_ratio for st in spec.stages})}; allowed: specs with se_ratio 0.25 "
                         "(use build_model)")
    rows, cin = [], spec.stem_channels
    for st in spec.stages:
        rows.append(MBConvConfig(st.expand_ratio, st.kernel, st.stride, cin, st.out_channels, st.repeats))
        cin = st.out_channels
    return TVEfficientNet(rows, dropout=spec.dropout, stochastic_depth_prob=spec.drop_path, num_classes=num_classes,
                          last_channel=spec.head_channels)


def timm_arch_def(spec: ModelSpec) -> list[list[str]]:
    """The spec as timm's ``arch_def`` block strings (``_efficientnet_builder.decode_arch_def``), one list per
    stage: ``ds`` (depthwise-separable) for expansion 1, ``ir`` (inverted residual) otherwise."""
    out = []
    for st in spec.stages:
        kind = "ds" if st.expand_ratio == 1 else "ir"
        se = f"_se{st.se_ratio:g}" if st.se_ratio else ""
        exp = "" if kind == "ds" else f"_e{st.expand_ratio}"
        out.append([f"{kind}_r{st.repeats}_k{st.kernel}_s{st.stride}{exp}_c{st.out_channels}{se}"])
    return out
