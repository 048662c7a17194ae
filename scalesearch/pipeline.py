"""The main job: plan → search → validate → decide → family → (paper family, ablation) → artifacts.

``run_search(cfg, run_dir)`` checks every setting, loads the data once, and runs each stage's
trainings through one :class:`~scalesearch.run.runner.Runner` (Ray Tune trials; a 2-node cluster runs
them on both nodes). Every stage's table is written as it grows; ``search.json`` says which stages
are done, so an interrupted run (SIGKILL, SIGINT, SIGTERM) resumes with ``resume=true`` and trains
only what no table records. The report only reads the tables and renders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shlex
import signal
import tempfile
import threading
import time
from pathlib import Path


from .config import SearchAppConfig, TrialsConfig, flatten, migrate_settings, search_sampler, trial_budget
from .train.data import accuracy_half_width, load_data
from .apps.generate import write_family
from .run.interrupt import interrupted_by, mark_interrupted, on_stop, tell
from .io import atomic_write_json, atomic_write_text, read_json
from .plan.jobs import (SEARCH_ROW, OptunaSpace, budget_with_epochs_mult, family_jobs, family_probes, is_paper, job,
                   make_optuna_job, search_jobs, select_grid, train_id, validation_jobs)
from .train.proxy import rung_steps, steps_per_epoch, train_batch
from .plan.race import STOPS, RaceRule, race, rung_epochs, story
from .decide.results import (CONFIRMATION_COLUMNS, FAMILY_COLUMNS, FINISHED, SEARCH_COLUMNS, TABLES, VALIDATION_COLUMNS,
                      aggregate, read_table)
from .run.rundir import SEARCH, check_same_data, claim, data_summary
from .scaling.scaler import PAPER, DEVICE_COSTS, Coefficients, Scaler, candidate_id
from .plan.confirm import Confirmation, confirm, confirmation_jobs
from .decide.shares import ShareModel, run_share_model
from .plan.space import check_search_inputs
from .decide.stats import MIN_SEEDS
from .decide.verdict import decide, fidelity, pooled_sd, summary_markdown, verdict

log = logging.getLogger("scalesearch")

__all__ = ["run_search", "config_fingerprint", "settings_diff", "prepare_run_dir",
           "depth_rounding", "budget_str", "run_context", "find_resumable", "stored_data"]

# settings that define a run's results (a resume must keep them); the rest may change between attempts
RESULT_KEYS = ("dataset", "proxy", "search", "model", "seed")
# a grid run may be extended in place with more seeds: its seeds are jobs, the finished ones are kept (an Optuna
# study's seeds live in Tune's Repeater, so there they define the run); a race replays its decisions from its table,
# so every setting of its rule may change (more seeds, another rung, a larger budget): only what is new trains
EXTENSIBLE_GRID_KEYS = ("n_seeds",)
MAX_EXTEND = 4  # the most seeds, as a multiple of the run's, an extension command asks for (the race: of max_seeds)
# the race's rule (replayed from its table) and search.delta (the report's "within δ" elsewhere): no training's result
RACE_KEYS = ("rungs", "max_seeds", "seed_step", "budget", "drop", "delta", "eta")


# ---------------------------------------------------------------- settings and the run directory
def _result_settings(config: dict) -> dict:
    """The settings that define a run's results (``config``: as stored, of any version, or as this one has them);
    the trials' settings never do, but for the timed batch when the latency is the cost held equal."""
    config = migrate_settings(config)
    d = {k: json.loads(json.dumps(config.get(k), default=str)) for k in RESULT_KEYS}
    (d.get("proxy") or {}).pop("threads", None)
    search = d.get("search") or {}
    if search.get("cost") == "latency":
        search["latency_batch"] = (config.get("trials") or {}).get("latency_batch", TrialsConfig.latency_batch)
    for k in RACE_KEYS + (EXTENSIBLE_GRID_KEYS if search.get("strategy") in ("grid", "race") else ()):
        search.pop(k, None)
    return d


def config_fingerprint(cfg: SearchAppConfig) -> str:
    blob = json.dumps(_result_settings(dataclasses.asdict(cfg)), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def settings_diff(stored: dict, cfg: SearchAppConfig) -> list[str]:
    """The result-defining settings that differ: ['search.n_seeds: 2 there, 3 here', ...]."""
    a, b = flatten(_result_settings(stored)), flatten(_result_settings(dataclasses.asdict(cfg)))
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_state(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "search.json"
    if not path.is_file():
        return None
    try:
        state = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({str(e).splitlines()[0]}); allowed: the search.json a search "
                         "wrote (or a new hydra.run.dir)") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path} holds no search settings; allowed: the search.json a search wrote")
    return state


def find_resumable(parent: Path, cfg: SearchAppConfig) -> Path | None:
    """The run under ``parent`` to continue: the newest unfinished one with these settings, else the newest
    finished one (whose missing stages are then run)."""
    found = []
    for state_file in Path(parent).glob("*/search.json"):
        try:
            state = read_state(state_file.parent)
        except ValueError:
            continue
        if state and not settings_diff(state["config"], cfg):
            found.append((state.get("status") != "complete", state_file.parent.stat().st_mtime, state_file.parent))
    return max(found)[2] if found else None


def prepare_run_dir(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Check that ``run_dir`` may be written (a new run, or ``resume=true`` of the run it holds, same
    settings); returns the run's state (None for a new run)."""
    state = read_state(run_dir)
    if state is not None and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a search; allowed: resume=true to continue or extend it, or a new "
                         "hydra.run.dir")
    if state is None and cfg.resume:
        raise ValueError(f"resume=true but {run_dir} holds no search with these settings; allowed: resume=true with "
                         "the settings of an earlier run (the newest such run beside it is continued) or "
                         "hydra.run.dir=<that run>")
    if state is not None:
        diff = settings_diff(state["config"], cfg)
        if diff:
            raise ValueError(f"resume=true but {run_dir} holds a search with other settings ({'; '.join(diff[:3])}); "
                             "allowed: the same settings")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror}); allowed: a writable "
                         "hydra.run.dir") from None
    return state


