"""The race's driver (search.strategy=race): its rule from the settings, the looks (each one Tune fit of the trainings
the race asks for next, replayed from the table first), the rungs' steps (a trunk and its cooldown), the trunks of
dropped candidates, the fidelity across rungs and the confirmation's trainings at the deciding rung."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..decide.results import FINISHED, aggregate, read_table
from ..decide.verdict import fidelity
from ..plan.jobs import SEARCH_ROW, job, train_id
from ..plan.race import RaceRule, race, rung_epochs, story
from ..train.proxy import rung_steps, steps_per_epoch
from .resume import SearchJob

log = logging.getLogger("scalesearch")

__all__ = ["race_rule", "run_race", "drop_trunks", "rung_budget", "race_fidelity", "race_confirmation_jobs"]


def race_rule(s) -> RaceRule:
    """The race's rule from the search settings (search.rungs, n_seeds, max_seeds, ...)."""
    return RaceRule(tuple(s.rungs), s.n_seeds, s.max_seeds, s.seed_step, s.budget, drop=s.drop, delta=s.delta,
                    eta=s.eta)


def run_race(run: SearchJob, runner, stage, candidates: list[dict]) -> None:
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
    drop_trunks(run.run_dir, state.dropped)
    last = state.looks[-1]
    final = set(last["alive"]) | set(last["dropped"])
    m = rule.rungs[last["rung"]]
    run.race_rows = [x for x in rows if x.get("candidate") in final and x.get("rung") == m
                     and 0 <= x["seed"] - run.cfg.seed < last["seeds"]]
    run.ranked = aggregate(run.race_rows)
    run.race_text = story(state, rule, lengths, unit, len(candidates))
    log.info("race: stopped (%s) after %d looks, %g %s trained", state.stop, len(state.looks), state.spent, unit)


def drop_trunks(run_dir: Path, dropped: dict) -> None:
    """The saved trunks of the dropped candidates are not continued (an extension that brings one back trains it
    from scratch: the same result); the contenders' latest trunks stay for another rung."""
    for c in dropped:
        for f in (run_dir / "checkpoints").glob(f"{c}-s*-t*.pt"):
            f.unlink(missing_ok=True)


def rung_budget(b, m: float):
    """The proxy budget of rung ``m`` (× proxy.epochs, or × proxy.steps)."""
    return dataclasses.replace(b, steps=rung_epochs(b.steps, m)) if b.steps else \
        dataclasses.replace(b, epochs=rung_epochs(b.epochs, m))


class _RungSteps:
    """The steps of every rung: a trunk and its cooldown (search.cooldown > 0), else one separate training; and the
    cost of a rung's training in the proxy's unit (epochs, or steps with proxy.steps)."""

    @classmethod
    def of(cls, run: SearchJob, rule: RaceRule, runner) -> "_RungSteps":
        """The race's rungs: each rung's length in the proxy's unit (its multiplier × proxy.epochs, or × proxy.steps),
        the trunks kept by the runner's TrunkStore when the rungs continue them (search.cooldown > 0)."""
        length = run.budget.steps or run.budget.epochs
        return cls(run, [rung_epochs(length, m) for m in rule.rungs],
                   runner.trunk_store() if run.cfg.search.cooldown else None)

    def __init__(self, run: SearchJob, lengths: list[int], store: str | None = None):
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

    def plan(self, run: SearchJob, cand: str, r: int, seed: int) -> dict | None:
        if not self.cooldown:
            return None
        path = lambda i: str(run.run_dir / "checkpoints" / f"{cand}-s{seed}-t{self.split[i][0]}.pt")  # noqa: E731
        return {"trunk_steps": self.split[r][0], "cooldown_steps": self.split[r][1], "save": path(r),
                "resume": path(r - 1) if r > 0 else None, "store": self.store}


def _race_job(c: dict, r: int, k: int, index: int, rule: RaceRule, run: SearchJob, steps: _RungSteps) -> dict:
    """The training of candidate ``c`` at rung ``r`` with its ``k``-th seed."""
    m, seed = rule.rungs[r], run.cfg.seed + k
    budget = rung_budget(run.budget, m)
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


def race_fidelity(run: SearchJob) -> dict | None:
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


def race_confirmation_jobs(run: SearchJob, cand: dict, seeds: list[int], runner) -> list[dict]:
    """The optimum trained as the race trained its pick at the deciding rung: that rung's trunk and cooldown, from
    scratch (it has no trunk below) — the same training as a continued one (proxy.train_rung), so they compare."""
    rule = race_rule(run.cfg.search)
    steps = _RungSteps.of(run, rule, runner)
    r = rule.rungs.index(run.race_rows[0]["rung"])
    return [_race_job(cand, r, seed - run.cfg.seed, i, rule, run, steps) for i, seed in enumerate(seeds)]
