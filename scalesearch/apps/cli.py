"""Hydra entry points: ``scalesearch`` (the search), ``scalesearch-generate``, ``scalesearch-validate``,
``scalesearch-report``, ``scalesearch-ablate``, ``scalesearch-nas``, ``scalesearch-compare``.

Every app composes ``conf/`` against the structured configs of :mod:`scalesearch.config` (unknown keys,
``+search.foo=1`` included, are refused; the command line is composed and checked before Hydra runs:
:mod:`scalesearch.apps.compose`), runs in the Hydra run directory, and turns a user error into
one line on stderr and exit code 2 (the traceback only with HYDRA_FULL_ERROR=1). SIGINT and SIGTERM
stop a run cleanly: what the tables hold stays, the run stays resumable, the exit code is 130 / 143
and the last line says how to resume. ``--help`` lists the app's groups and main keys; ``--version``
prints scalesearch's version.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
from pathlib import Path

from ..run.interrupt import install_early

install_early()  # a signal during the imports below (seconds): one line, exit 130 / 143

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .. import __version__
from ..plan import preflight as P
from ..run import multirun
from ..run.interrupt import RunStopped, interrupted_by, line_out, say, set_resume_line, stop_line
from .compose import (CONF_DIR, SCHEMAS, UserError, check_job, compose_config, early_checks, is_multirun,
                      newest_resumable, to_object, typed)
from .help import app_help

log = logging.getLogger("scalesearch")

os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # our handler stops a run (Tune's would "complete" it)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _install_signal_handlers() -> None:
    from ..run.interrupt import install

    install()


def _fail(msg: str, code: int = 2):
    line_out(f"scalesearch: error: {msg}")
    sys.exit(code)


def _interrupted(e, resume: str | None):
    say(stop_line(f"interrupted by {e}", resume))  # (printed already if the runner's watch saw the signal)
    sys.exit(128 + e.signum)


def friendly_errors(resume_hint=None):
    """Report user errors (ValueError, OSError, UserError, KeyError) as one line and exit 2; an interrupt as
    one line saying how to resume, exit 130 (SIGINT) / 143 (SIGTERM) / 129 (SIGHUP)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(cfg, *args, **kwargs):
            set_resume_line(resume_hint(cfg) if resume_hint else None)  # for a stop that cannot unwind
            try:
                return fn(cfg, *args, **kwargs)
            except (UserError, ValueError, OSError, KeyError) as e:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                _fail(msg)
            except RunStopped as e:  # Tune could not go on: what finished is recorded
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                hint = f"; resume with: {resume_hint(cfg)}" if resume_hint else ""
                _fail(f"{e}{hint}", code=3)
            except BaseException as e:  # an interrupt (possibly wrapped by a C extension) or a bug
                stop = interrupted_by(e)
                if stop is None:
                    raise
                _interrupted(stop, resume_hint(cfg) if resume_hint else None)

        return wrapper

    return deco


