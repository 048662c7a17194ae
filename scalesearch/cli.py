"""Hydra entry points: ``scalesearch`` (the search), ``scalesearch-generate``,
``scalesearch-report``, ``scalesearch-ablate``, ``scalesearch-nas``.

Every app composes ``conf/`` against the structured configs of :mod:`scalesearch.config`
(validation), runs in the Hydra run directory, and turns a user error (a bad value)
into one line on stderr and exit code 2 — the traceback only with HYDRA_FULL_ERROR=1.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import config as C

log = logging.getLogger("scalesearch")

# conf/ lives at the project root beside the package (editable install / checkout)
CONF_DIR = os.environ.get("SCALESEARCH_CONF", str(Path(__file__).resolve().parent.parent / "conf"))

cs = ConfigStore.instance()
cs.store(name="search_schema", node=C.SearchAppConfig)
cs.store(name="generate_schema", node=C.GenerateConfig)


class UserError(Exception):
    """A bad value from the user: reported as one line, exit code 2."""


def friendly_errors(fn):
    """Report user errors (ValueError, OSError, UserError) as one line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError, OSError, KeyError) as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"scalesearch: error: {msg}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


def checked_output_dir(app):
    """Check an explicit ``hydra.run.dir`` / ``hydra.sweep.dir`` before Hydra creates it (Hydra
    reports a failed mkdir with a traceback): one line on stderr and exit 2 instead."""

    @functools.wraps(app)
    def entry(*args, **kwargs):
        try:
            _check_output_dirs(sys.argv[1:])
        except UserError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"scalesearch: error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        return app(*args, **kwargs)

    return entry


def _check_output_dirs(argv: list[str]) -> None:
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+~") not in ("hydra.run.dir", "hydra.sweep.dir"):
            continue
        path = Path(value.split("${", 1)[0] or ".")  # interpolations (${now:...}) are Hydra's to resolve
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise UserError(f"{key}={value} cannot be created: {existing} is not a directory; allowed: a writable directory")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as e:
            raise UserError(f"{key}={value} is not writable ({existing}: {e.strerror}); allowed: a writable directory") from None


def run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def to_object(cfg: DictConfig):
    """The validated dataclass behind a composed config."""
    return OmegaConf.to_object(cfg)


# ---------------------------------------------------------------- generate
@checked_output_dir
@hydra.main(config_path=CONF_DIR, config_name="generate", version_base="1.3")
@friendly_errors
def generate_main(cfg: DictConfig) -> None:
    from .generate import run_generate

    run_generate(to_object(cfg), run_dir())


# ---------------------------------------------------------------- search
@checked_output_dir
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def search_main(cfg: DictConfig) -> float | None:
    from .search import run_search

    best = run_search(to_object(cfg), run_dir())
    return None if best is None else best.get("accuracy_mean")


def main() -> None:  # console script `scalesearch`
    search_main()


# ---------------------------------------------------------------- other apps
def hydra_app(config_name: str, schema_name: str, schema, job):
    """A Hydra app over ``conf/<config_name>.yaml`` validated against ``schema`` (a dataclass,
    stored as ``schema_name``): ``job(cfg_object, run_dir)`` runs with one-line user errors."""
    cs.store(name=schema_name, node=schema)

    @checked_output_dir
    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    @friendly_errors
    def app(cfg: DictConfig):
        return job(to_object(cfg), run_dir())

    return app


def report_main() -> None:  # console script `scalesearch-report`
    from .report import ReportAppConfig, run_report_app

    hydra_app("report", "report_schema", ReportAppConfig, run_report_app)()


def ablate_main() -> None:  # console script `scalesearch-ablate`
    from .ablation import AblateAppConfig, run_ablate_app

    hydra_app("ablate", "ablate_schema", AblateAppConfig, run_ablate_app)()


def nas_main() -> None:  # console script `scalesearch-nas`
    from .nas import NASAppConfig, run_nas_app

    hydra_app("nas", "nas_schema", NASAppConfig, run_nas_app)()
