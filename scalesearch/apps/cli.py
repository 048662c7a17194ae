"""Hydra entry points: ``scalesearch`` (the search), ``scalesearch-generate``, ``scalesearch-validate``,
``scalesearch-report``, ``scalesearch-ablate``, ``scalesearch-nas``, ``scalesearch-compare``.

Every app composes ``conf/`` against the structured configs of :mod:`scalesearch.config` (unknown keys,
``+search.foo=1`` included, are refused), runs in the Hydra run directory, and turns a user error into
one line on stderr and exit code 2 (the traceback only with HYDRA_FULL_ERROR=1). SIGINT and SIGTERM
stop a run cleanly: what the tables hold stays, the run stays resumable, the exit code is 130 / 143
and the last line says how to resume. ``--help`` lists the app's groups and main keys; ``--version``
prints scalesearch's version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import itertools
import logging
import os
import sys
import tempfile
from pathlib import Path

from ..run.interrupt import install_early

install_early()  # a signal during the imports below (seconds): one line, exit 130 / 143

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from .. import __version__
from .. import config as C
from ..run import multirun
from ..run import rundir as R
from ..paths import CONF_DIR as _CONF_PATH
from ..run.interrupt import RunStopped, interrupted_by, say, set_resume_line, stop_line

log = logging.getLogger("scalesearch")

CONF_DIR = str(_CONF_PATH)  # the packaged conf/ (wheel) or <repo>/conf; $SCALESEARCH_CONF wins
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # our handler stops a run (Tune's would "complete" it)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

cs = ConfigStore.instance()
SCHEMAS = {"config": ("search_schema", C.SearchAppConfig), "generate": ("generate_schema", C.GenerateConfig),
           "report": ("report_schema", C.ReportAppConfig), "validate": ("validate_schema", C.ValidateAppConfig),
           "ablate": ("ablate_schema", C.AblateAppConfig), "nas": ("nas_schema", C.NASAppConfig),
           "compare": ("compare_schema", C.CompareAppConfig)}
for _name, _schema in SCHEMAS.values():
    cs.store(name=_name, node=_schema)


class UserError(ValueError):
    """A bad value from the user: reported as one line, exit code 2."""


def _install_signal_handlers() -> None:
    from ..run.interrupt import install

    install()


def _fail(msg: str, code: int = 2):
    print(f"scalesearch: error: {msg}", file=sys.stderr, flush=True)
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


def _check_output_dirs(argv: list[str]) -> None:
    """An explicit ``hydra.run.dir`` / ``hydra.sweep.dir`` must be creatable (Hydra reports a failed mkdir
    with a traceback)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+~") not in ("hydra.run.dir", "hydra.sweep.dir"):
            continue
        path = Path(value.split("${", 1)[0] or ".")  # interpolations (${now:...}) are Hydra's to resolve
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise UserError(f"{key}={value} cannot be created: {existing} is not a directory; "
                            "allowed: a writable directory")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as e:
            raise UserError(f"{key}={value} is not writable ({existing}: {e.strerror}); "
                            "allowed: a writable directory") from None


def run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _unknown_keys(node, schema, prefix: str = "") -> list[str]:
    """Keys of the composed config that the schema does not define (``+search.foo=1``)."""
    if not dataclasses.is_dataclass(schema) or not isinstance(node, DictConfig):
        return []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = []
    for key in node.keys():
        if key == "hydra":
            continue
        if key not in fields:
            out.append(f"{prefix}{key}")
            continue
        default = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            out += _unknown_keys(node[key], type(default), f"{prefix}{key}.")
    return out


def _refuse_unknown(cfg: DictConfig, schema) -> None:
    unknown = _unknown_keys(cfg, schema)
    if unknown:
        names = ", ".join(f.name for f in dataclasses.fields(schema))
        raise UserError(f"{unknown[0]} is not a setting of this app; allowed: the keys of its config ({names} "
                        "and their sub-keys; see --help or --cfg job)")


def to_object(cfg: DictConfig, schema):
    """The validated dataclass behind a composed config; unknown keys are refused with one line."""
    _refuse_unknown(cfg, schema)
    return OmegaConf.to_object(cfg)


