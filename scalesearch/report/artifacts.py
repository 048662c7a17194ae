"""What a finished search writes beside its tables: best.json's facts (:func:`best_facts`), summary.md, and the
verdict's advice for an undecided run: the exact command that extends it in place (:func:`extend_command`).

Never imports run/: the run's facts (its SearchJob, its race's state and rule) come in as values."""

from __future__ import annotations

import dataclasses
import logging
import math
import shlex
from pathlib import Path

from ..config import SearchAppConfig
from ..decide.stats import MIN_SEEDS
from ..decide.verdict import Verdict, pooled_sd
from ..io import atomic_write_text
from ..plan.race import STOPS, RaceRule
from .summary import summary_markdown
from .verdict import Extension

log = logging.getLogger("scalesearch")

__all__ = ["MAX_EXTEND", "Extension", "extend_command", "given_overrides", "race_facts", "race_advice", "extend_advice",
           "best_facts", "write_summary"]

MAX_EXTEND = 4  # the most seeds, as a multiple of the run's, an extension command asks for (the race: of max_seeds)


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


def race_facts(st, rule: RaceRule, unit: str) -> dict:
    """best.json's account of a race (``st``: its last state, ``rule``: its rule, ``unit``: "epochs" or "steps"):
    why it stopped, its looks and drops, what it spent."""
    return {"stop": st.stop, "stop_text": STOPS[st.stop], "contenders": st.alive, "looks": st.looks,
            "dropped": st.dropped, "paused": st.paused, "spent": st.spent, "unit": unit,
            "next_look_cost": st.next_cost, "rule": dataclasses.asdict(rule)}


def race_advice(cfg: SearchAppConfig, run_dir: Path, st, want: int | None, equivalent: bool | None) -> Extension:
    """An undecided race (``st``: its last state): the command that buys its next look (budget), more seeds at the top
    rung, or another rung (the top two probably equal at this length); and the search.delta its trainings already
    decide."""
    s = cfg.search
    if st.stop == "budget":
        settings, what = {"budget": st.spent + st.next_cost}, f"its next look ({st.next_cost:g} more)"
    elif st.paused:  # the paused candidates first: nothing is decided while they are untested
        k = len(st.paused)
        settings, what = {"eta": None}, f"the {k} paused candidate{'s' if k != 1 else ''} on from where they paused"
    elif equivalent or not want or want > MAX_EXTEND * s.max_seeds:  # more seeds would not pay: longer
        rungs = [*s.rungs, 2 * s.rungs[-1]]
        settings, what = {"rungs": rungs}, f"a longer rung ({_override(rungs)} × proxy.epochs) for the contenders"
    else:
        n = max(int(want), s.max_seeds + s.seed_step)
        settings, what = {"max_seeds": n}, f"up to {n} seeds for the {len(st.alive)} contenders"
    cmd = extend_command(run_dir, cfg, **settings)
    text = (f"Extend this race in place (it replays its looks from the table, trains only {what}, and decides again): "
            f"`{cmd}`")
    log.info("next: %s", cmd)
    bound = st.looks[-1].get("bound") if st.looks else None
    within = None
    if bound is not None and 0 < bound < 0.999 and not st.paused:
        delta = math.ceil(bound * 1000 + 1e-6) / 1000  # at least the last look's bound: it stops there at the latest
        within = extend_command(run_dir, cfg, delta=delta)
        text += (f" Or decide within δ = {delta:g} from the trainings already made (the bound above; nothing "
                 f"new trains): `{within}`")
    return Extension(next_command=cmd, within_command=within, text=text)


