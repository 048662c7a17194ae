"""scalesearch: rediscover EfficientNet compound-scaling coefficients on your own data.

The public names load lazily (PEP 562): ``import scalesearch`` and ``scalesearch.__version__`` do not import
torch, so the command-line apps answer ``--help`` and ``--version`` at once.
"""

from importlib import import_module

__version__ = "0.3.0"

_PUBLIC = {
    "Cost": "cost", "count_cost": "cost", "count_params": "cost",
    "EfficientNet": "model", "build_model": "model", "build_spec": "model", "spec_cost": "model",
    "to_torchvision": "model",
    "PAPER": "scaling", "Coefficients": "scaling", "FamilyMember": "scaling", "family": "scaling",
    "family_markdown": "scaling", "load_family": "scaling",
    "B0": "spec", "OFFICIAL": "spec", "ModelSpec": "spec", "StageSpec": "spec", "round_channels": "spec",
    "round_repeats": "spec", "scale": "spec",
    "search": "cli", "SearchResult": "pipeline",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'scalesearch' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
