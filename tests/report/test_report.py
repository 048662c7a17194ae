"""The report: the pick rules and the returns arithmetic on hand-made curves, the family table and the curve
analysis on hand-made rows, the plots' labels; then one small real run (validation, the searched and the
paper's family trained) shared by the checks of report.md against the tables, the plots, the re-render that
never trains, the ablation CLI, the notebook and the truncated-file errors."""

import json
import math
import re

import pytest
import scipy.stats as st

from helpers import ROOT, TINY, run_cli
from scalesearch.config import ReportConfig
from scalesearch.report.family import (curve_analysis, diminishing_returns, family_curve, family_table,
                                pick_cost_effective, pick_statement, pooled_df, step_evidence)
from scalesearch.report.plots import plot_family, plot_landscape, plot_optuna_history
from scalesearch.report.writer import load_run
from scalesearch.scaling.model import spec_cost
from scalesearch.decide.results import aggregate, read_table
from scalesearch.scaling.spec import B0, scale

PNG = b"\x89PNG\r\n\x1a\n"


def curve(accs, macs=None):
    macs = macs or [1e6 * 2**i for i in range(len(accs))]
    return [{"name": f"b{i}", "macs": m, "accuracy": a} for i, (a, m) in enumerate(zip(accs, macs))]


# ---------------------------------------------------------------- the pick rules
@pytest.mark.parametrize("accs, threshold, expected", [
    ([0.5, 0.5, 0.5, 0.5], 0.01, "b0"),          # flat: nothing is gained by scaling
    ([0.50, 0.55, 0.60, 0.65], 0.01, "b3"),      # monotone, +0.05 per doubling throughout: the largest
    ([0.50, 0.55, 0.60, 0.65], 0.06, "b0"),      # the same curve under a threshold above every gain
    ([0.50, 0.70, 0.74, 0.76], 0.05, "b1"),      # clear knee: +0.20, then +0.04
    ([0.50, 0.70, 0.74, 0.76], 0.03, "b2"),
    ([0.50, 0.52, 0.70, 0.80], 0.05, "b0"),      # stops at the first step below, even if later steps gain more
    ([0.60, 0.55, 0.50], 0.0, "b0"),             # falling
    ([0.25, 0.50], 0.25, "b1"),                  # a gain exactly at the threshold is kept (≥)
    ([0.25, 0.50], 0.2501, "b0"),
])
def test_marginal_rule(accs, threshold, expected):
    """Without seeds or a noise sd the walk on the means is only a best guess: never decided."""
    pick = pick_cost_effective(curve(accs), "marginal", threshold)
    assert (pick["name"], pick["rule"], pick["threshold"]) == (expected, "marginal", threshold)
    assert pick["decided"] is False and pick["range"][0] <= expected <= pick["range"][1]
    assert "**" not in pick_statement(pick) and "not decided" in pick_statement(pick)
    # with (nearly) no noise the same walk is decided, unless a gain sits on the threshold
    exact = pick_cost_effective(seeded(accs, 1e-9), "marginal", threshold)
    assert exact["name"] == expected
    on_threshold = any(abs(s["gain_per_doubling"] - threshold) < 1e-6 for s in diminishing_returns(curve(accs)))
    assert exact["decided"] is not on_threshold or threshold == 0.25


def seeded(accs, sd):
    """curve() with 3 seeds per member at mean − sd, mean, mean + sd (sample sd exactly sd)."""
    d = sd
    return [{**p, "accuracies": [p["accuracy"] - d, p["accuracy"], p["accuracy"] + d]} for p in curve(accs)]