def depth_rounding(cfg) -> str:
    r = cfg.model.depth_rounding
    return r if r != "auto" else ("total" if cfg.search.constraint == "measured" else "stage")


def budget_str(p, n_train: int | None = None) -> str:
    """A budget as the run's texts say it; with ``n_train``, the batch the trainings used (proxy.train_batch caps
    proxy.batch_size at the training images)."""
    size = f"{p.steps} steps" if p.steps else f"{p.epochs} epochs"
    used = train_batch(p.batch_size, n_train) if n_train else p.batch_size
    batch = (f"batch {used} (proxy.batch_size={p.batch_size}, capped at the {n_train} training images)"
             if used != p.batch_size else f"batch {p.batch_size}")
    return f"{size}, {batch}, {p.optimizer} lr {p.lr:g}"


def run_context(cfg: SearchAppConfig, data) -> dict:
    """What summary, best.json and the report say about the run's setting."""
    s = cfg.search
    n_val = len(data.val_y)
    text = (f"every candidate built at depth α^φ and width β^φ with its resolution solved so that its measured "
            f"{s.cost} is target^φ (± search.cost_tolerance={s.cost_tolerance:g}) of the baseline proxy's"
            if s.constraint == "measured" else
            "the paper's α·β²·γ² = target with the proxy at round(base·γ^φ); measured cost reported "
            "beside it")
    return {"dataset": data.name, "dataset_fingerprint": data.fingerprint, "num_classes": data.num_classes,
            "chance": 1.0 / data.num_classes, "base_resolution": data.base_resolution, "val_images": n_val,
            "val_half_width": round(accuracy_half_width(n_val), 4), "strategy": s.strategy, "constraint": s.constraint,
            "constraint_text": text, "cost": s.cost, "phi": s.phi, "budget": budget_str(cfg.proxy, len(data.train_y)),
            "seeds": [cfg.seed + k for k in range(s.n_seeds)], "depth_rounding": depth_rounding(cfg),
            "resolution_multiple": s.resolution_multiple}


# ---------------------------------------------------------------- stages
class _State:
    """search.json: the settings, the fingerprint, the status and every stage's progress (atomic)."""

    def __init__(self, run_dir: Path, cfg: SearchAppConfig, old: dict | None, data: dict):
        self.path, self.cfg = run_dir / "search.json", cfg
        self.doc = {"fingerprint": config_fingerprint(cfg), "started": time.time(), "stages": {},
                    **(old or {}), "config": dataclasses.asdict(cfg), "status": "running", "data": data}
        self.doc.pop("interrupted", None)
        self.doc.pop("error", None)
        self.lock, self.written = threading.Lock(), False  # the watch thread writes too (:meth:`interrupted`)
        # a new run is on record at once; a resume writes when its first stage starts, so that a refusal before
        # it (Ray's resources, the plan, the tables, the data) leaves a finished run's search.json as it was
        if old is None:
            self.write()

    def write(self):
        with self.lock:
            atomic_write_json(self.path, self.doc)
            if not self.written:
                tell("record", str(self.path))  # the supervisor's, should the process end before it records a stop
            self.written = True

    def stage(self, name: str, status: str, **extra):
        now = time.time()
        when = {"started": now} if status == "running" else {"finished": now}
        with self.lock:
            self.doc["stages"][name] = {**self.doc["stages"].get(name, {}), "status": status, **when, **extra}
        self.write()

    def failed(self, e: Exception):
        """The run ended on an error after it was on record (a refusal by the memory estimate, Ray, a table):
        status ``failed`` with the error's first line, never a ``running`` nobody runs (a resume sets it again)."""
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        with self.lock:
            if not self.written or self.doc.get("status") != "running":
                return
            self.doc.update(status="failed", error=line)
        self.write()

    def interrupted(self, signal_name: str):
        """A stop signal came (SIGINT, SIGTERM, SIGHUP): status ``interrupted`` (a resume sets it ``running``)."""
        with self.lock:
            if not self.written or not mark_interrupted(self.doc, signal_name):
                return  # (a resume interrupted before its first write leaves search.json as it was)
        self.write()


def _describe(r: dict) -> str:
    if r.get("rung") is not None:
        return f"α={r.get('alpha')} β={r.get('beta')} γ={r.get('gamma')} rung {r['rung']:g}× seed {r.get('seed')}"
    if r.get("family"):
        return f"{r['family']} {r.get('name')} seed {r.get('seed')}"
    if r.get("method"):
        return f"{r['method']} φ={r.get('phi'):g} seed {r.get('seed')}"
    return f"α={r.get('alpha')} β={r.get('beta')} γ={r.get('gamma')} seed {r.get('seed')}"


def _search_stage(cfg, run_dir, space, scaler, ctx, data):
    """The search stage (grid jobs or an Optuna searcher) and the infeasible candidates met."""
    from .run.runner import JobStage, SearcherStage

    s = cfg.search
    seeds = [cfg.seed + k for k in range(s.n_seeds)]
    budget = ctx.budget
    scheduler = None
    if s.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="epoch", max_t=max(budget.epochs, s.grace_period),
                                  grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    common = dict(name="search", table=run_dir / TABLES["search"], columns=SEARCH_COLUMNS, scheduler=scheduler,
                  describe=_describe)
    if s.strategy in ("grid", "race"):
        plan = _grid_plan(cfg, run_dir, space, scaler, data)
        if s.strategy == "race":
            log.info("race: %d candidates (%d infeasible met: %s)", len(plan["candidates"]), len(plan["infeasible"]),
                     ", ".join(c["candidate"] for c in plan["infeasible"]) or "none")
            return JobStage(ctx=dataclasses.replace(ctx, fault_stage=True), jobs=[], **common), plan
        log.info("grid: %d candidates x %d seed(s) = %d trials (%d infeasible met: %s)", len(plan["candidates"]),
                 len(seeds), len(plan["candidates"]) * len(seeds), len(plan["infeasible"]),
                 ", ".join(c["candidate"] for c in plan["infeasible"]) or "none")
        jobs = search_jobs(plan["candidates"], seeds, budget, data.fingerprint)
        return JobStage(ctx=dataclasses.replace(ctx, fault_stage=True), jobs=jobs, **common), plan
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    sampler = search_sampler(cfg)
    storage = None
    if s.storage:
        url = s.storage
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(run_dir / url[len("sqlite:///"):])
        storage = optuna.storages.RDBStorage(url)
    searcher = OptunaSearch(space=OptunaSpace(space, scaler, s.phi), metric=s.metric, mode="max", sampler=sampler,
                            seed=cfg.seed, storage=storage,
                            study_name=f"scalesearch-{config_fingerprint(cfg)}" if storage else None)
    alg = Repeater(searcher, repeat=s.n_seeds) if s.n_seeds > 1 else searcher
    log.info("optuna (%s): %d samples x %d seed(s)", s.sampler, s.num_samples, s.n_seeds)
    ctx = dataclasses.replace(ctx, job_from_config=make_optuna_job(cfg.seed, budget, data.fingerprint))
    return SearcherStage(ctx=ctx, searcher=alg, num_samples=s.num_samples * s.n_seeds, **common), {"infeasible": []}


