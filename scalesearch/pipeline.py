"""The main job: plan → search → validate → decide → family → (paper family, ablation) → artifacts.

``run_search(cfg, run_dir)`` checks every setting, loads the data once, and runs each stage's
trainings through one :class:`~scalesearch.run.runner.Runner` (Ray Tune trials; a 2-node cluster runs
them on both nodes). Every stage's table is written as it grows; ``search.json`` says which stages
are done, so an interrupted run (SIGKILL, SIGINT, SIGTERM) resumes with ``resume=true`` and trains
only what no table records. The report only reads the tables and renders.

Here: the stages' order and the run's start and finish; the stages' drivers are in run/stages.py (the race's in
run/racing.py), what defines a run and how it resumes in run/resume.py, best.json's facts, summary.md and the
extension advice in report/artifacts.py.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from pathlib import Path

from .apps.generate import write_family
from .config import SearchAppConfig, trial_budget
from .decide.results import TABLES, aggregate, read_table
from .io import atomic_write_json, read_json
from .plan.jobs import budget_with_epochs_mult, is_paper
from .plan.space import check_search_inputs
from .report.artifacts import best_facts, race_facts, write_summary
from .run.interrupt import interrupted_by, on_stop
from .run.racing import race_rule
from .run.resume import SearchJob, State, depth_rounding, prepare_run_dir, run_context, stored_data
from .run.rundir import SEARCH, check_same_data, claim, data_summary
from .run.stages import (decide_best, train_ablation, train_confirmation, train_family, train_search,
                         train_validation)
from .scaling.coefficients import Coefficients
from .scaling.scaler import DEVICE_COSTS, Scaler
from .train.data import load_data

log = logging.getLogger("scalesearch")

__all__ = ["run_search", "SearchResult"]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A finished search as Python reads it (``scalesearch.search``): its run directory and best.json's facts,
    with the answers most callers want as attributes; everything else is in ``best`` and the run directory."""

    run_dir: Path
    best: dict  # best.json

    @classmethod
    def read(cls, run_dir: str | Path) -> "SearchResult":
        """The result of the finished run in ``run_dir`` (its best.json)."""
        return cls(Path(run_dir), read_json(Path(run_dir) / "best.json"))

    @property
    def coefficients(self) -> Coefficients:
        """The recommended α, β, γ (what the family is built from)."""
        return Coefficients(self.best["alpha"], self.best["beta"], self.best["gamma"])

    @property
    def decided(self) -> bool:
        """Whether the confidence set of the best holds only the pick (best.json ``method`` and ``level``)."""
        return bool(self.best.get("decided"))

    @property
    def headline(self) -> list[str]:
        """The verdict at a glance: summary.md's two lines under the shares (the pick; decided or not)."""
        return list(self.best.get("headline") or [])

    @property
    def shares(self) -> dict | None:
        """The model over shares (each dimension's effect with its interval; the optimum where located)."""
        return self.best.get("shares")

    @property
    def summary(self) -> Path:
        return self.run_dir / "summary.md"