@pytest.mark.parametrize("accs, sd, decided, rng, name", [
    ([0.50, 0.53, 0.55, 0.565], 0.002, True, ["b3", "b3"], "b3"),   # every step clearly pays
    ([0.50, 0.53, 0.532, 0.533], 0.002, True, ["b1", "b1"], "b1"),  # clear stop after b1
    ([0.50, 0.50, 0.50, 0.50], 0.002, True, ["b0", "b0"], "b0"),
    ([0.50, 0.53, 0.55, 0.565], 0.02, False, ["b0", "b3"], "b3"),   # the noise leaves everything open
    ([0.50, 0.53, 0.532, 0.533], 0.01, False, ["b0", "b3"], "b1"),  # b0→b1 open, so is everything after it
    ([0.50, 0.60, 0.612, 0.70], 0.005, False, ["b1", "b3"], "b3"),  # b1→b2 open, b2→b3 clearly pays
])
def test_marginal_pick_respects_noise(accs, sd, decided, rng, name):
    p = pick_cost_effective(seeded(accs, sd), "marginal", 0.01)
    assert (p["decided"], p["range"], p["name"]) == (decided, rng, name), p["reason"]
    statement = pick_statement(p)
    assert statement.startswith(f"**Cost-effective pick: {name}**") == decided
    if not decided:
        assert f"members {rng[0]}–{rng[1]} are consistent with the data" in p["reason"]
        assert p["seeds_needed"] > 3 and f"family.seeds={p['seeds_needed']}" in p["reason"]
    else:
        assert p["seeds_needed"] is None


def test_step_evidence_bounds_and_noise_sources():
    pts = seeded([0.50, 0.53, 0.55], 0.01)
    own = step_evidence(pts, 0.01)
    assert own["df"] == 6 and own["sd"] == pytest.approx(0.01)
    q = st.t.ppf(1 - 0.05 / 2, 6)  # one-sided at 1 - 0.05/K, K = 2 steps
    s0 = own["steps"][0]
    assert s0["low"] == pytest.approx(0.03 - q * 0.01 * math.sqrt(2 / 3))
    assert s0["high"] == pytest.approx(0.03 + q * 0.01 * math.sqrt(2 / 3))
    known = step_evidence(pts, 0.01, noise_sd=0.02)
    assert known["df"] is None and known["sd"] == 0.02 and "taken as known" in known["method"]
    pooled = step_evidence(pts, 0.01, noise_sd=0.02, noise_df=6)
    assert pooled["df"] == 12 and pooled["sd"] == pytest.approx(math.sqrt((6 * 0.02**2 + 6 * 0.01**2) / 12))
    none = step_evidence(curve([0.5, 0.6]), 0.01)
    assert none["sd"] is None and none["steps"][0]["verdict"] == "open" and none["steps"][0]["low"] is None


@pytest.mark.parametrize("accs, expected", [
    ([0.5, 0.5, 0.5, 0.5], "b0"), ([0.50, 0.55, 0.60, 0.65], "b3"), ([0.50, 0.52, 0.58, 0.70], "b3"),
    ([0.50, 0.70, 0.74, 0.76], "b1"), ([0.50, 0.60, 0.68, 0.70, 0.71], "b2"), ([0.60, 0.55, 0.50], "b0"),
    ([0.50, 0.70, 0.60, 0.65], "b1"),
])
def test_knee_rule(accs, expected):
    pick = pick_cost_effective(seeded(accs, 1e-9), "knee")
    assert pick["name"] == expected and pick["decided"] is False and pick["range"] is None  # descriptive only
    assert "**" not in pick_statement(pick) and "not a decision" in pick_statement(pick)


def test_diminishing_returns_arithmetic_and_bad_input():
    steps = diminishing_returns(curve([0.40, 0.50, 0.52], [1e6, 3e6, 12e6]))
    assert [(s["from"], s["to"]) for s in steps] == [("b0", "b1"), ("b1", "b2")]
    assert steps[0]["doublings"] == pytest.approx(math.log2(3)) and steps[0]["gain"] == pytest.approx(0.10)
    assert steps[1]["gain_per_doubling"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="pick_rule='best' is unknown; allowed: marginal, knee"):
        pick_cost_effective(curve([0.5, 0.6]), "best")
    with pytest.raises(ValueError, match="MACs must increase strictly"):
        pick_cost_effective(curve([0.5, 0.6], [1e6, 1e6]))