def _grid_plan(cfg, run_dir, space, scaler, data) -> dict:
    """The grid's candidates (and the infeasible ones met), planned once: candidates.json."""
    s = cfg.search
    plan_file = run_dir / "candidates.json"
    if plan_file.is_file():  # the plan of an interrupted attempt: the same jobs (device costs are noisy)
        plan = read_json(plan_file)
    else:
        chosen, infeasible = select_grid(space, scaler, s.phi, s.thin, s.max_points, s.include_paper, s.design)
        plan = {"candidates": chosen, "infeasible": [{k: v for k, v in c.items() if k != "spec"} for c in infeasible]}
        atomic_write_json(plan_file, plan)
    if not plan["candidates"]:
        raise ValueError(f"no grid candidate can be built within search.cost_tolerance={s.cost_tolerance:g} of the "
                         f"target cost at base {data.base_resolution} px ({len(plan['infeasible'])} tried: "
                         f"{plan['infeasible'][0]['reason'] if plan['infeasible'] else 'none'}); allowed: a larger "
                         "search.cost_tolerance, a larger dataset.base_resolution, or search.constraint=nominal")
    return plan


def _with_table(rows: list[dict], name: str) -> list[dict]:
    return [{**r, "_table": name} for r in rows]


@dataclasses.dataclass
class _SearchJob:
    """One run's fixed facts (planned before anything trains) and what its stages produce."""

    cfg: SearchAppConfig
    run_dir: Path
    space: object
    baseline: object
    data: object = None
    state: _State = None
    context: dict = None
    budget: object = None
    t0: float = 0.0
    # produced by the stages
    rows: list = dataclasses.field(default_factory=list)
    infeasible: list = dataclasses.field(default_factory=list)
    ranked: list = dataclasses.field(default_factory=list)
    v_rows: list = dataclasses.field(default_factory=list)
    v_ranked: list | None = None
    fid: dict | None = None
    best: dict | None = None
    decided_by: str = "search"
    paper: str | None = None
    verdict: dict | None = None
    members: list = dataclasses.field(default_factory=list)
    f_rows: list = dataclasses.field(default_factory=list)
    race: object = None  # the race's last state (search.strategy=race)
    race_rows: list = dataclasses.field(default_factory=list)  # its last look's trainings (they decide)
    race_text: str = ""
    scaler: Scaler = None  # the rule on this run's data and cost (with the device measurer once Ray is up)
    shares: ShareModel | None = None  # the model over the candidates' shares of all the run's trainings
    decision: tuple = ()  # (the deciding stage's rows, its budget): what a confirmation run is compared with
    confirmation: Confirmation | None = None  # the optimum of the model over shares, trained and decided

    def family(self, coeffs: Coefficients) -> list:
        """The family of ``coeffs`` by the search's own scaler: its constraint and its cost, a device cost
        included, so that (measured) B1 is the searched candidate by construction."""
        return self.scaler.family(coeffs, self.cfg.family.phis, timed_up_to=self.cfg.family.max_phi)


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
                _search(run, runner, ctx)
                _validate(run, runner, ctx)
                _decide(run)
                _confirm(run, runner, ctx)
                _train_family(run, runner, ctx)
                _ablate(run, runner, ctx)
            return _write(run)
        except BaseException as e:
            if (stop := interrupted_by(e)) is not None:
                run.state.interrupted(signal.Signals(stop.signum).name)
            elif isinstance(e, Exception):
                run.state.failed(e)
            raise


def _plan(cfg: SearchAppConfig, run_dir: Path, space, baseline) -> _SearchJob:
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
    return _SearchJob(cfg, run_dir, space, baseline, data, _State(run_dir, cfg, old, summary), run_context(cfg, data),
                      budget, time.time())


def stored_data(run_dir: Path, state: dict) -> dict | None:
    """The data summary a run started on: search.json's; a run from before it was stored: what its best.json
    says (fingerprint, validation images, classes), else None (nothing to check)."""
    if isinstance(state.get("data"), dict):
        return state["data"]
    best = Path(run_dir) / "best.json"
    try:
        b = read_json(best) if best.is_file() else None
    except (OSError, ValueError):
        b = None
    if not isinstance(b, dict):
        return None
    return {"fingerprint": b.get("dataset_fingerprint"), "val_images": b.get("val_images"),
            "classes": b.get("num_classes")}


def _trial_context(run: _SearchJob, runner):
    from .run.runner import trial_context

    s, d = run.cfg.search, run.data
    ctx = trial_context(run.cfg.proxy, run.cfg.trials, d, budget=run.budget, metric=s.metric)
    measure = runner.measurer(ctx, s.cost, run.run_dir / "costs.json") if s.cost in DEVICE_COSTS else None
    run.scaler = Scaler(run.baseline, d.base_resolution, d.num_classes, d.in_channels, s.constraint, s.cost,
                        run.space.target, s.cost_tolerance, (run.space.gamma.low, run.space.gamma.high),
                        s.resolution_multiple, depth_rounding(run.cfg), measure)
    return ctx


