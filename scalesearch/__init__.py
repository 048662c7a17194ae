"""scalesearch: rediscover EfficientNet compound-scaling coefficients on your own data."""

from .cost import Cost, count_cost, count_params
from .model import EfficientNet, build_model
from .scaling import OFFICIAL, PAPER, Coefficients, FamilyMember, family, family_markdown
from .spec import B0, ModelSpec, StageSpec, round_channels, round_repeats, scale

__version__ = "0.1.0"

__all__ = [
    "B0", "OFFICIAL", "PAPER", "Coefficients", "Cost", "EfficientNet", "FamilyMember", "ModelSpec",
    "StageSpec", "build_model", "count_cost", "count_params", "family", "family_markdown",
    "round_channels", "round_repeats", "scale",
]