def extend_advice(v: Verdict, cfg: SearchAppConfig, run_dir: Path, rows: list[dict], race=None) -> Extension:
    """What an undecided grid run (``rows``: its search trainings) or race (``race``: its last state) with the verdict
    ``v`` can run next: the exact command that extends it in place, when it asks for at most MAX_EXTEND× the run's
    seeds."""
    s = cfg.search
    d = v.vs_runner_up or {}
    want = v.seeds_needed or (MIN_SEEDS if d.get("n", 0) < MIN_SEEDS else None)
    if s.strategy == "race" and not (v.decided or v.decided_within):
        return race_advice(cfg, run_dir, race, want, v.equivalent)
    if v.decided or not want or v.equivalent:
        return Extension()
    n = max(int(want), s.n_seeds + 1)
    if n > MAX_EXTEND * s.n_seeds:  # a command nobody would run is not a next step
        why = (f"No extension command is printed: {n} seeds per candidate is more than {MAX_EXTEND}× this run's "
               f"{s.n_seeds}, so more seeds are not a practical way to decide at this budget.")
        return Extension(out_of_reach={"seeds": n, "most": MAX_EXTEND * s.n_seeds, "times": MAX_EXTEND}, text=why)
    if s.strategy != "grid":
        return Extension()
    cmd = extend_command(run_dir, cfg, n)
    new = len({r["candidate"] for r in rows if r.get("status") == "ok"}) * (n - s.n_seeds)
    log.info("next: %s  (adds %d seeds per candidate; finished trainings are kept)", cmd, n - s.n_seeds)
    return Extension(next_command=cmd, text=f"Extend this run in place (trains only the {n - s.n_seeds} new seeds of "
                                            f"each candidate, about {new} search trainings, and decides again): "
                                            f"`{cmd}`")


def best_facts(run, *, wall: float, race: dict | None, paper: str | None, validation_budget: dict | None) -> dict:
    """best.json's content from the run's facts (``run``: its SearchJob, read only; ``race``: :func:`race_facts`;
    ``paper``: the paper's candidate where the run has one; ``validation_budget``: the validation's proxy settings)."""
    cfg, s, best, data = run.cfg, run.cfg.search, run.best, run.data
    return {
        "candidate": best["candidate"], "alpha": best["alpha"], "beta": best["beta"], "gamma": best["gamma"],
        "product": best["product"], "resolution": best["resolution"], "cost": s.cost, "cost_ratio": best["cost_ratio"],
        "accuracy_mean": best["accuracy_mean"], "accuracy_std": best["accuracy_std"],
        "accuracy_low": best["accuracy_low"], "accuracy_high": best["accuracy_high"], "n_seeds": best["n_seeds"],
        "decided_by": run.decided_by, "proxy_pick": run.ranked[0]["candidate"],
        "validation_pick": run.v_ranked[0]["candidate"] if run.v_ranked else None,
        "paper_candidate": paper,
        "product_note": "α·β²·γ² with the effective γ (the nominal cost); the constraint holds the measured "
                        "cost (cost_ratio) at the target: depth and width round, and the resolution is solved on the "
                        "measured cost, so the nominal product differs from it",
        "gamma_note": f"γ = resolution / base resolution ({best['resolution']}/{data.base_resolution} px at "
                      f"φ={s.phi:g}): specific to this base resolution; the same (α, β) at another base solves to "
                      "another γ",
        "verdict": run.words.text,
        **{k: getattr(run.verdict, k) for k in ("confidence_set", "decided", "method", "level", "excluded",
                                                "vs_runner_up", "vs_paper", "seeds_needed", "seeds_method",
                                                "equivalent", "regret_bound", "regret_bound_method",
                                                "decided_within")},
        **{k: getattr(run.extension, k) for k in ("next_command", "within_command", "out_of_reach")},
        "headline": run.words.headline, "methods": run.words.methods,
        "noise_sd": pooled_sd(run.ranked), "n_trials": len(run.rows),
        "n_ok": sum(x["status"] == "ok" for x in run.rows),
        "n_infeasible": len(run.infeasible), **run.context, "proxy_budget": dataclasses.asdict(cfg.proxy),
        "validation_budget": validation_budget,
        "target": run.space.target, "cost_tolerance": s.cost_tolerance, "seed": cfg.seed,
        "baseline": cfg.model.baseline,
        "family_phis": list(cfg.family.phis), "search_wall_s": round(wall, 2), "race": race,
        "shares": run.shares.to_dict() if run.shares else None,
        "confirmation": run.confirmation.to_dict() if run.confirmation else None,
    }


def write_summary(run) -> None:
    """summary.md from the run's facts (``run``: its SearchJob, read only)."""
    md = summary_markdown(run.context, run.verdict, run.extension, run.words, run.ranked, run.rows, run.infeasible,
                          run.paper, run.fid, run.v_ranked, run.shares, run.confirmation and run.confirmation.sentence)
    atomic_write_text(run.run_dir / "summary.md", md)