def run_search(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Run (or resume) the whole job: plan → the stages (search, validation, family, ablation) → artifacts.
    Returns best.json's content."""
    space, baseline = check_search_inputs(cfg)  # bad input fails here, in seconds: before the run dir, data, Ray
    with claim(run_dir, SEARCH) as run_dir:  # this process's run (else refused: another app's, or in use)
        from .run.runner import Runner

        run = _plan(cfg, run_dir, space, baseline)
        try:
            with on_stop(run.state.interrupted), Runner(cfg.cluster, cfg.trials, run.run_dir, cfg.verbose) as runner:
                runner.share(run.data)
                ctx = _trial_context(run, runner)
                train_search(run, runner, ctx)
                train_validation(run, runner, ctx)
                decide_best(run)
                train_confirmation(run, runner, ctx)
                train_family(run, runner, ctx)
                train_ablation(run, runner, ctx)
            return _write(run)
        except BaseException as e:
            if (stop := interrupted_by(e)) is not None:
                run.state.interrupted(signal.Signals(stop.signum).name)
            elif isinstance(e, Exception):
                run.state.failed(e)
            raise


def _plan(cfg: SearchAppConfig, run_dir: Path, space, baseline) -> SearchJob:
    """The run directory (a new run, or a resume of the same settings, tables and data), the data."""
    old = prepare_run_dir(cfg, run_dir)
    log.info("run directory: %s%s", run_dir, " (resumed)" if old else "")
    if old is not None:
        for name in TABLES.values():  # a malformed table is refused now, before search.json is touched
            rows = read_table(run_dir / name)
            if name in (TABLES["search"], TABLES["validation"]):
                aggregate(rows)
    data = load_data(cfg.dataset)
    log.info("dataset %s: %d train / %d validation images, %d classes, base resolution %d px", data.name,
             len(data.train_y), len(data.val_y), data.num_classes, data.base_resolution)
    summary = data_summary(data)
    if old is not None:
        check_same_data(stored_data(run_dir, old), summary)
    budget = trial_budget(cfg.proxy, cfg.trials)
    if cfg.search.scheduler == "asha":
        budget = dataclasses.replace(budget, eval_every=1)
    return SearchJob(cfg, run_dir, space, baseline, data, State(run_dir, cfg, old, summary), run_context(cfg, data),
                     budget, time.time())


def _trial_context(run: SearchJob, runner):
    from .run.trial import trial_context

    s, d = run.cfg.search, run.data
    ctx = trial_context(run.cfg.proxy, run.cfg.trials, d, budget=run.budget, metric=s.metric)
    measure = runner.measurer(ctx, s.cost, run.run_dir / "costs.json") if s.cost in DEVICE_COSTS else None
    run.scaler = Scaler(run.baseline, d.base_resolution, d.num_classes, d.in_channels, s.constraint, s.cost,
                        run.space.target, s.cost_tolerance, (run.space.gamma.low, run.space.gamma.high),
                        s.resolution_multiple, depth_rounding(run.cfg), measure)
    return ctx


def _write(run: SearchJob) -> dict:
    """best.json, family.json/.md, specs/, summary.md, the report; then the run is complete."""
    cfg, s, best, data = run.cfg, run.cfg.search, run.best, run.data
    wall = time.time() - run.t0
    race = (race_facts(run.race, race_rule(s), "steps" if run.budget.steps else "epochs")
            if run.race is not None else None)
    v_budget = (dataclasses.asdict(budget_with_epochs_mult(cfg.proxy, cfg.validate.epochs_mult))
                if cfg.validate.enabled else None)
    paper = run.paper or next((c["candidate"] for c in run.ranked if is_paper(c, s.constraint)), None)
    best_json = best_facts(run, wall=wall, race=race, paper=paper, validation_budget=v_budget)
    atomic_write_json(run.run_dir / "best.json", best_json)
    a, b, g = best["alpha"], best["beta"], best["gamma"]
    write_family(run.members, run.run_dir, f"Family for α={a:g}, β={b:g}, γ={g:g} on {data.name} (base resolution "
                 f"{data.base_resolution} px, {data.num_classes} classes, constraint {s.constraint})",
                 num_classes=data.num_classes,
                 extra={"coefficients": [a, b, g], "base_resolution": data.base_resolution, "constraint": s.constraint,
                        "cost": s.cost, "depth_rounding": depth_rounding(cfg),
                        "resolution_multiple": s.resolution_multiple,
                        "target": run.space.target, "in_channels": data.in_channels})
    write_summary(run)
    log.info("best: %s (decided by %s) — %s", best["candidate"], run.decided_by,
             run.words.text.split(" — ")[0].strip("*"))
    if cfg.report.enabled:
        from .report.writer import write_report

        run.state.stage("report", "running")
        write_report(run.run_dir, cfg.report)
        run.state.stage("report", "complete")
    run.state.doc.update(status="complete", wall_s=round(wall, 2))
    run.state.write()
    log.info("done in %.0f s: %s", time.time() - run.t0, run.run_dir / "summary.md")
    return best_json
