"""``scalesearch-validate run_dir=...``: the proxy-fidelity audit on a finished run.

The run's own settings (``search.json``) with the validation stage switched on (``validate.*`` from the
command line) are resumed in place: nothing already trained is trained again; the validation stage
retrains the top-k and random-k candidates longer (``validation.csv``), and then the decision, the
verdict, the family and the report are redone from the tables.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import SearchAppConfig, ValidateAppConfig
from ..plan.preflight import check_validate, migrate_settings
from ..run.rundir import VALIDATE, claim

__all__ = ["load_settings", "run_validate_app"]


def load_settings(run_dir: str | Path) -> SearchAppConfig:
    """The settings a search ran with, from its ``search.json`` (a one-line error naming the file)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..run.resume import read_state

    state = read_state(Path(run_dir))
    if state is None:
        raise ValueError(f"run_dir={run_dir} holds no search.json; allowed: a search run directory")
    try:
        stored = migrate_settings(state["config"])
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SearchAppConfig), stored))
    except OmegaConfBaseException as e:
        raise ValueError(f"{Path(run_dir) / 'search.json'} holds settings this version cannot read "
                         f"({str(e).splitlines()[0]}); allowed: a run of scalesearch >= 0.2") from None


def run_validate_app(cfg: ValidateAppConfig, out_dir: Path) -> dict | None:
    """Resume ``cfg.run_dir`` (a search run, held for this process: refused while another run uses it) with the
    validation stage on."""
    from ..pipeline import run_search

    if not cfg.run_dir:
        raise ValueError("run_dir is not set; allowed: scalesearch-validate run_dir=<a search run directory>")
    check_validate(cfg.validate)
    if not Path(cfg.run_dir).is_dir():
        load_settings(cfg.run_dir)  # its one-line refusal: no search.json there
    with claim(cfg.run_dir, VALIDATE, guest=True, elsewhere="run_dir=<a scalesearch run directory>") as run_dir:
        settings = load_settings(cfg.run_dir)
        settings = dataclasses.replace(settings, validate=dataclasses.replace(cfg.validate, enabled=True),
                                       cluster=cfg.cluster, resume=True, verbose=cfg.verbose)
        return run_search(settings, run_dir)
