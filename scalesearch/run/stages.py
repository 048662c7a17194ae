"""The stages' drivers, each on the run's :class:`~scalesearch.run.resume.SearchJob`: the search (grid jobs, an
Optuna searcher or the race of run/racing.py) with the memory check of every family it may pick, the validation,
the decision (verdict, model over shares, the family), the confirmation of the model's optimum, the family and the
ablation; each trains through the run's :class:`~scalesearch.run.runner.Runner` and records its progress."""

from __future__ import annotations

import dataclasses
import logging

from ..decide.results import (CONFIRMATION_COLUMNS, FAMILY_COLUMNS, SEARCH_COLUMNS, TABLES, VALIDATION_COLUMNS,
                              aggregate)
from ..decide.shares import run_share_model
from ..decide.verdict import decide, fidelity, verdict
from ..io import atomic_write_json, read_json
from ..plan.confirm import confirm, confirmation_jobs
from ..plan.jobs import (OptunaSpace, budget_with_epochs_mult, family_jobs, family_probes, is_paper, make_optuna_job,
                         search_jobs, select_grid, validation_jobs)
from ..plan.samplers import search_sampler
from ..report.artifacts import extend_advice, write_summary
from ..report.verdict import verdict_words
from ..scaling.coefficients import PAPER, Coefficients, candidate_id
from .racing import drop_trunks, race_confirmation_jobs, race_fidelity, race_rule, rung_budget, run_race
from .resume import SearchJob, budget_str, config_fingerprint, depth_rounding

log = logging.getLogger("scalesearch")

__all__ = ["train_search", "train_validation", "decide_best", "train_confirmation", "train_family", "train_ablation"]


def _describe(r: dict) -> str:
    if r.get("rung") is not None:
        return f"α={r.get('alpha')} β={r.get('beta')} γ={r.get('gamma')} rung {r['rung']:g}× seed {r.get('seed')}"
    if r.get("family"):
        return f"{r['family']} {r.get('name')} seed {r.get('seed')}"
    if r.get("method"):
        return f"{r['method']} φ={r.get('phi'):g} seed {r.get('seed')}"
    return f"α={r.get('alpha')} β={r.get('beta')} γ={r.get('gamma')} seed {r.get('seed')}"


def _with_table(rows: list[dict], name: str) -> list[dict]:
    return [{**r, "_table": name} for r in rows]


def train_search(run: SearchJob, runner, ctx) -> None:
    """The search stage: its trainings (grid, Optuna or the race), ranked; refused when none finished ok."""
    stage, plan = _search_stage(run.cfg, run.run_dir, run.space, run.scaler, ctx, run.data)
    _check_family_memory(run, runner, ctx, plan.get("candidates"))
    run.infeasible = plan["infeasible"]
    run.state.stage("search", "running")
    if run.cfg.search.strategy == "race":
        run_race(run, runner, stage, plan["candidates"])
    else:
        run.rows = runner.run(stage)
        run.ranked = aggregate(run.rows)
    run.state.stage("search", "complete", trials=len(run.rows))
    if not run.ranked:
        write_summary(run)
        raise ValueError(f"no trial of the search finished ok (see {run.run_dir / TABLES['search']}); nothing to "
                         "select")


def _search_stage(cfg, run_dir, space, scaler, ctx, data):
    """The search stage (grid jobs or an Optuna searcher) and the infeasible candidates met."""
    from .runner import JobStage, SearcherStage

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


def _check_family_memory(run: SearchJob, runner, ctx, candidates: list[dict] | None) -> None:
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


def _ablation_probes(run: SearchJob, picks: list[Coefficients]) -> list[dict]:
    """The ablation's trainings for every compound coefficients the search may pick (and the paper's)."""
    from .ablation import ablation_scaler, ablation_variants
    from ..plan.jobs import ablation_jobs

    d = run.data
    scaler = ablation_scaler(run.baseline, d, depth_rounding(run.cfg))
    compound = {candidate_id(c.alpha, c.beta, c.gamma): c for c in [*picks, PAPER]}
    variants = ablation_variants(scaler, list(run.cfg.family.ablation_phis), compound)
    return ablation_jobs(variants, [run.cfg.seed], run.budget, d.fingerprint, scaler)


