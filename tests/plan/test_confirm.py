"""The confirmation run (issue 36): the model's optimum, when no candidate of the run is it, trained with the pick's
seeds at the deciding budget; the confidence set of the best decides between it and the pick."""

import dataclasses
import json
import math

import numpy as np
import pytest

import scalesearch.run.stages as search_module
from helpers import TINY, compose_search
from scalesearch.plan.confirm import confirm, confirmation_jobs
from scalesearch.config import ProxyConfig
from scalesearch.decide.results import TABLES, read_table
from scalesearch.pipeline import run_search
from scalesearch.decide.shares import run_share_model, share_table
from scalesearch.decide.stats import confidence_set

OPT = {"candidate": "a1.3-b1.05-g1.2", "alpha": 1.3, "beta": 1.05, "gamma": 1.2}


def _rows(name, accs):
    return [{"candidate": name, "seed": s, "status": "ok", "accuracy": a} for s, a in enumerate(accs)]


@pytest.mark.parametrize("shift, outcome", [(0.08, "optimum"), (-0.08, "pick"), (0.0, "not_distinguishable")])
def test_the_confidence_set_of_the_best_decides_between_optimum_and_pick(shift, outcome):
    pick = _rows("grid-best", [0.60, 0.62, 0.61, 0.63])
    mine = _rows(OPT["candidate"], [a["accuracy"] + shift + d for a, d in zip(pick, (0.004, -0.003, 0.002, 0.0))])
    c = confirm(OPT, "grid-best", pick, mine, n_val=1000)
    assert c.outcome == outcome, c
    assert c.seeds == (0, 1, 2, 3) and c.mean == pytest.approx(np.mean([r["accuracy"] for r in mine]))
    expected = confidence_set({OPT["candidate"]: {r["seed"]: r["accuracy"] for r in mine},
                               "grid-best": {r["seed"]: r["accuracy"] for r in pick}}, n_val=1000)["members"]
    assert list(c.members) == expected
    assert ("the family is built from it" in c.sentence) == (outcome == "optimum")


def test_the_gain_over_the_papers_point_is_measured_on_the_fresh_trainings():
    """When the paper's candidate was trained at the deciding budget (the pick or not): a paired Student-t 95 %
    interval of the optimum's fresh accuracies less the paper's over their shared seeds (scipy's ttest_rel)."""
    from scipy import stats as st

    pick = _rows("grid-best", [0.60, 0.62, 0.61, 0.63])
    paper = _rows("paper", [0.55, 0.58, 0.56, 0.57])
    mine = _rows(OPT["candidate"], [0.59, 0.61, 0.60, 0.64])
    c = confirm(OPT, "grid-best", pick + paper, mine, n_val=1000, paper="paper")
    ci = st.ttest_rel([0.59, 0.61, 0.60, 0.64], [0.55, 0.58, 0.56, 0.57]).confidence_interval(0.95)
    g = c.gain_over_paper
    assert g.estimate == pytest.approx(0.045) and (g.low, g.high) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert f"Its gain over the paper's point, measured: +0.0450 [{g.low:+.4f}, {g.high:+.4f}]." in c.sentence
    assert confirm(OPT, "paper", pick + paper, mine, n_val=1000, paper="paper").gain_over_paper == g  # the pick too
    assert confirm(OPT, "grid-best", pick, mine, n_val=1000, paper="paper").gain_over_paper is None  # not trained


def test_an_optimum_whose_trainings_did_not_all_finish_never_replaces_the_pick():
    pick = _rows("grid-best", [0.60, 0.62, 0.61])
    mine = _rows(OPT["candidate"], [0.9, 0.9, 0.9])
    mine[2]["status"] = "error"
    c = confirm(OPT, "grid-best", pick, mine, n_val=1000)
    assert c.outcome == "failed" and "only 2 of 3 seeds finished" in c.sentence


def test_jobs_train_the_optimum_once_per_seed_at_the_deciding_budget():
    cand = {**OPT, "product": 1.9, "blocks": 18, "cost": "macs", "cost_ratio": 2.01, "cost_target": 2.0,
            "cost_flag": "ok", "params": 1, "macs": 2, "activations": 3, "spec": {"stages": []}, "resolution": 48}
    budget = ProxyConfig(epochs=3)
    jobs = confirmation_jobs(cand, [0, 2, 5], budget, "fp")
    assert [j["key"] for j in jobs] == [f"{OPT['candidate']}/s{s}" for s in (0, 2, 5)]
    assert all(j["epochs"] == 3 and j["resolution"] == 48 and j["row"]["budget_epochs"] == 3 for j in jobs)
    assert len({j["train_id"] for j in jobs}) == 3


def _plant_a_peaked_surface(monkeypatch) -> dict:
    """search.run_share_model fitted on the run's real rows (identities, seeds, rungs) with accuracies from a known
    peaked surface whose top is a lattice option the run did not train."""
    planted = {}

    def planted_model(rows, v_rows, scaler, phi=1.0, options=list, paper=None, delta=None):
        lattice = options()
        key = lambda c: (float(c["alpha"]), float(c["beta"]), int(c["resolution"]))  # noqa: E731
        table = share_table(scaler, {key(c) for c in lattice} | {key(r) for r in rows}, phi)
        trained = {table[key(r)].proportions for r in rows}
        target = next(c for c in lattice if table[key(c)].proportions not in trained
                      and min(table[key(c)].proportions) > 0.05)
        peak = table[key(target)].proportions
        rng = np.random.default_rng(0)
        fake = [{**r, "accuracy": 0.6 - 0.5 * math.dist(table[key(r)].proportions, peak) ** 2 + rng.normal(0, 0.003)}
                for r in rows]
        planted["target"] = target["candidate"]
        return run_share_model(fake, v_rows, scaler, phi, options=lambda: lattice, paper=paper, delta=delta)

    monkeypatch.setattr(search_module, "run_share_model", planted_model)
    return planted