# ---------------------------------------------------------------- help and version
GROUPS = {"config": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "nas": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "ablate": ["dataset", "proxy", "trials", "cluster"], "validate": ["cluster"]}
MAIN_KEYS = {
    "config": [
        ("search.strategy", "grid: the constrained lattice; optuna: sample the surface"),
        ("search.constraint", "measured: every candidate at target^φ measured cost as built; "
                              "nominal: the paper's α·β²·γ²"),
        ("search.cost", "what is held equal: macs, activations, latency or train_step "
                        "(measured on the trials' device)"),
        ("search.n_seeds", "seeds per candidate (a decision needs >= 3)"),
        ("search.max_points", "grid size (farthest-point sampling over the surface; null: all)"),
        ("search.phi", "the compound coefficient the candidates are built at"),
        ("trials.cpus_per_trial", "Ray resources per trial (also trials.gpus_per_trial, e.g. 0.25 = 4 trials per GPU)"),
        ("proxy.epochs", "the proxy budget (also proxy.batch_size, proxy.lr, proxy.optimizer)"),
        ("dataset.name", "synthetic, imagefolder (dataset.root=DIR or ARCHIVE), cifar10, cifar100, svhn, fashionmnist"),
        ("dataset.base_resolution", "the baseline proxy's input size"),
        ("validate.enabled", "retrain the top validate.top_k + validate.random_k candidates "
                             "validate.epochs_mult times longer"),
        ("family.train", "proxy-train the found family up to family.max_phi "
                         "(family.compare_paper: the paper's too)"),
        ("family.phis", "the members emitted (negative: below B0)"),
        ("cluster.address", "host:port of a Ray cluster (null: $RAY_ADDRESS if set, else start Ray here)"),
        ("cluster.storage", "Ray Tune's experiments on several nodes: a path all see or a URI (s3://, gs://)"),
        ("resume", "continue or extend the newest run with these settings (or hydra.run.dir=RUN)"),
        ("verbose", "0 quiet, 1 the tool's progress, 2 also Ray Tune's tables"),
    ],
    "generate": [("alpha, beta, gamma", "the coefficients"), ("mode", "formula or official (the published B0..B7)"),
                 ("constraint", "nominal (resolution base·γ^φ) or measured (resolution solved: cost target^φ)"),
                 ("phis", "the members, e.g. [-1,0,1,2] (negative: below B0)"), ("base_resolution", "B0's input size"),
                 ("num_classes", "classifier width"), ("baseline", "a baseline.json from scalesearch-nas")],
    "validate": [("run_dir", "a finished search run"), ("validate.top_k", "top candidates retrained"),
                 ("validate.random_k", "random others retrained"), ("validate.epochs_mult", "how much longer")],
    "report": [("run_dir", "a search run to re-render"), ("report.pick_rule", "marginal or knee"),
               ("report.min_gain_per_doubling", "the marginal rule's threshold"),
               ("report.top_k", "rows of the ranking")],
    "ablate": [("run_dir", "a search run: its best is one compound variant, results go there"),
               ("phis", "nominal cost 2^φ per variant"), ("seeds", "seeds per variant"),
               ("compound", "[best, paper]")],
    "nas": [("nas.objective", "weighted (MnasNet reward) or pareto"), ("nas.cost", "macs or latency"),
            ("nas.num_samples", "architectures tried"),
            ("chain.search", "then search the coefficients on the found baseline"),
            ("resume", "continue an interrupted NAS (hydra.run.dir=RUN)")],
    "compare": [("runs", "a Hydra multirun directory and/or run directories, e.g. runs=[multirun/2026-11-26_10-00-00]"),
                ("out_dir", "where compare.md / compare.json / plots go (default: the Hydra run directory)")],
}
TITLES = {"config": "search compound-scaling coefficients with proxy trainings on Ray Tune",
          "generate": "emit a scaled family (specs, params, MACs) from coefficients",
          "validate": "retrain a finished run's top candidates longer: the proxy-fidelity audit",
          "report": "re-render a run's report from its tables (never trains)",
          "ablate": "the paper's Fig. 8: one-dimension vs compound scaling at equal cost",
          "nas": "search a baseline (MnasNet-style), then optionally its coefficients",
          "compare": "the coefficients found on several datasets, side by side"}