# ---------------------------------------------------------------- family table and curve (hand-made rows)
def members(n=6):
    return [{"name": f"b{i}", "phi": float(i), "depth_mult": 1.2**i, "width_mult": 1.1**i, "resolution": 40 + 4 * i,
             "params": 10**6 * (i + 1), "macs": 1e7 * 2**i, "activations": 1e5 * 2**i, "macs_ratio": 2.0**i,
             "ideal_ratio": 2.0**i} for i in range(n)]


def family_rows(accs: dict[str, list[float]], label="searched"):
    return [{"family": label, "name": name, "seed": s, "accuracy": a, "status": "ok", "latency_ms": 1.0 + s,
             "train_step_ms": 10.0} for name, a_s in accs.items() for s, a in enumerate(a_s)]


def test_family_table_aggregates_seeds_per_member():
    table = family_table(members(3), family_rows({"b0": [0.40, 0.44], "b1": [0.50, 0.52]}))
    b0, b1, b2 = table
    assert b0["accuracy"] == pytest.approx(0.42) and b0["n_seeds"] == 2 and b0["latency_ms"] == pytest.approx(1.5)
    half = 12.7062047 * math.sqrt(0.0008) / math.sqrt(2)  # t(0.975, 1) · sd / √n
    assert b0["accuracy_low"] == pytest.approx(max(0.0, 0.42 - half)) and b0["accuracy_high"] == pytest.approx(min(1.0, 0.42 + half))
    assert b2["accuracy"] is None and b2["status"] is None
    assert family_curve(table) == [{"name": "b0", "macs": 1e7, "accuracy": pytest.approx(0.42), "accuracies": [0.40, 0.44]},
                                   {"name": "b1", "macs": 2e7, "accuracy": pytest.approx(0.51), "accuracies": [0.50, 0.52]}]


def test_curve_analysis_predicts_the_untrained_members_and_says_what_the_pick_rests_on():
    truth = lambda c: 0.9 - 0.5 * (c / 1e7) ** -0.5  # noqa: E731 — the form the fit assumes
    trained = {f"b{i}": [truth(1e7 * 2**i) + d for d in (-0.005, 0.005)] for i in range(4)}
    cfg = ReportConfig(pick_rule="marginal", min_gain_per_doubling=0.08)
    a = curve_analysis(family_table(members(6), family_rows(trained)), noise_sd=0.007, report_cfg=cfg)
    pred = {p["name"]: p for p in a["predictions"]}
    assert set(pred) == {"b4", "b5"}
    for name, p in pred.items():
        c = 1e7 * 2 ** int(name[1:])
        assert p["accuracy"] == pytest.approx(truth(c), abs=0.02) and p["low"] < truth(c) < p["high"]
    assert a["holdout"]["held_out"] is None and "needs >= 5 trained members" in a["holdout"]["note"]
    # true gains per doubling: b0→b1 0.146, →b2 0.104, →b3 0.073, →b4 0.052, →b5 0.037; sd 0.007, 2 seeds
    p = a["pick"]
    assert (p["name"], p["decided"], p["range"], a["pick_basis"]) == ("b2", False, ["b2", "b3"], "measured")
    assert "not decided" in a["statement"] and "**" not in a["statement"]  # 0.073 vs 0.08: open at this noise
    a = curve_analysis(family_table(members(6), family_rows(trained)), 0.007, ReportConfig(min_gain_per_doubling=0.05))
    # every measured step clearly pays 0.05, so b3 is decided on measured points; the curve says b4 still pays
    assert (a["pick"]["name"], a["pick_basis"], a["pick"]["decided"]) == ("b4", "predicted", False)
    assert a["pick"]["range"] == ["b3", "b4"] and "train it to confirm" in a["pick"]["reason"]
    assert a["statement"].startswith("Cost-effective pick on the curve's prediction, not a decision: b4")
    five = {f"b{i}": [truth(1e7 * 2**i) + d for d in (-0.005, 0.005)] for i in range(5)}
    a = curve_analysis(family_table(members(6), family_rows(five)), 0.007, cfg)
    assert a["holdout"]["held_out"] == "b4" and a["holdout"]["residual_df"] == 1 and a["holdout"]["inside"] is True
    json.dumps({k: v for k, v in a.items() if not k.startswith("_")})