def test_a_run_whose_model_locates_an_untrained_optimum_trains_it_and_decides(ray_session, tmp_path, monkeypatch):
    """The product path with one input substituted: the run trains 10 candidates × 3 seeds for real (tiny data);
    the model over shares is the real one, fitted on those candidates' identities and seeds with accuracies from
    a known peaked surface (on tiny data a real surface is flat, and an optimum is located only where the data show
    curvature). The confirmation stage then trains the located optimum for real, with the pick's seeds at the
    search's budget, and the verdict between them is the confidence set's on the real accuracies."""
    _plant_a_peaked_surface(monkeypatch)
    cfg = compose_search(*[o for o in TINY if not o.startswith("search.n_seeds")], "search.n_seeds=3",
                         "search.max_points=10", "search.cost_tolerance=0.2")
    run_search(cfg, tmp_path)
    best = json.loads((tmp_path / "best.json").read_text())
    o = best["shares"]["optimum"]
    assert o["status"] == "located" and not o["trained"], o["sentence"]
    c = best["confirmation"]
    rows = read_table(tmp_path / TABLES["confirmation"])
    search_rows = read_table(tmp_path / TABLES["search"])
    pick = c["pick"]
    assert {r["candidate"] for r in rows} == {c["candidate"]} and c["candidate"] not in {r["candidate"]
                                                                                          for r in search_rows}
    assert sorted(r["seed"] for r in rows) == sorted(r["seed"] for r in search_rows if r["candidate"] == pick) == [0, 1, 2]
    assert all(r["status"] == "ok" and r["budget_epochs"] == cfg.proxy.epochs for r in rows)
    seeds = lambda rs, n: {r["seed"]: r["accuracy"] for r in rs if r["candidate"] == n}  # noqa: E731
    members = confidence_set({c["candidate"]: seeds(rows, c["candidate"]), pick: seeds(search_rows, pick)},
                             n_val=best["val_images"])["members"]
    assert c["members"] == members
    if c["outcome"] == "optimum":
        assert best["candidate"] == c["candidate"] and best["decided_by"] == "confirmation"
    else:
        assert best["candidate"] == pick and best["decided_by"] == "search"
    summary = (tmp_path / "summary.md").read_text()
    assert f"**Confirmation:** {c['sentence']}" in summary and "**Where it peaks:**" in summary
    from scalesearch.config import ReportConfig
    from scalesearch.report.writer import write_report

    report = write_report(tmp_path, ReportConfig()).read_text()
    assert f"**Confirmation run** (confirmation.csv): {c['sentence']}" in report
    family = json.loads((tmp_path / "family.json").read_text())
    assert json.dumps(family).count(f"{best['alpha']:g}") >= 1
    run_search(dataclasses.replace(cfg, resume=True), tmp_path)  # resumed: nothing new to train, the same decision
    assert json.loads((tmp_path / "best.json").read_text())["confirmation"] == c
    assert read_table(tmp_path / TABLES["confirmation"]) == rows


def test_a_race_confirms_its_optimum_at_the_deciding_rung_from_scratch(ray_session, tmp_path, monkeypatch):
    """A race of 10 candidates × 3 seeds (rungs 1 and 2, trunks with cooldowns) whose model locates an untrained optimum (the
    planted surface, as above): the optimum is trained with the pick's seeds at the deciding rung — that rung's
    trunk from scratch and its cooldown, the same training as the pick's continued trunk — and the confidence set
    over the deciding rung's accuracies decides."""
    _plant_a_peaked_surface(monkeypatch)
    cfg = compose_search("search=race", *[o for o in TINY if not o.startswith("search.n_seeds")],
                         "search.max_points=10", "search.cost_tolerance=0.2", "search.rungs=[1,2]",
                         "search.max_seeds=3")  # a race needs 3 seeds
    run_search(cfg, tmp_path)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["shares"]["optimum"]["status"] == "located" and len(best["race"]["looks"]) >= 1
    c = best["confirmation"]
    rows = read_table(tmp_path / TABLES["confirmation"])
    top = max(r["rung"] for r in read_table(tmp_path / TABLES["search"]) if r["status"] == "ok")
    deciding = [r for r in read_table(tmp_path / TABLES["search"]) if r["rung"] == top and r["candidate"] == c["pick"]]
    assert {r["candidate"] for r in rows} == {c["candidate"]} and all(r["status"] == "ok" for r in rows)
    assert sorted(r["seed"] for r in rows) == sorted(r["seed"] for r in deciding) and len(rows) == 3
    assert all(r["rung"] == top and r["continued_from"] == 0 for r in rows), rows  # from scratch, at the top rung
    assert not list((tmp_path / "checkpoints").glob(f"{c['candidate']}-s*.pt"))  # its trunks are not kept
    seeds = lambda rs, n: {r["seed"]: r["accuracy"] for r in rs if r["candidate"] == n}  # noqa: E731
    members = confidence_set({c["candidate"]: seeds(rows, c["candidate"]), c["pick"]: seeds(deciding, c["pick"])},
                             n_val=best["val_images"])["members"]
    assert c["members"] == members
    assert best["decided_by"] == ("confirmation" if c["outcome"] == "optimum" else "race")
