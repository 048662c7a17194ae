"""EfficientNet as an ``nn.Module`` built from a :class:`~scalesearch.spec.ModelSpec`.

State-dict names read like the paper: ``stem.conv``, ``stages.3.1.dwise.conv``,
``stages.3.1.se.fc1``, ``head.conv``, ``classifier``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation, StochasticDepth

from .spec import B0, ModelSpec, round_channels, scale

__all__ = ["ConvBNAct", "MBConv", "EfficientNet", "build_model"]


class ConvBNAct(nn.Sequential):
    """Conv (no bias) → BatchNorm → optional SiLU, with named children."""

    def __init__(self, cin, cout, kernel=1, stride=1, groups=1, act=True, bn=nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = bn(cout)
        if act:
            self.act = nn.SiLU(inplace=True)


class MBConv(nn.Module):
    """Inverted residual: expand 1×1 → depthwise k×k → squeeze-excite → project 1×1,
    with a residual (and stochastic depth) when shape is preserved."""

    def __init__(self, cin, cout, expand_ratio, kernel, stride, se_ratio, drop_path, bn):
        super().__init__()
        mid = round_channels(cin * expand_ratio) if expand_ratio != 1 else cin
        self.expand = ConvBNAct(cin, mid, 1, bn=bn) if mid != cin else nn.Identity()
        self.dwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, bn=bn)
        se_channels = max(1, int(cin * se_ratio))
        self.se = SqueezeExcitation(mid, se_channels, activation=nn.SiLU) if se_ratio > 0 else nn.Identity()
        self.project = ConvBNAct(mid, cout, 1, act=False, bn=bn)
        self.residual = stride == 1 and cin == cout
        self.drop_path = StochasticDepth(drop_path, "row") if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dwise(self.expand(x))))
        return x + self.drop_path(out) if self.residual else out


class EfficientNet(nn.Module):
    def __init__(self, spec: ModelSpec, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.spec = spec
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


def build_model(
    name: str | None = None,
    *,
    width: float = 1.0,
    depth: float = 1.0,
    num_classes: int = 1000,
    dropout: float | None = None,
    spec: ModelSpec | None = None,
    in_channels: int = 3,
) -> EfficientNet:
    """Build an official variant by name (``"b0"``…``"b7"``) or any scaled spec.

    ``build_model("b3")`` uses the published width/depth/dropout; otherwise the
    baseline ``spec`` (default B0) is scaled by ``depth`` and ``width``.
    """
    from dataclasses import replace

    if name is not None:
        from .scaling import official

        variant = official(name)
        width, depth = variant.width, variant.depth
        dropout = variant.dropout if dropout is None else dropout
    s = scale(spec or B0, depth=depth, width=width)
    if dropout is not None:
        s = replace(s, dropout=dropout)
    return EfficientNet(s, num_classes=num_classes, in_channels=in_channels)