def test_plots_are_labelled_with_uncertainty_and_chance(tmp_path):
    table = family_table(members(3), family_rows({"b0": [0.4, 0.44], "b1": [0.5, 0.53], "b2": [0.55, 0.56]}))
    fig = plot_family({"searched": table}, {"name": "b1", "rule": "marginal", "basis": "measured", "decided": True},
                      tmp_path / "f.png", chance=0.1)
    open_pick = {"name": "b1", "rule": "marginal", "basis": "measured", "decided": False, "range": ["b0", "b2"]}
    labels = [t.get_text() for t in plot_family({"searched": table}, open_pick).axes[0].get_legend().get_texts()]
    assert "best guess, not decided (consistent: b0–b2): b1 (marginal, measured)" in labels
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xscale() == "log" and "95 % CI" in ax.get_ylabel()
    assert "chance (10 %)" in labels and "cost-effective pick: b1 (marginal, measured)" in labels
    bars = [c for c in ax.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert bars, "the accuracies carry error bars"
    rows = [{"candidate": f"c{a}", "alpha": a, "beta": 1.0, "gamma": 1.0, "seed": s, "accuracy": acc, "status": st,
             "cost_ratio": 2.0} for a, s, acc, st in [(1.0, 0, 0.3, "ok"), (1.0, 1, 0.35, "ok"), (1.1, 0, 0.5, "stopped"),
                                                       (1.2, 0, 0.4, "ok"), (1.2, 1, 0.45, "ok")]]
    ranked = aggregate(rows)
    ax, cbar = plot_landscape(ranked, rows, {"alpha": 1.2, "beta": 1.0, "gamma": 1.0}, tmp_path / "l.png").axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ok (2 candidates)" in labels and "stopped (1 candidates)" in labels
    assert cbar.get_ylabel().startswith("proxy accuracy (%")  # issue 34: the search's means, not the validation's
    ax = plot_optuna_history(rows, tmp_path / "h.png", chance=0.1).axes[0]
    assert ax.get_ylabel().startswith("proxy accuracy")
    step = next(ln for ln in ax.get_lines() if ln.get_label() == "best candidate mean so far")
    assert list(step.get_ydata()) == pytest.approx([32.5, 32.5, 32.5, 42.5, 42.5])  # candidate means; stopped never count
    for name in ("f", "l", "h"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG


# ---------------------------------------------------------------- one real run, end to end
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """3 candidates × 2 seeds, validation (the top 2 + 1 random, + the paper's point, at 2× the epochs), the searched
    and the paper's families up to φ = 2, the report."""
    d = tmp_path_factory.mktemp("report") / "run"
    rc, out, err = run_cli("search_main", *TINY, "search.max_points=3", "report.enabled=true", "validate.enabled=true",
                           "validate.random_k=1",
                           "validate.epochs_mult=2", "family.train=true", "family.compare_paper=true",
                           "family.max_phi=2", "family.phis=[0,1,2,3,4]", "trials.measure_device_costs=true",
                           f"hydra.run.dir={d}")
    assert rc == 0, err[-3000:]
    return d


def md_table(md: str, heading: str) -> list[dict]:
    """The first markdown table after ``heading`` as a list of {column: cell}."""
    table = []
    for ln in md[md.index(heading):].splitlines():
        if ln.startswith("|"):
            table.append(ln)
        elif table:
            break
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


@pytest.mark.slow
def test_measured_constraint_every_candidate_at_the_target_cost(run_dir):
    rows = read_table(run_dir / "results.csv")
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6 and all(r["status"] == "ok" for r in rows)
    best = json.loads((run_dir / "best.json").read_text())
    base = best["base_resolution"]
    for r in rows:
        # the recorded gamma is the effective one, and the cost is the measured cost of the built proxy
        assert r["gamma"] == pytest.approx(r["resolution"] / base, abs=1e-4)
        spec = scale(B0, r["alpha"], r["beta"], "total")
        assert r["macs"] == spec_cost(spec, r["resolution"], 10).macs
        assert r["cost_ratio"] == pytest.approx(r["macs"] / spec_cost(B0, base, 10).macs, rel=1e-4)
        assert abs(r["cost_ratio"] / 2 - 1) <= best["cost_tolerance"] and r["cost_flag"] == "ok"
        assert r["latency_ms"] > 0 and r["train_step_ms"] > 0 and r["device"] == "cpu"
    plan = json.loads((run_dir / "candidates.json").read_text())
    assert len(plan["candidates"]) == 3 and all(c["reason"] for c in plan["infeasible"])


@pytest.mark.slow
def test_validation_decides_and_says_so(run_dir):
    rows, vrows = read_table(run_dir / "results.csv"), read_table(run_dir / "validation.csv")
    ranked, vranked = aggregate(rows), aggregate(vrows)
    best = json.loads((run_dir / "best.json").read_text())
    # the proxy's top 2 and one random other (and the paper's point), each with the search's seeds, at 2x the epochs
    validated = {r["candidate"]: r["selected_as"] for r in vrows}
    assert validated[ranked[0]["candidate"]] == validated[ranked[1]["candidate"]] == "top"
    assert sorted(validated.values()).count("random") == 1 and set(validated.values()) <= {"top", "random", "paper"}
    paper = [c["candidate"] for c in ranked if c["alpha"] == 1.2 and c["beta"] == 1.1]
    assert not paper or paper[0] in validated  # the paper's point, when searched, is always validated
    assert sorted(r["seed"] for r in vrows) == sorted([0, 1] * len(validated)) and all(r["epochs"] == 2 for r in vrows)
    assert best["decided_by"] == "validation" and best["candidate"] == vranked[0]["candidate"]
    assert best["proxy_pick"] == ranked[0]["candidate"]
    assert best["accuracy_mean"] == pytest.approx(vranked[0]["accuracy_mean"])
    fid = json.loads((run_dir / "fidelity.json").read_text())
    assert fid["n_candidates"] >= 2 and fid["kendall_tau"] is None and fid["tau_p"] is None
    assert "needs ≥ 5" in fid["note"]  # τ over fewer than 5 candidates is ±1 by construction: never printed
    summary = (run_dir / "summary.md").read_text()
    assert summary.splitlines()[2] == f"**How the compute splits:** {best['shares']['sentence']}"
    assert summary.splitlines()[4] == best["headline"][0] and "decided by the validation stage" in summary
    assert best["verdict"] in summary  # in full, after the rankings
    assert "± 0.0000" not in summary


@pytest.mark.slow
def test_family_reuses_the_searched_candidate_and_trains_the_rest(run_dir):
    best = json.loads((run_dir / "best.json").read_text())
    fam = json.loads((run_dir / "family.json").read_text())
    assert [m["name"] for m in fam["members"]] == ["b0", "b1", "b2", "b3", "b4"]
    b1 = fam["members"][1]
    assert (b1["depth_mult"], b1["width_mult"], b1["resolution"]) == (best["alpha"], best["beta"], best["resolution"])
    rows = {r["name"]: r for r in read_table(run_dir / "family_results.csv") if r["family"] == "searched"}
    assert set(rows) == {"b0", "b1", "b2"} and all(r["status"] == "ok" for r in rows.values())
    # B1 is the recommended candidate with seed 0: its search training is reused, not repeated
    assert rows["b1"]["reused_from"] == "results.csv" and rows["b0"]["reused_from"] is None
    search = {r["key"]: r for r in read_table(run_dir / "results.csv")}
    assert rows["b1"]["accuracy"] == search[f"{best['candidate']}/s0"]["accuracy"]
    paper = {r["name"]: r for r in read_table(run_dir / "family_results.csv") if r["family"] == "paper"}
    if paper:  # the paper's B0 is the searched family's B0: trained once in the stage
        assert paper["b0"]["reused_from"] == "family_results.csv" and paper["b0"]["accuracy"] == rows["b0"]["accuracy"]
    for m in fam["members"]:  # every member carries its exact spec
        assert (run_dir / "specs" / f"{m['name']}.json").is_file() and m["spec"]["stages"]


@pytest.mark.slow
def test_report_agrees_with_the_tables(run_dir):
    md = (run_dir / "report.md").read_text()
    best = json.loads((run_dir / "best.json").read_text())
    assert md.splitlines()[2] == best["verdict"], "the verdict opens the report"
    # the ranking: every candidate of results.csv, in order, with the interval of results.aggregate
    ranked = aggregate(read_table(run_dir / "results.csv"))
    rows = md_table(md, "## The search ranking")
    assert [(float(r["α"].split()[0]), float(r["β"]), float(r["γ"])) for r in rows] == [
        (c["alpha"], c["beta"], c["gamma"]) for c in ranked]
    for r, c in zip(rows, ranked):
        assert r["accuracy, 95 % CI"].startswith(f"{c['accuracy_mean']:.4f} [{c['accuracy_low']:.4f}, ")
    # the family: every emitted member; the trained ones with their mean over seeds, the others predicted
    fam = json.loads((run_dir / "family.json").read_text())["members"]
    trained = {c["name"]: c for c in aggregate([r for r in read_table(run_dir / "family_results.csv")
                                                if r["family"] == "searched"], key="name")}
    table = md_table(md, "## Family")
    assert [r["name"] for r in table] == [m["name"] for m in fam]
    for r, m in zip(table, fam):
        assert int(r["resolution (px)"]) == m["resolution"] and float(r["MACs / B0"]) == pytest.approx(m["macs_ratio"], abs=0.005)
        if m["name"] in trained:
            assert r["proxy accuracy"].startswith(f"{trained[m['name']]['accuracy_mean']:.4f}")
            assert r["latency (ms)"] != "—"
        else:
            assert r["proxy accuracy"].startswith("predicted ")
    assert set(trained) == {"b0", "b1", "b2"}
    curve_doc = json.loads((run_dir / "family_curve.json").read_text())
    assert [p["name"] for p in curve_doc["predictions"]] == ["b3", "b4"] and curve_doc["holdout"]["held_out"] is None
    assert "Held-out check: nothing to check" in md
    # diminishing returns recomputed from the table, and the pick
    pts = [{"name": n, "macs": fam[i]["macs"], "accuracy": trained[n]["accuracy_mean"]} for i, n in enumerate(["b0", "b1", "b2"])]
    steps = md_table(md, "## Diminishing returns")
    for row, a, b in zip(steps, pts, pts[1:]):
        gain = b["accuracy"] - a["accuracy"]
        assert float(row["gain per doubling"]) == pytest.approx(gain / math.log2(b["macs"] / a["macs"]), abs=5e-5)
    assert curve_doc["statement"] in md  # bold only when decided
    stated = re.search(r"\*\*Cost-effective pick: (\S+)\*\* .* rests on \*\*(measured|predicted)\*\*", md)
    assert bool(stated) == curve_doc["pick"]["decided"]
    if stated:
        assert stated.group(1) == curve_doc["pick"]["name"] and stated.group(2) == curve_doc["pick_basis"]
    else:
        lo, hi = curve_doc["pick"]["range"]
        assert f"members {lo}–{hi} are consistent with the data" in md
    # the fidelity section quotes fidelity.json; the paper's family is there unless the best is the paper's point
    fid = json.loads((run_dir / "fidelity.json").read_text())
    assert "Kendall τ" not in md.split("## Proxy fidelity")[1].split("##")[0] and fid["note"] in md
    if best["paper_candidate"] != best["candidate"]:
        assert "## Paper family" in md
    for name in ("landscape", "family_accuracy_vs_macs", "fidelity", "seed_spread"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:8] == PNG and f"](plots/{name}.png)" in md


@pytest.mark.slow
def test_rerender_never_trains_and_the_ablation_joins_the_report(run_dir, tmp_path):
    tables = {n: (run_dir / n).read_bytes() for n in ("results.csv", "validation.csv", "family_results.csv")}
    rc, out, err = run_cli("ablate_main", f"run_dir={run_dir}", "phis=[1]", "dataset.train_size=200",
                           "dataset.val_size=100", "dataset.image_size=32", "proxy.epochs=1", "proxy.batch_size=50",
                           "trials.measure_device_costs=false", f"hydra.run.dir={tmp_path}/a")
    assert rc == 0, err[-3000:]
    abl = json.loads((run_dir / "ablation.json").read_text())
    assert abl["same_data_as_search"] is True and all(r["status"] == "ok" for r in abl["rows"])
    assert {r["method"].split(" (")[0] for r in abl["rows"]} >= {"baseline", "depth-only", "width-only",
                                                                  "resolution-only", "compound best"}
    rc, out, err = run_cli("report_main", f"run_dir={run_dir}", "report.pick_rule=knee", f"hydra.run.dir={tmp_path}/r")
    assert rc == 0, err[-3000:]
    assert "[family" not in out + err and "[search" not in out + err, "a re-render trains nothing"
    assert {n: (run_dir / n).read_bytes() for n in tables} == tables
    md = (run_dir / "report.md").read_text()
    assert "report.pick_rule=knee" in md and "## Ablation" in md and "](plots/ablation.png)" in md


@pytest.mark.slow
def test_notebook_executes_against_the_run(run_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "analyze_search.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "outputs must be stripped in git"
    monkeypatch.setenv("SCALESEARCH_RUN_DIR", str(run_dir))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    text = "".join(o.get("text", "") for o in outputs)
    run = load_run(run_dir)  # the notebook's pick (marginal, 0.01) is the report's under the same rule
    best = json.loads((run_dir / "best.json").read_text())
    expect = curve_analysis(family_table(run.family["members"], run.family_rows), best["noise_sd"], ReportConfig(),
                            seed=best.get("seed", 0), noise_df=pooled_df(aggregate(run.rows)))
    assert f"run: {run_dir}" in text and f"pick {expect['pick']['name']} (rests on {expect['pick_basis']}" in text


def test_truncated_tables_and_json_are_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "results.csv").write_text("index,key,candidate,alpha,beta,gamma,seed,accuracy,status\n0,a/s0,a,1.2,1.1,1.4")
    (tmp_path / "best.json").write_text('{"candidate": "a", "alpha": 1.2')
    (tmp_path / "family.json").write_text('{"members": []}')
    with pytest.raises(ValueError, match=r"best.json is not readable JSON") as e:
        load_run(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "best.json").write_text('{"candidate": "a"}')
    with pytest.raises(ValueError, match=r"results.csv: line 2 has no status") as e:
        load_run(tmp_path)
    (tmp_path / "results.csv").write_text("index,key,seed,accuracy,status\n0,a/s0,zero,0.5,ok\n")
    with pytest.raises(ValueError, match=r"results.csv: line 2: seed='zero' is not a number"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match=r"has no results.csv"):
        load_run(tmp_path / "missing") if (tmp_path / "missing").mkdir() is None else None