def _group_options(group_dir: Path, schema) -> list[str]:
    """The options of a config group; of ``experiment`` (``@package _global_``) those that set only this app's keys."""
    import yaml

    names = {f.name for f in dataclasses.fields(schema)} | {"defaults"}
    return sorted(p.stem for p in group_dir.glob("*.yaml")
                  if group_dir.name != "experiment" or set(yaml.safe_load(p.read_text()) or {}) <= names)


def help_examples(config_name: str) -> list[str]:
    """The example command lines of an app: its conf YAML's header comment lines that start with a command
    (``#   scalesearch… args  # what``), without the trailing comment; ``--help`` shows them."""
    out = []
    for line in (Path(CONF_DIR) / f"{config_name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if line.startswith("#   ") and text.startswith("scalesearch"):
            out.append(text.split("  #")[0].strip())
    return out


def app_help(config_name: str, prog: str) -> str:
    """``--help``: the app's groups (with their options) and main keys, one line each."""
    conf = Path(CONF_DIR)
    _, schema = SCHEMAS[config_name]
    lines = [f"{prog} {__version__} — {TITLES[config_name]}", "",
             f"usage: {prog} [key=value ...]" + (" [group=option ...] [-m: a Hydra multirun]" if config_name in GROUPS
                                                 else ""), ""]
    if config_name in GROUPS:
        lines.append("groups:")
        for g in GROUPS[config_name]:
            options = _group_options(conf / g, schema)
            lines.append(f"  {('+' if g == 'experiment' else '') + g:<22} {', '.join(options)}")
        lines.append("")
    lines.append("main keys (default):")
    defaults = OmegaConf.structured(schema)
    for key, text in MAIN_KEYS[config_name]:
        value = OmegaConf.select(defaults, key.split(",")[0].strip(), default=None)
        shown = f"{key}={_override_value(OmegaConf.to_object(value) if OmegaConf.is_config(value) else value)}" \
            if "," not in key else key
        lines.append(f"  {shown:<34} {text}")
    examples = help_examples(config_name)
    if examples:
        lines += ["", "examples:"] + [f"  {e}" for e in examples]
    lines += ["", f"All keys and their current values: {prog} --cfg job [overrides]. More: the project's README.md."]
    return "\n".join(lines)


def _override_value(v) -> str:
    """A default as it is typed on the command line (null, true, [0,1]: Hydra reads None as the string 'None')."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_override_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


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
        _answer(app_help(config_name, prog))
    try:
        _early_checks(config_name, argv, prog)
    except (UserError, ValueError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(str(e).splitlines()[0])


def _early_checks(config_name: str, argv: list[str], prog: str) -> None:
    """The output directories; the config composed and checked (a multirun: every job of the sweep); resume=true."""
    _check_output_dirs(argv)
    C.check_moved(_app_overrides(argv))
    if any(a.split("=", 1)[0] in _OTHER_COMPOSITION for a in argv):
        return  # Hydra composes something else than the app's config
    if _is_multirun(argv):
        _check_sweep(config_name, argv, prog)
        return
    raw = _compose(config_name, _app_overrides(argv), prog)
    _check_job(config_name, raw)
    if config_name == "config":
        _resolve_resume_dir(argv, raw)
    _precheck_run_dirs(config_name, raw, sys.argv[1:])


def _search_prechecks(cfg) -> None:
    """Everything ``run_search`` checks before it writes anything, without torch or Ray (one second)."""
    from ..plan.space import check_search_inputs

    check_search_inputs(cfg)


def _check_job(config_name: str, raw: DictConfig) -> None:
    """The composed config of one job: no unknown key, and the app's plain checks of the values (in a second,
    before torch is imported)."""
    _refuse_unknown(raw, SCHEMAS[config_name][1])
    if config_name in EARLY_CHECKS:
        EARLY_CHECKS[config_name](_typed(config_name, raw))


def _typed(config_name: str, raw: DictConfig):
    """The app's config dataclass from a composed config (its ``hydra`` node left out)."""
    app_cfg = OmegaConf.masked_copy(raw, [k for k in raw if k != "hydra"])
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SCHEMAS[config_name][1]), app_cfg))


EARLY_CHECKS = {"config": _search_prechecks, "nas": C.check_nas, "generate": C.check_generate}