def _search(run: _SearchJob, runner, ctx) -> None:
    stage, plan = _search_stage(run.cfg, run.run_dir, run.space, run.scaler, ctx, run.data)
    _check_family_memory(run, runner, ctx, plan.get("candidates"))
    run.infeasible = plan["infeasible"]
    run.state.stage("search", "running")
    if run.cfg.search.strategy == "race":
        _race(run, runner, stage, plan["candidates"])
    else:
        run.rows = runner.run(stage)
        run.ranked = aggregate(run.rows)
    run.state.stage("search", "complete", trials=len(run.rows))
    if not run.ranked:
        _write_summary(run)
        raise ValueError(f"no trial of the search finished ok (see {run.run_dir / TABLES['search']}); nothing to "
                         "select")


def _check_family_memory(run: _SearchJob, runner, ctx, candidates: list[dict] | None) -> None:
    """Before the search trains: the largest family member the family stage would train (the largest of
    family.phis up to family.max_phi) of every family the search may pick — each grid or race candidate's, each
    lattice point's of the space for Optuna — and of the paper's must fit a trial's memory, and so must the
    ablation's variants (family.ablation). Refused naming the largest and the family.max_phi at which every family
    fits; the family stage checks its exact members again."""
    f = run.cfg.family
    if (run.run_dir / TABLES["family"]).is_file():  # the family stage has started: it checks what it has left
        return
    picks = run.space.lattice() if candidates is None else \
        [Coefficients(c["alpha"], c["beta"], c["gamma"]) for c in candidates]
    ctx = dataclasses.replace(ctx, train_images=runner.train_images)
    phis = sorted({float(p) for p in f.phis if 0 < p <= f.max_phi})
    coeffs = (picks if f.train else []) + ([PAPER] if f.compare_paper else [])
    over = runner.memory_over(ctx, family_probes(run.scaler, coeffs, phis[-1])) if phis and coeffs else None
    if over is not None:
        fits = [p for p in phis[:-1] if runner.memory_over(ctx, family_probes(run.scaler, coeffs, p)) is None]
        lower = f"family.max_phi={fits[-1]:g} (every family's members up to it fit)" if fits else "family.max_phi=0"
        runner.check_memory("family (checked before the search trains, at its nominal resolution)", ctx, [over[0]],
                            allowed=f"{lower}, family.train=false family.compare_paper=false (no family "
                                    "trainings), a smaller proxy.batch_size or dataset.base_resolution")
    if f.ablation:
        runner.check_memory("ablation (checked before the search trains)", ctx, _ablation_probes(run, picks),
                            allowed="smaller family.ablation_phis, family.ablation=false, a smaller "
                                    "proxy.batch_size or dataset.base_resolution")


def _ablation_probes(run: _SearchJob, picks: list[Coefficients]) -> list[dict]:
    """The ablation's trainings for every compound coefficients the search may pick (and the paper's)."""
    from .run.ablation import ablation_scaler, ablation_variants
    from .plan.jobs import ablation_jobs

    d = run.data
    scaler = ablation_scaler(run.baseline, d, depth_rounding(run.cfg))
    compound = {candidate_id(c.alpha, c.beta, c.gamma): c for c in [*picks, PAPER]}
    variants = ablation_variants(scaler, list(run.cfg.family.ablation_phis), compound)
    return ablation_jobs(variants, [run.cfg.seed], run.budget, d.fingerprint, scaler)


# ---------------------------------------------------------------- the race
def race_rule(s) -> RaceRule:
    return RaceRule(tuple(s.rungs), s.n_seeds, s.max_seeds, s.seed_step, s.budget, drop=s.drop, delta=s.delta,
                    eta=s.eta)


def _race(run: _SearchJob, runner, stage, candidates: list[dict]) -> None:
    """Look, drop, train what the race asks for next, until it stops; every look is one Tune fit of its new
    trainings, and the race is replayed from the table first, so a resumed or extended run trains only what is
    new."""
    rule = race_rule(run.cfg.search)
    by_name = {c["candidate"]: c for c in candidates}
    order = {name: i for i, name in enumerate(by_name)}
    steps = _RungSteps.of(run, rule, runner)
    unit, lengths = steps.unit, steps.lengths
    first = len(candidates) * rule.n_seeds * lengths[0]
    if rule.budget is not None and first > rule.budget:
        raise ValueError(f"search.budget={rule.budget:g} {unit} is less than the race's first look ({len(candidates)} "
                         f"candidates × {rule.n_seeds} seeds × {lengths[0]} {unit} = {first}); allowed: >= {first}, "
                         "or null")
    rows = read_table(stage.table)
    while True:
        results = _race_results(rows, rule, run.cfg.seed)
        state = race(list(by_name), results, rule, steps.cost, run.context["val_images"])
        if not state.todo:
            break
        r, n = rule.looks()[len(state.looks)]
        log.info("race look %d of %d: %d candidates at %d %s, %d seeds: %d new trainings", len(state.looks) + 1,
                 state.n_looks, len(state.alive), lengths[r], unit, n, len(state.todo))
        keys = sorted(set(results) | set(state.todo), key=lambda j: (j[1], j[2], order[j[0]]))
        jobs = [_race_job(by_name[c], r_, k, i, rule, run, steps) for i, (c, r_, k) in enumerate(keys)]
        rows = runner.run(dataclasses.replace(stage, jobs=jobs))
    run.rows, run.race = rows, state
    _drop_trunks(run.run_dir, state.dropped)
    last = state.looks[-1]
    final = set(last["alive"]) | set(last["dropped"])
    m = rule.rungs[last["rung"]]
    run.race_rows = [x for x in rows if x.get("candidate") in final and x.get("rung") == m
                     and 0 <= x["seed"] - run.cfg.seed < last["seeds"]]
    run.ranked = aggregate(run.race_rows)
    run.race_text = story(state, rule, lengths, unit, len(candidates))
    log.info("race: stopped (%s) after %d looks, %g %s trained", state.stop, len(state.looks), state.spent, unit)


