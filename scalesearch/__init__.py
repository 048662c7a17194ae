"""scalesearch: rediscover EfficientNet compound-scaling coefficients on your own data.

The public names load lazily (PEP 562): ``import scalesearch`` and ``scalesearch.__version__`` do not import
torch, so the command-line apps answer ``--help`` and ``--version`` at once.
"""

from importlib import import_module

__version__ = "0.3.0"

_PUBLIC = {
    "Cost": "scaling.cost", "count_cost": "scaling.cost", "count_params": "scaling.cost",
    "EfficientNet": "scaling.model", "build_model": "scaling.model", "build_spec": "scaling.model",
    "spec_cost": "scaling.model", "to_torchvision": "scaling.model",
    "PAPER": "scaling.coefficients", "Coefficients": "scaling.coefficients", "FamilyMember": "scaling.scaler",
    "family": "scaling.scaler", "family_markdown": "scaling.scaler", "load_family": "scaling.scaler",
    "B0": "scaling.spec", "OFFICIAL": "scaling.spec", "ModelSpec": "scaling.spec", "StageSpec": "scaling.spec",
    "round_channels": "scaling.spec", "round_repeats": "scaling.spec", "scale": "scaling.spec",
    "search": "apps.cli", "SearchResult": "pipeline", "UserError": "apps.compose",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'scalesearch' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
