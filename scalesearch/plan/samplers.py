"""Optuna's samplers and storages as settings: the one check of ``search.sampler``/``nas.sampler`` with their kwargs
(``make_sampler``, picklable for Ray Tune's experiment state) and of an Optuna storage URL (parsed, never
connected)."""

from __future__ import annotations

import copyreg
import os
import threading
from pathlib import Path

from ..config import NASConfig, SearchAppConfig

__all__ = ["AUTO_SAMPLERS", "check_sampler", "make_sampler", "check_storage", "search_sampler", "nas_sampler"]

AUTO_SAMPLERS = {"weighted": "TPESampler", "pareto": "NSGAIISampler"}  # nas.sampler=auto


def check_sampler(name: str, key: str) -> type:
    import optuna

    cls = getattr(optuna.samplers, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{key}={name!r} is not an optuna sampler; allowed: TPESampler, RandomSampler, CmaEsSampler, "
                         "QMCSampler, GPSampler, NSGAIISampler, ... (a class in optuna.samplers)")
    return cls


def make_sampler(name: str, kwargs: dict, prefix: str, seed: int | None = None):
    """The optuna sampler ``name(**kwargs)``, ``seed`` added where it takes one and kwargs set none: the one check
    of ``<prefix>.sampler`` and ``<prefix>.sampler_kwargs`` (the search and the NAS app), a one-line ValueError."""
    import inspect

    cls = check_sampler(name, f"{prefix}.sampler")
    params = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
    given = dict(kwargs)
    try:
        sampler = cls(**{**({"seed": seed} if "seed" in params and seed is not None else {}), **given})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{prefix}.sampler_kwargs={given} do not fit {prefix}.sampler={name!r} ({e}); allowed: "
                         f"keyword arguments of optuna.samplers.{name}: {', '.join(params) or 'none'}") from None
    if isinstance(getattr(sampler, "_thread_lock", None), type(threading.Lock())):
        copyreg.pickle(cls, _sampler_without_lock)
    return sampler


def _sampler_without_lock(sampler):
    """Ray Tune pickles its searcher, the sampler with it, into its experiment state; Optuna 5's genetic samplers
    (NSGAIISampler, NSGAIIISampler) hold a threading.Lock, which does not pickle: pickled without it, rebuilt with a
    new one (registered through copyreg, which pickle and Ray's cloudpickle both consult)."""
    return _rebuild_sampler, (type(sampler), {k: v for k, v in vars(sampler).items() if k != "_thread_lock"})


def _rebuild_sampler(cls, state: dict):
    sampler = cls.__new__(cls)
    sampler.__dict__.update(state)
    sampler._thread_lock = threading.Lock()
    return sampler


_STORAGES = ("sqlite:///optuna.db (in the run directory), sqlite:////abs/dir/optuna.db, or an SQLAlchemy URL "
             "dialect+driver://user:password@host/db whose driver is installed")


def check_storage(url: str, key: str = "search.storage") -> None:
    """An Optuna storage URL, checked without connecting: SQLAlchemy parses it, its dialect's driver imports, and a
    sqlite file lies in an existing writable directory (a relative path: in the run directory itself)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
        u.get_dialect().import_dbapi()
    except NoSuchModuleError:  # an ArgumentError too
        raise ValueError(f"{key}={url!r}: SQLAlchemy knows no database {u.drivername!r}; "
                         f"allowed: {_STORAGES}") from None
    except (ArgumentError, ValueError):
        raise ValueError(f"{key}={url!r} is not a database URL; allowed: {_STORAGES}") from None
    except ImportError as e:
        raise ValueError(f"{key}={url!r} needs the {u.get_backend_name()} driver {e.name or e}, which is not "
                         f"installed; allowed: a URL whose driver is installed (install {e.name or 'it'}, or name "
                         "another as dialect+driver://...), or sqlite:///optuna.db (in the run directory)") from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        _check_sqlite_file(url, u.database, key)


def _check_sqlite_file(url: str, database: str, key: str) -> None:
    path = Path(database)
    if not path.is_absolute():
        if path.parent != Path("."):
            raise ValueError(f"{key}={url!r}: a relative path lies in the new run directory, which has no "
                             f"{path.parent}/; allowed: a file name (sqlite:///optuna.db) or an absolute path")
        return
    where = path.parent
    if not where.is_dir():
        raise ValueError(f"{key}={url!r}: the directory {where} does not exist; allowed: a file in an existing, "
                         f"writable directory, e.g. sqlite:///optuna.db (in the run directory)")
    if (path.exists() and not path.is_file()) or not os.access(where, os.W_OK | os.X_OK):
        raise ValueError(f"{key}={url!r}: {path} cannot be written; allowed: a file in an existing, writable "
                         "directory, e.g. sqlite:///optuna.db (in the run directory)")


def search_sampler(cfg: SearchAppConfig):
    """The search app's Optuna sampler (search.sampler with search.sampler_kwargs), seeded by ``seed`` whatever the
    class (search.sampler_kwargs.seed wins). Before, only samplers whose own ``__init__`` named ``seed`` got it: the
    default TPESampler (whose ``__init__`` optuna wraps) was unseeded, so the same seed gave other suggestions."""
    return make_sampler(cfg.search.sampler, cfg.search.sampler_kwargs, "search", cfg.seed)


def nas_sampler(n: NASConfig):
    """The NAS app's sampler: nas.sampler (auto: TPESampler for the weighted objective, NSGAIISampler for pareto)
    with nas.sampler_kwargs, seeded by nas.seed."""
    name = AUTO_SAMPLERS[n.objective] if n.sampler == "auto" else n.sampler
    return make_sampler(name, n.sampler_kwargs, "nas", n.seed)