# Hydra flags after which Hydra composes something else than the app's config from its overrides
_OTHER_COMPOSITION = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--experimental-rerun",
                      "-sc", "--shell-completion")
_HYDRA_HINTS = ("To append", "See https", "Config search path", "Available options", "Set the environment")


def _app_overrides(argv: list[str]) -> list[str]:
    """The command line's overrides of the app's config (those of ``hydra.*`` aside)."""
    return [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))
            and not a.lstrip("+~").startswith("hydra")]


def _is_multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") or a.replace(" ", "") == "hydra.mode=MULTIRUN" for a in argv)


def _compose(config_name: str, overrides: list[str], prog: str) -> DictConfig:
    """The app's config (with ``hydra``) composed from ``overrides``. A composition error is a one-line UserError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise _composition_error(e, prog) from None


def _composition_error(e: Exception, prog: str) -> UserError:
    """Hydra's message and cause without its hints, and the options of a missing group option (HYDRA_FULL_ERROR=1:
    Hydra's own exception)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise e
    parts = [" ".join(line.strip() for line in str(x).splitlines()
                      if line.strip() and not line.startswith((" ", "\t", *_HYDRA_HINTS))).rstrip(".")
             for x in (e, e.__cause__) if x is not None]
    options, override = getattr(e, "options", None), getattr(e, "override", None)  # a bad group option, a bad override
    allowed = ", ".join(options) if options else f"the keys and values {prog} --help and {prog} --cfg job show"
    return UserError(f"{': '.join(p for p in [override, *parts] if p)}; allowed: {allowed}")