def run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _answer(text: str) -> None:
    """Print ``--help``'s or ``--version``'s answer and exit 0; a reader that closed the pipe early (``| head``) is
    not an error (Python would print a BrokenPipeError traceback): the rest goes nowhere."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _pre_hydra(config_name: str, prog: str) -> None:
    """--version, --help, and the checks that must come before Hydra creates the run directory: the command
    line composed as Hydra will compose it (a multirun: each job of the sweep; a bad override, an unknown key or a
    bad value is one line, exit 2, and leaves no run directory), and ``resume=true`` pointed at the run it
    continues."""
    argv = sys.argv[1:]
    if "--version" in argv or "-V" in argv:
        _answer(f"{prog} {__version__}")
    if "--help" in argv or "-h" in argv:
        _answer(app_help(config_name, prog, SCHEMAS[config_name][1]))
    try:
        early_checks(config_name, argv, prog)
    except (UserError, ValueError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(str(e).splitlines()[0])


def hydra_app(config_name: str, prog: str, job, resume_hint=None):
    """A Hydra app over ``conf/<config_name>.yaml`` validated against its schema: ``job(cfg_object, run_dir)``
    with one-line user errors and clean interrupts."""
    _, schema = SCHEMAS[config_name]

    @friendly_errors(resume_hint)
    def work(cfg: DictConfig):
        return job(to_object(cfg, schema), run_dir())

    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig):
        with multirun.job():  # a parallel multirun's job, in a worker process: stops as a single run does
            return work(cfg)

    def entry():
        _pre_hydra(config_name, prog)  # writes nothing: a signal here is install_early's one line, exit 130 / 143
        try:
            _install_signal_handlers()
            if is_multirun(sys.argv[1:]):
                multirun.host()  # a launcher's jobs in worker processes get the stop, and say its line
            return app()
        except SystemExit:
            raise
        except BaseException as e:  # an interrupt outside the job (composition, Hydra's own bookkeeping)
            stop = interrupted_by(e)
            if stop is None:
                raise
            _interrupted(stop, None)

    return entry


def _resume_hint(cfg) -> str:
    try:
        return f"scalesearch resume=true hydra.run.dir={run_dir()} (with the same settings)"
    except Exception:  # noqa: BLE001
        return "scalesearch resume=true with the same settings"


def _job(module: str, function: str):
    """An app's job, ``scalesearch.<module>.<function>(cfg, run_dir)``, imported only when the app runs (``--help``
    and the early checks stay free of torch and Ray)."""
    def job(cfg, out):
        return getattr(importlib.import_module(f"scalesearch.{module}"), function)(cfg, out)

    return job


# every app: its config in conf/, its program name, its job (module, function) and the resume line of an interrupt
APPS = {
    "search_main": ("config", "scalesearch", ("pipeline", "run_search"), _resume_hint),
    "generate_main": ("generate", "scalesearch-generate", ("apps.generate", "run_generate"), None),
    "report_main": ("report", "scalesearch-report", ("apps.rerender", "run_report_app"), None),
    "validate_main": ("validate", "scalesearch-validate", ("apps.validate", "run_validate_app"),
                      lambda cfg: f"scalesearch-validate run_dir={cfg.run_dir}"),
    "ablate_main": ("ablate", "scalesearch-ablate", ("run.ablation", "run_ablate_app"),
                    lambda cfg: f"scalesearch-ablate resume=true hydra.run.dir={run_dir()} (or the same run_dir=)"),
    "nas_main": ("nas", "scalesearch-nas", ("apps.nas", "run_nas_app"),
                 lambda cfg: f"scalesearch-nas resume=true hydra.run.dir={run_dir()}"),
    "compare_main": ("compare", "scalesearch-compare", ("apps.compare", "run_compare_app"), None),
}


def _app(name: str):
    config_name, prog, (module, function), hint = APPS[name]
    return hydra_app(config_name, prog, _job(module, function), hint)


search_main, generate_main, report_main = _app("search_main"), _app("generate_main"), _app("report_main")
validate_main, ablate_main, nas_main, compare_main = (_app("validate_main"), _app("ablate_main"), _app("nas_main"),
                                                       _app("compare_main"))


# ---------------------------------------------------------------- Python's front door
def search(*overrides: str, run_dir: str | os.PathLike | None = None):
    """Run (or resume) a search from Python — what ``scalesearch OVERRIDES...`` runs: the same conf/ composed by
    Hydra, the same checks before anything trains, the same stages and artifacts. ``run_dir``: where the run
    lives (else ``hydra.run.dir``, by default ``runs/<dataset>-<strategy>/<timestamp>``); ``resume=true``
    continues it (else the newest run with these settings beside the default directory). Bad input raises
    :class:`UserError` (a ``ValueError``) with the command's one line; progress goes to the ``scalesearch``
    logger (printed to stderr when no logging is set up). Returns the run's
    :class:`scalesearch.pipeline.SearchResult`."""
    from ..pipeline import SearchResult, run_search

    args = [str(o) for o in overrides]
    try:
        P.check_moved(args)
        raw = compose_config("config", args, "scalesearch")
        check_job("config", raw)
        cfg = typed("config", raw)
    except ValueError as e:
        raise UserError(str(e)) from None
    if run_dir is not None:
        where = Path(run_dir)
    else:
        where = newest_resumable(raw, cfg, "run_dir=<the run>") if cfg.resume else Path(str(raw.hydra.run.dir))
    with _progress_to_stderr():
        run_search(cfg, where)
    return SearchResult.read(where)


@contextlib.contextmanager
def _progress_to_stderr():
    """The run's progress (the ``scalesearch`` logger at INFO) on stderr while it runs, unless the caller set up
    logging (a handler on that logger or the root)."""
    logger = logging.getLogger("scalesearch")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][scalesearch] %(message)s", "%H:%M:%S"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main() -> None:  # console script `scalesearch`
    search_main()