def _drop_trunks(run_dir: Path, dropped: dict) -> None:
    """The saved trunks of the dropped candidates are not continued (an extension that brings one back trains it
    from scratch: the same result); the contenders' latest trunks stay for another rung."""
    for c in dropped:
        for f in (run_dir / "checkpoints").glob(f"{c}-s*-t*.pt"):
            f.unlink(missing_ok=True)


def _race_job_budget(b, m: float):
    """The proxy budget of rung ``m`` (× proxy.epochs, or × proxy.steps)."""
    return dataclasses.replace(b, steps=rung_epochs(b.steps, m)) if b.steps else \
        dataclasses.replace(b, epochs=rung_epochs(b.epochs, m))


class _RungSteps:
    """The steps of every rung: a trunk and its cooldown (search.cooldown > 0), else one separate training; and the
    cost of a rung's training in the proxy's unit (epochs, or steps with proxy.steps)."""

    @classmethod
    def of(cls, run: _SearchJob, rule: RaceRule, runner) -> "_RungSteps":
        """The race's rungs: each rung's length in the proxy's unit (its multiplier × proxy.epochs, or × proxy.steps),
        the trunks kept by the runner's TrunkStore when the rungs continue them (search.cooldown > 0)."""
        length = run.budget.steps or run.budget.epochs
        return cls(run, [rung_epochs(length, m) for m in rule.rungs],
                   runner.trunk_store() if run.cfg.search.cooldown else None)

    def __init__(self, run: _SearchJob, lengths: list[int], store: str | None = None):
        b, self.cooldown, self.store = run.budget, run.cfg.search.cooldown, store  # store: the TrunkStore's name
        self.lengths, self.unit = lengths, "steps" if b.steps else "epochs"
        self.per_unit = 1 if b.steps else steps_per_epoch(b.batch_size, len(run.data.train_y))
        self.totals = [n * self.per_unit for n in lengths]
        self.split = [rung_steps(t, self.cooldown) for t in self.totals]

    def cost(self, r: int, continued: bool) -> float:
        if not self.cooldown or not continued or r == 0:
            return self.totals[r] / self.per_unit
        (trunk, cool), (below, _) = self.split[r], self.split[r - 1]
        return (trunk - below + cool) / self.per_unit

    def plan(self, run: _SearchJob, cand: str, r: int, seed: int) -> dict | None:
        if not self.cooldown:
            return None
        path = lambda i: str(run.run_dir / "checkpoints" / f"{cand}-s{seed}-t{self.split[i][0]}.pt")  # noqa: E731
        return {"trunk_steps": self.split[r][0], "cooldown_steps": self.split[r][1], "save": path(r),
                "resume": path(r - 1) if r > 0 else None, "store": self.store}


def _race_job(c: dict, r: int, k: int, index: int, rule: RaceRule, run: _SearchJob, steps: _RungSteps) -> dict:
    """The training of candidate ``c`` at rung ``r`` with its ``k``-th seed."""
    m, seed = rule.rungs[r], run.cfg.seed + k
    budget = _race_job_budget(run.budget, m)
    j = job(f"{c['candidate']}/r{m:g}/s{seed}", index, c["spec"], c["resolution"], seed,
            {**{k_: c[k_] for k_ in SEARCH_ROW}, "rung": m}, budget, run.data.fingerprint)
    plan = steps.plan(run, c["candidate"], r, seed)
    if plan is not None:  # another training than proxy.schedule's: its own identity
        j["rung_plan"] = plan
        j["train_id"] = train_id(c["spec"], c["resolution"], seed, dataclasses.replace(budget, schedule="constant"),
                                 f"{run.data.fingerprint}|cooldown={steps.cooldown:g}")
    return j


def _race_results(rows: list[dict], rule: RaceRule, first_seed: int) -> dict:
    """{(candidate, rung index, seed index): accuracy, None for a finished failure} of the recorded rows."""
    index = {m: i for i, m in enumerate(rule.rungs)}
    out = {}
    for x in rows:
        if x.get("status") not in FINISHED or x.get("rung") not in index:
            continue
        out[(x["candidate"], index[x["rung"]], x["seed"] - first_seed)] = x["accuracy"] if x["status"] == "ok" else None
    return out


def _race_fidelity(run: _SearchJob) -> dict | None:
    """The proxy's fidelity across rungs: the first rung's ranking against the highest rung that the most candidates
    reached beyond it (τ printed over ≥ 5 candidates), each with the seeds it ran there."""
    rule = race_rule(run.cfg.search)
    ok = [x for x in run.rows if x.get("status") == "ok" and x.get("rung") in rule.rungs]
    reached = {m: {x["candidate"] for x in ok if x["rung"] == m} for m in rule.rungs[1:]}
    if not any(reached.values()):
        return None
    m = max(reached, key=lambda m_: (min(len(reached[m_]), 5), m_))
    low = aggregate([x for x in ok if x["rung"] == rule.rungs[0] and x["candidate"] in reached[m]])
    fid = fidelity(low, [x for x in ok if x["rung"] == m], 1)
    return {**fid, "rungs": [rule.rungs[0], m]}