def _sweep_jobs(overrides: list[str], prog: str) -> list[tuple[list[str], list[str]]]:
    """The jobs of a multirun as Hydra's basic sweeper forms them (the product of the swept values, in order):
    (the job's overrides, its swept ones). An interval (another sweeper's) is a UserError."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    choices: dict[str, list[tuple[str, bool]]] = {}
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # glob(*) lists a group's options
            for o in OverridesParser.create(GlobalHydra.instance().config_loader()).parse_overrides(overrides):
                key, swept = o.get_key_element(), o.is_sweep_override()
                if swept and not o.is_discrete_sweep():
                    raise UserError(f"{o.input_line}: Hydra's basic sweeper (-m) runs discrete values only; allowed: "
                                    "a,b,c, range(start,stop[,step]) or glob(pattern)")
                choices[key] = [(f"{key}={v}", True) for v in o.sweep_string_iterator()] if swept else \
                    [(o.input_line, False)]
    except HydraException as e:
        raise _composition_error(e, prog) from None
    return [([a for a, _ in job], [a for a, swept in job if swept]) for job in itertools.product(*choices.values())]


def _check_sweep(config_name: str, argv: list[str], prog: str) -> None:
    """A multirun (``-m``): every job of the sweep composed and checked before Hydra starts the first one — its
    settings, and an image folder's tree (:func:`scalesearch.train.data.check_source`, once per distinct dataset); the
    first bad job is one line naming it by number (Hydra's ``hydra.job.num``) and its swept overrides."""
    if any(a.lstrip("+").startswith("hydra/sweeper=") and not a.endswith("=basic") for a in argv):
        return  # another sweeper forms its jobs otherwise
    seen: set[str] = set()
    for num, (job, swept) in enumerate(_sweep_jobs(_app_overrides(argv), prog)):
        try:
            raw = _compose(config_name, job, prog)
            _check_job(config_name, raw)
            dataset = raw.get("dataset")
            if dataset is not None and str(dataset.get("name")).lower() == "imagefolder":  # (the others: downloads)
                key = OmegaConf.to_yaml(dataset)
                if key not in seen:
                    from ..train.data import check_source  # (torch: only for a sweep over image folders)

                    check_source(_typed(config_name, raw).dataset)
                    seen.add(key)
        except (UserError, ValueError) as e:
            raise UserError(f"multirun job #{num} ({' '.join(swept) or 'no swept value'}): "
                            f"{str(e).splitlines()[0]}") from None


def _resolve_resume_dir(argv: list[str], raw: DictConfig) -> None:
    """``scalesearch resume=true`` without hydra.run.dir: continue the newest run with these settings (unfinished
    first) instead of a new timestamped directory, so no empty run directory is left behind."""
    if raw.get("resume") is not True or any(a.lstrip("+").startswith("hydra.run.dir=") for a in argv):
        return
    try:
        cfg = _typed("config", raw)
    except Exception:  # noqa: BLE001 — a bad value: the app reports it properly
        return
    found = _newest_resumable(raw, cfg, "hydra.run.dir=<the run> (see its .hydra/overrides.yaml)")
    sys.argv.append(f"hydra.run.dir={found}")


def _newest_resumable(raw: DictConfig, cfg, instead: str) -> Path:
    """The run that ``resume=true`` without a run directory continues: the newest with these settings beside
    the default one (:func:`scalesearch.pipeline.find_resumable`); none is one line naming ``instead``."""
    from ..pipeline import find_resumable

    parent = Path(str(raw.hydra.run.dir)).parent
    found = find_resumable(parent, cfg)
    if found is None:
        raise UserError(f"resume=true but no run under {parent} has these settings; allowed: the settings of an "
                        f"earlier run, or {instead}")
    return found


# each app's name in rundir; a guest (rundir.GUESTS) given run_dir= claims that, any other app its Hydra run directory
# (compare: its out_dir= when given); validate and report never claim their Hydra run directory
_APP_NAMES = {"config": R.SEARCH, "generate": R.GENERATE, "nas": R.NAS, "ablate": R.ABLATE, "compare": R.COMPARE,
              "validate": R.VALIDATE, "report": R.REPORT}
_GUEST_ELSEWHERE = "run_dir=<a scalesearch run directory>"


def _job_run_dir(raw: DictConfig, argv: list[str]) -> Path | None:
    """The hydra.run.dir a (single) job will use: the command line's last one, else the app's conf; None when it
    needs Hydra to resolve it (${now:...}, ${hydra:...}, ${hydra.job.name}) or cannot be resolved here."""
    given = [a.partition("=")[2] for a in argv if "=" in a and a.partition("=")[0].lstrip("+") == "hydra.run.dir"]
    if given:
        value = given[-1]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
    elif "hydra" in raw:
        value = OmegaConf.to_container(raw.hydra.run, resolve=False).get("dir")
    else:
        return None
    if not isinstance(value, str) or not value or "${now:" in value or "${hydra" in value:
        return None
    if "${" in value:  # another key of the job's config (${dataset.name}): resolved against it
        key = "_scalesearch_run_dir"
        with open_dict(raw):
            raw[key] = value
            try:
                value = str(raw[key])
            except Exception:  # noqa: BLE001 — Hydra's to resolve (or to report)
                return None
            finally:
                del raw[key]
    return Path(value)


def _precheck_run_dirs(config_name: str, raw: DictConfig, argv: list[str]) -> None:
    """Before Hydra writes .hydra/ and the job log into the job's run directory: the refusals of the app's
    ``rundir.claim`` (another app's run, a run in use) for the directory it will claim. Nothing is created."""
    app = _APP_NAMES.get(config_name)
    if app is None:
        return
    if app in R.GUESTS:
        guest_dir = OmegaConf.select(raw, "run_dir", default=None)
        if guest_dir:
            R.precheck(str(guest_dir), app, guest=True, elsewhere=_GUEST_ELSEWHERE)
            return
        if app in (R.VALIDATE, R.REPORT):
            return  # (run_dir is not set: the app says so)
    out_dir = OmegaConf.select(raw, "out_dir", default=None) if app == R.COMPARE else None
    if out_dir:
        R.precheck(str(out_dir), app, elsewhere="another out_dir")
        return
    job_dir = _job_run_dir(raw, argv)
    if job_dir is not None:
        R.precheck(job_dir, app)


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
            if _is_multirun(sys.argv[1:]):
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
        C.check_moved(args)
        raw = _compose("config", args, "scalesearch")
        _check_job("config", raw)
        cfg = _typed("config", raw)
    except ValueError as e:
        raise UserError(str(e)) from None
    if run_dir is not None:
        where = Path(run_dir)
    else:
        where = _newest_resumable(raw, cfg, "run_dir=<the run>") if cfg.resume else Path(str(raw.hydra.run.dir))
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
