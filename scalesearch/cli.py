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

import dataclasses
import functools
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from . import __version__
from . import config as C
from .paths import CONF_DIR as _CONF_PATH
from .interrupt import interrupted_by

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


class UserError(Exception):
    """A bad value from the user: reported as one line, exit code 2."""


def _install_signal_handlers() -> None:
    from .interrupt import install

    install()


def _fail(msg: str, code: int = 2):
    print(f"scalesearch: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def _interrupted(e, resume: str | None):
    hint = f"; resume with: {resume}" if resume else ""
    print(f"scalesearch: interrupted by {e}: what finished is recorded and the run stays resumable{hint}",
          file=sys.stderr, flush=True)
    sys.exit(128 + e.signum)


def friendly_errors(resume_hint=None):
    """Report user errors (ValueError, OSError, UserError, KeyError) as one line and exit 2; an interrupt as
    one line saying how to resume, exit 130 (SIGINT) / 143 (SIGTERM)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(cfg, *args, **kwargs):
            try:
                return fn(cfg, *args, **kwargs)
            except (UserError, ValueError, OSError, KeyError) as e:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                _fail(msg)
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
            raise UserError(f"{key}={value} cannot be created: {existing} is not a directory; allowed: a writable directory")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as e:
            raise UserError(f"{key}={value} is not writable ({existing}: {e.strerror}); allowed: a writable directory") from None


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
        raise UserError(f"{unknown[0]} is not a setting of this app; allowed: the keys of its config ({names} and their "
                        "sub-keys; see --help or --cfg job)")


def to_object(cfg: DictConfig, schema):
    """The validated dataclass behind a composed config; unknown keys are refused with one line."""
    _refuse_unknown(cfg, schema)
    return OmegaConf.to_object(cfg)


# ---------------------------------------------------------------- help and version
GROUPS = {"config": ["dataset", "proxy", "search", "cluster", "experiment"], "nas": ["dataset", "proxy", "search",
                                                                                    "cluster", "experiment"],
          "ablate": ["dataset", "proxy", "search", "cluster"], "validate": ["cluster"]}
MAIN_KEYS = {
    "config": [
        ("search.strategy", "grid: the constrained lattice; optuna: sample the surface"),
        ("search.constraint", "measured: every candidate at target^φ measured cost as built; nominal: the paper's α·β²·γ²"),
        ("search.cost", "what is held equal: macs, activations, latency or train_step (measured on the trials' device)"),
        ("search.n_seeds", "seeds per candidate (a decision needs >= 3)"),
        ("search.max_points", "grid size (farthest-point sampling over the surface; null: all)"),
        ("search.phi", "the compound coefficient the candidates are built at"),
        ("search.cpus_per_trial", "Ray resources per trial (also search.gpus_per_trial, e.g. 0.25 = 4 trials per GPU)"),
        ("proxy.epochs", "the proxy budget (also proxy.batch_size, proxy.lr, proxy.optimizer)"),
        ("dataset.name", "synthetic, imagefolder (dataset.root=DIR or ARCHIVE), cifar10, cifar100, svhn, fashionmnist"),
        ("dataset.base_resolution", "the baseline proxy's input size"),
        ("validate.enabled", "retrain the top validate.top_k + validate.random_k candidates validate.epochs_mult times longer"),
        ("report.train_family", "proxy-train the found family up to report.max_phi (report.compare_paper: the paper's too)"),
        ("family_phis", "the members emitted (negative: below B0)"),
        ("cluster.address", "host:port of a Ray cluster (null: start Ray here)"),
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
               ("report.min_gain_per_doubling", "the marginal rule's threshold"), ("report.top_k", "rows of the ranking")],
    "ablate": [("run_dir", "a search run: its best is one compound variant, results go there"),
               ("phis", "nominal cost 2^φ per variant"), ("seeds", "seeds per variant"), ("compound", "[best, paper]")],
    "nas": [("nas.objective", "weighted (MnasNet reward) or pareto"), ("nas.cost", "macs or latency"),
            ("nas.num_samples", "architectures tried"), ("chain.search", "then search the coefficients on the found baseline"),
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


def _pre_hydra(config_name: str, prog: str) -> None:
    """--version, --help, and the checks that must come before Hydra creates the run directory: the command
    line composed as Hydra will compose it (a bad override or an unknown key is one line, exit 2, and leaves
    no run directory), and ``resume=true`` pointed at the run it continues."""
    argv = sys.argv[1:]
    if "--version" in argv or "-V" in argv:
        print(f"{prog} {__version__}")
        sys.exit(0)
    if "--help" in argv or "-h" in argv:
        print(app_help(config_name, prog))
        sys.exit(0)
    try:
        _check_output_dirs(argv)
        raw = _compose(config_name, argv, prog)
        if raw is not None:
            _refuse_unknown(raw, SCHEMAS[config_name][1])
            if config_name in EARLY_CHECKS:  # plain checks of the values: in a second, before torch is imported
                app_cfg = OmegaConf.masked_copy(raw, [k for k in raw if k != "hydra"])
                EARLY_CHECKS[config_name](OmegaConf.to_object(OmegaConf.merge(
                    OmegaConf.structured(SCHEMAS[config_name][1]), app_cfg)))
            if config_name == "config":
                _resolve_resume_dir(argv, raw)
    except (UserError, ValueError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(str(e).splitlines()[0])


def _search_prechecks(cfg) -> None:
    """Everything ``run_search`` checks before it writes anything, without torch or Ray (one second)."""
    from .space import check_search_inputs

    check_search_inputs(cfg)


EARLY_CHECKS = {"config": _search_prechecks, "nas": C.check_nas, "generate": C.check_generate}

# Hydra flags after which Hydra composes something else than the app's config from its overrides
_OTHER_COMPOSITION = ("-m", "--multirun", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                      "--experimental-rerun", "-sc", "--shell-completion")
_HYDRA_HINTS = ("To append", "See https", "Config search path", "Available options", "Set the environment")


def _compose(config_name: str, argv: list[str], prog: str) -> DictConfig | None:
    """The app's config (with ``hydra``) composed from the command line's overrides (those of ``hydra.*`` aside);
    None where Hydra composes otherwise (a multirun, another config). A composition error is a one-line
    UserError: its message and cause without Hydra's hints, and the options of a missing group option."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(a.split("=", 1)[0] in _OTHER_COMPOSITION for a in argv):
        return None
    overrides = [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))
                 and not a.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        parts = [" ".join(line.strip() for line in str(x).splitlines()
                          if line.strip() and not line.startswith((" ", "\t", *_HYDRA_HINTS))).rstrip(".")
                 for x in (e, e.__cause__) if x is not None]
        options = getattr(e, "options", None)
        allowed = ", ".join(options) if options else f"the keys and values {prog} --help and {prog} --cfg job show"
        raise UserError(f"{': '.join(p for p in parts if p)}; allowed: {allowed}") from None