def _validate(run: _SearchJob, runner, ctx) -> None:
    """The proxy-fidelity audit: the top-k and random-k candidates retrained longer with the search's seeds."""
    from .run.runner import JobStage

    cfg = run.cfg
    if cfg.search.strategy == "race":  # the rungs measure the fidelity: no separate validation stage
        run.fid = _race_fidelity(run)
        if run.fid is not None:
            atomic_write_json(run.run_dir / "fidelity.json", {**run.fid, "proxy_budget": budget_str(run.budget)})
        else:
            run.fid = {"kendall_tau": None, "note": "no candidate reached a second rung: no fidelity across rungs was "
                                                    "measured (search.rungs with two or more rungs would)"}
        return
    if not cfg.validate.enabled:
        return
    v_budget = budget_with_epochs_mult(run.budget, cfg.validate.epochs_mult)
    paper = next((c["candidate"] for c in run.ranked if is_paper(c, cfg.search.constraint)), None)
    jobs = validation_jobs(run.ranked, run.rows, cfg.validate.top_k, cfg.validate.random_k, cfg.seed, v_budget,
                           run.data.fingerprint, lambda a, b: run.scaler.spec(a, b, cfg.search.phi).to_dict(),
                           paper=paper)
    run.state.stage("validation", "running")
    log.info("validation: %d candidates x their seeds at %s (%d trainings)",
             len({j["row"]["candidate"] for j in jobs}), budget_str(v_budget), len(jobs))
    run.v_rows = runner.run(JobStage("validation", run.run_dir / TABLES["validation"], VALIDATION_COLUMNS,
                                  dataclasses.replace(ctx, budget=v_budget, device_costs=False), jobs=jobs,
                                  describe=_describe))
    run.state.stage("validation", "complete", trials=len(run.v_rows))
    run.v_ranked = aggregate(run.v_rows) or None
    run.fid = fidelity(run.ranked, run.v_rows, cfg.validate.top_k)
    atomic_write_json(run.run_dir / "fidelity.json", {**run.fid, "proxy_budget": budget_str(run.budget),
                                                      "validation_budget": budget_str(v_budget)})


