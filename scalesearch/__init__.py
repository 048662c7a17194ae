"""scalesearch: rediscover EfficientNet compound-scaling coefficients on your own data."""

from .cost import Cost, count_cost, count_params
from .model import EfficientNet, build_model, build_spec, spec_cost, to_torchvision
from .scaling import PAPER, Coefficients, FamilyMember, family, family_markdown, load_family
from .spec import B0, OFFICIAL, ModelSpec, StageSpec, round_channels, round_repeats, scale

__version__ = "0.2.0"

__all__ = [
    "B0", "OFFICIAL", "PAPER", "Coefficients", "Cost", "EfficientNet", "FamilyMember", "ModelSpec",
    "StageSpec", "build_model", "build_spec", "count_cost", "count_params", "family", "family_markdown",
    "load_family", "round_channels", "round_repeats", "scale", "spec_cost", "to_torchvision",
]