def train_validation(run: SearchJob, runner, ctx) -> None:
    """The proxy-fidelity audit: the top-k and random-k candidates retrained longer with the search's seeds."""
    from .runner import JobStage

    cfg = run.cfg
    if cfg.search.strategy == "race":  # the rungs measure the fidelity: no separate validation stage
        run.fid = race_fidelity(run)
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


def decide_best(run: SearchJob) -> None:
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
        budget = rung_budget(run.budget, run.race_rows[0]["rung"])
    n = len(run.data.train_y)
    run.verdict = verdict(d_ranked, d_rows, run.decided_by, paper=run.paper, fid=run.fid, chance=run.context["chance"],
                          budget=budget_str(budget, n), val_n=run.context["val_images"],
                          half_width=run.context["val_half_width"], proxy_budget=budget_str(run.budget, n),
                          constraint=s.constraint, paper_searched=paper_searched,
                          base_resolution=run.data.base_resolution, race=race_facts)
    run.extension = extend_advice(run.verdict, cfg, run.run_dir, run.rows, run.race)
    run.words = verdict_words(run.verdict, d_ranked, run.extension.text)
    run.decision = (d_rows, budget)
    run.shares = run_share_model(run.rows, run.v_rows, run.scaler, s.phi, paper=run.paper, options=lambda: select_grid(
        run.space, run.scaler, s.phi, 1, None, s.include_paper)[0], delta=s.delta)
    log.info("shares: %s", run.shares.sentence)
    log.info("family: emitting φ = %s for the recommended coefficients (%s constraint)",
             ", ".join(f"{p:g}" for p in cfg.family.phis), s.constraint)
    run.members = run.family(Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"]))


def train_confirmation(run: SearchJob, runner, ctx) -> None:
    """The confirmation run: the model's optimum, when it is located and no candidate of the run, trained with the
    pick's seeds at the deciding budget; the confidence set of the best over the two decides the family's
    coefficients (``decided_by`` "confirmation" when the optimum wins)."""
    from .runner import JobStage

    o = run.shares.optimum if run.shares is not None else None
    if o is None or o.status != "located" or o.trained or o.alpha is None:
        return
    s, (d_rows, budget) = run.cfg.search, run.decision
    cand = run.scaler.candidate(o.alpha.estimate, o.beta.estimate, o.gamma.estimate, s.phi)
    pick = run.best["candidate"]
    seeds = sorted({int(r["seed"]) for r in d_rows if r.get("candidate") == pick and r.get("status") == "ok"})
    jobs = (race_confirmation_jobs(run, cand, seeds, runner) if run.race is not None
            else confirmation_jobs(cand, seeds, budget, run.data.fingerprint))
    run.state.stage("confirmation", "running")
    log.info("confirmation: the model's optimum %s x %d seeds at %s, against the pick %s", cand["candidate"],
             len(seeds), budget_str(budget), pick)
    rows = runner.run(JobStage("confirmation", run.run_dir / TABLES["confirmation"], CONFIRMATION_COLUMNS,
                               dataclasses.replace(ctx, budget=budget, device_costs=False), jobs=jobs,
                               describe=_describe))
    drop_trunks(run.run_dir, {cand["candidate"]: None})  # a race's confirmation continues nothing
    run.state.stage("confirmation", "complete", trials=len(rows))
    run.confirmation = confirm(cand, pick, d_rows, rows, run.context["val_images"], paper=run.paper)
    log.info("confirmation: %s", run.confirmation.sentence)
    if run.confirmation.outcome == "optimum":
        run.best, run.decided_by = aggregate(rows)[0], "confirmation"
        run.members = run.family(Coefficients(run.best["alpha"], run.best["beta"], run.best["gamma"]))


def train_family(run: SearchJob, runner, ctx) -> None:
    """The family stage: the searched members up to family.max_phi (and the paper's), each with family.seeds seeds;
    trainings an earlier stage already did (B1 = the candidate) are reused."""
    from .runner import JobStage

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


def train_ablation(run: SearchJob, runner, ctx) -> None:
    """The ablation stage (family.ablation): depth, width and resolution scaled alone beside the compound family."""
    from .ablation import run_ablation_stage

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
