"""The command line composed and checked as Hydra will compose it, before Hydra runs (so a bad override, an unknown
key or a bad value is one line, exit 2, and leaves no run directory): every app's settings dataclass registered with
Hydra's ConfigStore (``SCHEMAS``), the composition (a multirun: every job of the sweep), the apps' plain checks,
``resume=true`` pointed at the run it continues, and the run directory's refusals (``rundir.precheck``)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import tempfile
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from .. import config as C
from ..paths import CONF_DIR as _CONF_PATH
from ..plan import preflight as P
from ..run import rundir as R

__all__ = ["CONF_DIR", "SCHEMAS", "UserError", "to_object", "early_checks", "check_job", "typed", "EARLY_CHECKS",
           "app_overrides", "is_multirun", "compose_config", "newest_resumable"]

CONF_DIR = str(_CONF_PATH)  # the packaged conf/ (wheel) or <repo>/conf; $SCALESEARCH_CONF wins




cs = ConfigStore.instance()
SCHEMAS = {"config": ("search_schema", C.SearchAppConfig), "generate": ("generate_schema", C.GenerateConfig),
           "report": ("report_schema", C.ReportAppConfig), "validate": ("validate_schema", C.ValidateAppConfig),
           "ablate": ("ablate_schema", C.AblateAppConfig), "nas": ("nas_schema", C.NASAppConfig),
           "compare": ("compare_schema", C.CompareAppConfig)}
for _name, _schema in SCHEMAS.values():
    cs.store(name=_name, node=_schema)


class UserError(ValueError):
    """A bad value from the user: reported as one line, exit code 2."""


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


def early_checks(config_name: str, argv: list[str], prog: str) -> None:
    """The output directories; the config composed and checked (a multirun: every job of the sweep); resume=true."""
    _check_output_dirs(argv)
    P.check_moved(app_overrides(argv))
    if any(a.split("=", 1)[0] in _OTHER_COMPOSITION for a in argv):
        return  # Hydra composes something else than the app's config
    if is_multirun(argv):
        _check_sweep(config_name, argv, prog)
        return
    raw = compose_config(config_name, app_overrides(argv), prog)
    check_job(config_name, raw)
    if config_name == "config":
        _resolve_resume_dir(argv, raw)
    _precheck_run_dirs(config_name, raw, sys.argv[1:])


def _search_prechecks(cfg) -> None:
    """Everything ``run_search`` checks before it writes anything, without torch or Ray (one second)."""
    from ..plan.space import check_search_inputs

    check_search_inputs(cfg)


def check_job(config_name: str, raw: DictConfig) -> None:
    """The composed config of one job: no unknown key, and the app's plain checks of the values (in a second,
    before torch is imported)."""
    _refuse_unknown(raw, SCHEMAS[config_name][1])
    if config_name in EARLY_CHECKS:
        EARLY_CHECKS[config_name](typed(config_name, raw))


def typed(config_name: str, raw: DictConfig):
    """The app's config dataclass from a composed config (its ``hydra`` node left out)."""
    app_cfg = OmegaConf.masked_copy(raw, [k for k in raw if k != "hydra"])
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SCHEMAS[config_name][1]), app_cfg))


EARLY_CHECKS = {"config": _search_prechecks, "nas": P.check_nas, "generate": P.check_generate}


# Hydra flags after which Hydra composes something else than the app's config from its overrides
_OTHER_COMPOSITION = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--experimental-rerun",
                      "-sc", "--shell-completion")


_HYDRA_HINTS = ("To append", "See https", "Config search path", "Available options", "Set the environment")


def app_overrides(argv: list[str]) -> list[str]:
    """The command line's overrides of the app's config (those of ``hydra.*`` aside)."""
    return [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))
            and not a.lstrip("+~").startswith("hydra")]


def is_multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") or a.replace(" ", "") == "hydra.mode=MULTIRUN" for a in argv)


def compose_config(config_name: str, overrides: list[str], prog: str) -> DictConfig:
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
    for num, (job, swept) in enumerate(_sweep_jobs(app_overrides(argv), prog)):
        try:
            raw = compose_config(config_name, job, prog)
            check_job(config_name, raw)
            dataset = raw.get("dataset")
            if dataset is not None and str(dataset.get("name")).lower() == "imagefolder":  # (the others: downloads)
                key = OmegaConf.to_yaml(dataset)
                if key not in seen:
                    from ..train.data import check_source  # (torch: only for a sweep over image folders)

                    check_source(typed(config_name, raw).dataset)
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
        cfg = typed("config", raw)
    except Exception:  # noqa: BLE001 — a bad value: the app reports it properly
        return
    found = newest_resumable(raw, cfg, "hydra.run.dir=<the run> (see its .hydra/overrides.yaml)")
    sys.argv.append(f"hydra.run.dir={found}")


def newest_resumable(raw: DictConfig, cfg, instead: str) -> Path:
    """The run that ``resume=true`` without a run directory continues: the newest with these settings beside
    the default one (:func:`scalesearch.run.resume.find_resumable`); none is one line naming ``instead``."""
    from ..run.resume import find_resumable

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