def _resolve_resume_dir(argv: list[str], raw: DictConfig) -> None:
    """``scalesearch resume=true`` without hydra.run.dir: continue the newest run with these settings (unfinished
    first) instead of a new timestamped directory, so no empty run directory is left behind."""
    if raw.get("resume") is not True or any(a.lstrip("+").startswith("hydra.run.dir=") for a in argv):
        return
    from .search import find_resumable

    parent = Path(str(raw.hydra.run.dir)).parent
    with open_dict(raw):
        del raw["hydra"]
    try:
        cfg = OmegaConf.to_object(raw)
    except Exception:  # noqa: BLE001 — a bad value: the app reports it properly
        return
    found = find_resumable(parent, cfg)
    if found is None:
        raise UserError(f"resume=true but no run under {parent} has these settings; allowed: the settings of an earlier "
                        "run, or hydra.run.dir=<the run> (see its .hydra/overrides.yaml)")
    sys.argv.append(f"hydra.run.dir={found}")


def hydra_app(config_name: str, prog: str, job, resume_hint=None):
    """A Hydra app over ``conf/<config_name>.yaml`` validated against its schema: ``job(cfg_object, run_dir)``
    with one-line user errors and clean interrupts."""
    _, schema = SCHEMAS[config_name]

    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    @friendly_errors(resume_hint)
    def app(cfg: DictConfig):
        return job(to_object(cfg, schema), run_dir())

    def entry():
        _install_signal_handlers()
        _pre_hydra(config_name, prog)
        try:
            return app()
        except SystemExit:
            raise
        except BaseException as e:  # an interrupt outside the job (composition, Hydra's own bookkeeping)
            stop = interrupted_by(e)
            if stop is None:
                raise
            _interrupted(stop, None)

    return entry


def _search_job(cfg, out):
    from .search import run_search

    best = run_search(cfg, out)
    return None if best is None else best.get("accuracy_mean")


def _resume_hint(cfg) -> str:
    try:
        return f"scalesearch resume=true hydra.run.dir={run_dir()} (with the same settings)"
    except Exception:  # noqa: BLE001
        return "scalesearch resume=true with the same settings"


def _generate_job(cfg, out):
    from .generate import run_generate

    return run_generate(cfg, out)


def _report_job(cfg, out):
    from .report import run_report_app

    return run_report_app(cfg, out)


def _validate_job(cfg, out):
    from .validate import run_validate_app

    return run_validate_app(cfg, out)


def _ablate_job(cfg, out):
    from .ablation import run_ablate_app

    return run_ablate_app(cfg, out)


def _nas_job(cfg, out):
    from .nas import run_nas_app

    return run_nas_app(cfg, out)


def _compare_job(cfg, out):
    from .compare import run_compare_app

    return run_compare_app(cfg, out)


search_main = hydra_app("config", "scalesearch", _search_job, _resume_hint)
generate_main = hydra_app("generate", "scalesearch-generate", _generate_job)
report_main = hydra_app("report", "scalesearch-report", _report_job)
validate_main = hydra_app("validate", "scalesearch-validate", _validate_job,
                          lambda cfg: f"scalesearch-validate run_dir={cfg.run_dir}")
ablate_main = hydra_app("ablate", "scalesearch-ablate", _ablate_job,
                        lambda cfg: f"scalesearch-ablate resume=true hydra.run.dir={run_dir()} (or the same run_dir=)")
nas_main = hydra_app("nas", "scalesearch-nas", _nas_job, lambda cfg: f"scalesearch-nas resume=true hydra.run.dir={run_dir()}")
compare_main = hydra_app("compare", "scalesearch-compare", _compare_job)


def main() -> None:  # console script `scalesearch`
    search_main()