def _decide(run: _SearchJob) -> None:
    """The validated ranking decides; the verdict over the deciding stage; the family of the recommendation."""
    cfg, s = run.cfg, run.cfg.search
    run.best, run.decided_by = decide(run.ranked, run.v_ranked)
    validated = run.decided_by == "validation"
    d_ranked, d_rows = (run.v_ranked, run.v_rows) if validated else (run.ranked, run.race_rows or run.rows)
    race_facts = None
    if run.race is not None:
        run.decided_by = "race"
        race_facts = {"looks": run.race.n_looks, "pooled": race_rule(s).pooled, "text": run.race_text,
                      "stop": run.race.stop, "delta": s.delta,
                      "candidates": len(run.race.alive) + len(run.race.dropped), "paused": list(run.race.paused)}
    run.paper = next((c["candidate"] for c in d_ranked if is_paper(c, s.constraint)), None)
    paper_searched = next((c for c in run.ranked if is_paper(c, s.constraint)), None)
    budget = budget_with_epochs_mult(run.budget, cfg.validate.epochs_mult) if validated else run.budget
    if run.race is not None and run.race_rows:
        budget = _race_job_budget(run.budget, run.race_rows[0]["rung"])
    n = len(run.data.train_y)
    run.verdict = verdict(d_ranked, d_rows, run.decided_by, paper=run.paper, fid=run.fid, chance=run.context["chance"],
                          budget=budget_str(budget, n), val_n=run.context["val_images"],
                          half_width=run.context["val_half_width"], proxy_budget=budget_str(run.budget, n),
                          constraint=s.constraint, paper_searched=paper_searched,
                          base_resolution=run.data.base_resolution, race=race_facts)
    _extend_advice(run)
    run.decision = (d_rows, budget)
    run.shares = run_share_model(run.rows, run.v_rows, run.scaler, s.phi, paper=run.paper, options=lambda: select_grid(
        run.space, run.scaler, s.phi, 1, None, s.include_paper)[0], delta=s.delta)
    log.info("shares: %s", run.shares.sentence)
    log.info("family: emitting φ = %s for the recommended coefficients (%s constraint)",
             ", ".join(f"{p:g}" for p in cfg.family.phis), s.constraint)
    run.members = run.family(Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"]))


def _confirm(run: _SearchJob, runner, ctx) -> None:
    """The confirmation run: the model's optimum, when it is located and no candidate of the run, trained with the
    pick's seeds at the deciding budget; the confidence set of the best over the two decides the family's
    coefficients (``decided_by`` "confirmation" when the optimum wins)."""
    from .run.runner import JobStage

    o = run.shares.optimum if run.shares is not None else None
    if o is None or o.status != "located" or o.trained or o.alpha is None:
        return
    s, (d_rows, budget) = run.cfg.search, run.decision
    cand = run.scaler.candidate(o.alpha.estimate, o.beta.estimate, o.gamma.estimate, s.phi)
    pick = run.best["candidate"]
    seeds = sorted({int(r["seed"]) for r in d_rows if r.get("candidate") == pick and r.get("status") == "ok"})
    jobs = (_race_confirmation_jobs(run, cand, seeds, runner) if run.race is not None
            else confirmation_jobs(cand, seeds, budget, run.data.fingerprint))
    run.state.stage("confirmation", "running")
    log.info("confirmation: the model's optimum %s x %d seeds at %s, against the pick %s", cand["candidate"],
             len(seeds), budget_str(budget), pick)
    rows = runner.run(JobStage("confirmation", run.run_dir / TABLES["confirmation"], CONFIRMATION_COLUMNS,
                               dataclasses.replace(ctx, budget=budget, device_costs=False), jobs=jobs,
                               describe=_describe))
    _drop_trunks(run.run_dir, {cand["candidate"]: None})  # a race's confirmation continues nothing
    run.state.stage("confirmation", "complete", trials=len(rows))
    run.confirmation = confirm(cand, pick, d_rows, rows, run.context["val_images"], paper=run.paper)
    log.info("confirmation: %s", run.confirmation.sentence)
    if run.confirmation.outcome == "optimum":
        run.best, run.decided_by = aggregate(rows)[0], "confirmation"
        run.members = run.family(Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"]))


def _race_confirmation_jobs(run: _SearchJob, cand: dict, seeds: list[int], runner) -> list[dict]:
    """The optimum trained as the race trained its pick at the deciding rung: that rung's trunk and cooldown, from
    scratch (it has no trunk below) — the same training as a continued one (proxy.train_rung), so they compare."""
    rule = race_rule(run.cfg.search)
    steps = _RungSteps.of(run, rule, runner)
    r = rule.rungs.index(run.race_rows[0]["rung"])
    return [_race_job(cand, r, seed - run.cfg.seed, i, rule, run, steps) for i, seed in enumerate(seeds)]


def extend_command(run_dir: Path, cfg: SearchAppConfig, n_seeds: int | None = None, **settings) -> str:
    """The command that extends a finished run in place (it trains only what is new), runnable as printed: this
    invocation's own overrides (a resume must repeat the run's settings), then a grid run to ``n_seeds`` seeds, or
    a race with other ``settings`` of its rule (``max_seeds=12``, ``budget=400``, ``rungs=[1,2,4]``)."""
    extra = ([f"search.n_seeds={n_seeds}"] if n_seeds is not None else []) + \
        [f"search.{k}={_override(v)}" for k, v in settings.items()]
    changed = {e.split("=", 1)[0] for e in extra} | {"resume", "hydra.run.dir"}
    given = [o for o in given_overrides(run_dir) if o.split("=", 1)[0].lstrip("+~") not in changed]
    return " ".join(["scalesearch", *map(shlex.quote, given), "resume=true",
                     shlex.quote(f"hydra.run.dir={run_dir}"), *map(shlex.quote, extra)])


def given_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides the run directory's app was given (``.hydra/overrides.yaml``, which Hydra
    writes at each start); none when it has none (``run_search`` called from Python, a NAS run's coefficients)."""
    import yaml

    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        given = yaml.safe_load(path.read_text()) if path.is_file() else []
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in given] if isinstance(given, list) else []


def _override(v) -> str:
    if v is None:
        return "null"
    return "[" + ",".join(f"{x:g}" for x in v) + "]" if isinstance(v, (list, tuple)) else f"{v:g}"


def _race_facts(run: _SearchJob) -> dict | None:
    """best.json's account of a race: why it stopped, its looks and drops, what it spent."""
    st = run.race
    if st is None:
        return None
    rule = race_rule(run.cfg.search)
    return {"stop": st.stop, "stop_text": STOPS[st.stop], "contenders": st.alive, "looks": st.looks,
            "dropped": st.dropped, "paused": st.paused, "spent": st.spent,
            "unit": "steps" if run.budget.steps else "epochs",
            "next_look_cost": st.next_cost, "rule": dataclasses.asdict(rule)}


def _race_advice(run: _SearchJob, want: int | None) -> None:
    """An undecided race: the command that buys its next look (budget), more seeds at the top rung, or another
    rung (the top two probably equal at this length); and the search.delta its trainings already decide."""
    v, s, st = run.verdict, run.cfg.search, run.race
    if st.stop == "budget":
        settings, what = {"budget": st.spent + st.next_cost}, f"its next look ({st.next_cost:g} more)"
    elif st.paused:  # the paused candidates first: nothing is decided while they are untested
        k = len(st.paused)
        settings, what = {"eta": None}, f"the {k} paused candidate{'s' if k != 1 else ''} on from where they paused"
    elif v.get("equivalent") or not want or want > MAX_EXTEND * s.max_seeds:  # more seeds would not pay: longer
        rungs = [*s.rungs, 2 * s.rungs[-1]]
        settings, what = {"rungs": rungs}, f"a longer rung ({_override(rungs)} × proxy.epochs) for the contenders"
    else:
        n = max(int(want), s.max_seeds + s.seed_step)
        settings, what = {"max_seeds": n}, f"up to {n} seeds for the {len(st.alive)} contenders"
    cmd = extend_command(run.run_dir, run.cfg, **settings)
    v["next_command"] = cmd
    v["text"] = v["text"].rstrip() + (f" Extend this race in place (it replays its looks from the table, trains only "
                                      f"{what}, and decides again): `{cmd}`")
    log.info("next: %s", cmd)
    bound = st.looks[-1].get("bound") if st.looks else None
    if bound is not None and 0 < bound < 0.999 and not st.paused:
        delta = math.ceil(bound * 1000 + 1e-6) / 1000  # at least the last look's bound: it stops there at the latest
        v["within_command"] = extend_command(run.run_dir, run.cfg, delta=delta)
        v["text"] += (f" Or decide within δ = {delta:g} from the trainings already made (the bound above; nothing "
                      f"new trains): `{v['within_command']}`")


def _extend_advice(run: _SearchJob) -> None:
    """An undecided grid run or race: the verdict's "Next:" gets the exact command that extends it in place, when
    it asks for at most MAX_EXTEND× the run's seeds."""
    v, s = run.verdict, run.cfg.search
    d = v.get("vs_runner_up") or {}
    want = (v.get("seeds_needed")
            or (MIN_SEEDS if d.get("n", 0) < MIN_SEEDS else None))
    if s.strategy == "race" and not (v.get("decided") or v.get("decided_within")):
        return _race_advice(run, want)
    if v.get("decided") or not want or v.get("equivalent"):
        return
    n = max(int(want), s.n_seeds + 1)
    if n > MAX_EXTEND * s.n_seeds:  # a command nobody would run is not a next step
        v["out_of_reach"] = {"seeds": n, "most": MAX_EXTEND * s.n_seeds, "times": MAX_EXTEND}
        v["text"] = v["text"].rstrip() + (f" No extension command is printed: {n} seeds per candidate is more than "
                                          f"{MAX_EXTEND}× this run's {s.n_seeds}, so more seeds are not a practical "
                                          "way to decide at this budget.")
        return
    if s.strategy != "grid":
        return
    cmd = extend_command(run.run_dir, run.cfg, n)
    new = len({r["candidate"] for r in run.rows if r.get("status") == "ok"}) * (n - s.n_seeds)
    v["next_command"] = cmd
    v["text"] = v["text"].rstrip() + (f" Extend this run in place (trains only the {n - s.n_seeds} new seeds of each "
                                      f"candidate, about {new} search trainings, and decides again): `{cmd}`")
    log.info("next: %s  (adds %d seeds per candidate; finished trainings are kept)", cmd, n - s.n_seeds)


def _train_family(run: _SearchJob, runner, ctx) -> None:
    """The family stage: the searched members up to family.max_phi (and the paper's), each with family.seeds seeds;
    trainings an earlier stage already did (B1 = the candidate) are reused."""
    from .run.runner import JobStage

    cfg, r = run.cfg, run.cfg.family
    if not (r.train or r.compare_paper):
        return
    seeds = [cfg.seed + k for k in range(r.seeds)]
    coeffs = Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"])
    jobs = family_jobs("searched", coeffs, run.members, r.max_phi, seeds, run.budget, run.data.fingerprint) \
        if r.train else []
    if r.compare_paper and run.paper != run.best["candidate"]:
        jobs += family_jobs("paper", PAPER, run.family(PAPER), r.max_phi, seeds, run.budget, run.data.fingerprint,
                            start=len(jobs))
    run.state.stage("family", "running")
    log.info("family: %d trainings (members %s, %d seed(s))", len(jobs),
             ", ".join(dict.fromkeys(j["row"]["name"] for j in jobs)), len(seeds))
    run.f_rows = runner.run(JobStage("family", run.run_dir / TABLES["family"], FAMILY_COLUMNS, ctx, jobs=jobs,
                                  reuse=_with_table(run.rows, TABLES["search"]), describe=_describe))
    run.state.stage("family", "complete", trials=len(run.f_rows))


def _ablate(run: _SearchJob, runner, ctx) -> None:
    from .run.ablation import run_ablation_stage

    cfg = run.cfg
    if not cfg.family.ablation:
        return
    run.state.stage("ablation", "running")
    run_ablation_stage(runner, run.run_dir, run.data, run.budget, ctx, run.baseline,
                       Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"]),
                       phis=list(cfg.family.ablation_phis), seeds=[cfg.seed + k for k in range(cfg.search.n_seeds)],
                       depth_rounding=depth_rounding(cfg),
                       reuse=_with_table(run.rows, TABLES["search"]) + _with_table(run.f_rows, TABLES["family"]))
    run.state.stage("ablation", "complete")


def _write(run: _SearchJob) -> dict:
    """best.json, family.json/.md, specs/, summary.md, the report; then the run is complete."""
    cfg, s, best, data = run.cfg, run.cfg.search, run.best, run.data
    wall = time.time() - run.t0
    best_json = {
        "candidate": best["candidate"], "alpha": best["alpha"], "beta": best["beta"], "gamma": best["gamma"],
        "product": best["product"], "resolution": best["resolution"], "cost": s.cost, "cost_ratio": best["cost_ratio"],
        "accuracy_mean": best["accuracy_mean"], "accuracy_std": best["accuracy_std"],
        "accuracy_low": best["accuracy_low"], "accuracy_high": best["accuracy_high"], "n_seeds": best["n_seeds"],
        "decided_by": run.decided_by, "proxy_pick": run.ranked[0]["candidate"],
        "validation_pick": run.v_ranked[0]["candidate"] if run.v_ranked else None,
        "paper_candidate": run.paper or next((c["candidate"] for c in run.ranked if is_paper(c, s.constraint)), None),
        "product_note": "α·β²·γ² with the effective γ (the nominal cost); the constraint holds the measured "
                        "cost (cost_ratio) at the target: depth and width round, and the resolution is solved on the "
                        "measured cost, so the nominal product differs from it",
        "gamma_note": f"γ = resolution / base resolution ({best['resolution']}/{data.base_resolution} px at "
                      f"φ={s.phi:g}): specific to this base resolution; the same (α, β) at another base solves to "
                      "another γ",
        "verdict": run.verdict["text"],
        **{k: run.verdict.get(k) for k in ("confidence_set", "decided", "method", "level", "excluded",
                                           "vs_runner_up", "vs_paper", "seeds_needed", "seeds_method",
                                           "equivalent", "regret_bound", "regret_bound_method", "decided_within",
                                           "next_command", "within_command", "out_of_reach", "headline")},
        "noise_sd": pooled_sd(run.ranked), "n_trials": len(run.rows),
        "n_ok": sum(x["status"] == "ok" for x in run.rows),
        "n_infeasible": len(run.infeasible), **run.context, "proxy_budget": dataclasses.asdict(cfg.proxy),
        "validation_budget": dataclasses.asdict(budget_with_epochs_mult(cfg.proxy, cfg.validate.epochs_mult))
        if cfg.validate.enabled else None,
        "target": run.space.target, "cost_tolerance": s.cost_tolerance, "seed": cfg.seed,
        "baseline": cfg.model.baseline,
        "family_phis": list(cfg.family.phis), "search_wall_s": round(wall, 2), "race": _race_facts(run),
        "shares": run.shares.to_dict() if run.shares else None,
        "confirmation": run.confirmation.to_dict() if run.confirmation else None,
    }
    atomic_write_json(run.run_dir / "best.json", best_json)
    a, b, g = best["alpha"], best["beta"], best["gamma"]
    write_family(run.members, run.run_dir, f"Family for α={a:g}, β={b:g}, γ={g:g} on {data.name} (base resolution "
                 f"{data.base_resolution} px, {data.num_classes} classes, constraint {s.constraint})",
                 num_classes=data.num_classes,
                 extra={"coefficients": [a, b, g], "base_resolution": data.base_resolution, "constraint": s.constraint,
                        "cost": s.cost, "depth_rounding": depth_rounding(cfg),
                        "resolution_multiple": s.resolution_multiple,
                        "target": run.space.target, "in_channels": data.in_channels})
    _write_summary(run)
    log.info("best: %s (decided by %s) — %s", best["candidate"], run.decided_by,
             run.verdict["text"].split(" — ")[0].strip("*"))
    if cfg.report.enabled:
        from .report.writer import write_report

        run.state.stage("report", "running")
        write_report(run.run_dir, cfg.report)
        run.state.stage("report", "complete")
    run.state.doc.update(status="complete", wall_s=round(wall, 2))
    run.state.write()
    log.info("done in %.0f s: %s", time.time() - run.t0, run.run_dir / "summary.md")
    return best_json


def _write_summary(run: _SearchJob) -> None:
    atomic_write_text(run.run_dir / "summary.md", summary_markdown(run.context, run.verdict, run.ranked, run.rows,
                                                                   run.infeasible, run.paper, run.fid, run.v_ranked,
                                                                   run.shares,
                                                                   run.confirmation and run.confirmation.sentence))
