"""The report: the cost-effective pick rule on hand-made curves, the diminishing-returns arithmetic, seed
stability on hand-made rows; then one small real search (trained family, paper family) shared by the
checks of report.md against the artifacts, the plots, the ablation and report CLIs, and the notebook."""

import json
import math
import re

import pytest

from conftest import ROOT, run_cli
from scalesearch.report import (diminishing_returns, family_curve, family_table, load_run, pick_cost_effective,
                                plot_family, plot_landscape, plot_optuna_history, seed_stability)
from scalesearch.results import aggregate, read_results


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
    pick = pick_cost_effective(curve(accs), "marginal", threshold)
    assert (pick["name"], pick["rule"], pick["threshold"]) == (expected, "marginal", threshold)


@pytest.mark.parametrize("accs, expected", [
    ([0.5, 0.5, 0.5, 0.5], "b0"),                # flat: the cheapest
    ([0.50, 0.55, 0.60, 0.65], "b3"),            # straight in log-MACs: no knee, the largest
    ([0.50, 0.52, 0.58, 0.70], "b3"),            # accelerating returns: the largest
    ([0.50, 0.70, 0.74, 0.76], "b1"),            # clear knee
    ([0.50, 0.60, 0.68, 0.70, 0.71], "b2"),      # above the chord by .0475, .075, .0425: b2
    ([0.60, 0.55, 0.50], "b0"),                  # falling: the cheapest
    ([0.50, 0.70, 0.60, 0.65], "b1"),            # no larger member beats b1
])
def test_knee_rule(accs, expected):
    assert pick_cost_effective(curve(accs), "knee")["name"] == expected


def test_knee_uses_log_macs_and_any_order():
    # equal accuracy steps, but b1 → b2 costs three doublings: b1 is above the chord in log2(MACs)
    assert pick_cost_effective(curve([0.5, 0.6, 0.7], [1e6, 2e6, 16e6]), "knee")["name"] == "b1"
    assert pick_cost_effective(curve([0.5, 0.6, 0.7]), "knee")["name"] == "b2"
    shuffled = curve([0.50, 0.70, 0.74, 0.76])[::-1]
    assert pick_cost_effective(shuffled, "knee")["name"] == "b1"
    assert pick_cost_effective(shuffled, "marginal", 0.05)["name"] == "b1"


def test_diminishing_returns_arithmetic():
    steps = diminishing_returns(curve([0.40, 0.50, 0.52], [1e6, 3e6, 12e6]))
    assert [(s["from"], s["to"]) for s in steps] == [("b0", "b1"), ("b1", "b2")]
    assert steps[0]["macs_ratio"] == pytest.approx(3) and steps[0]["doublings"] == pytest.approx(math.log2(3))
    assert steps[0]["gain"] == pytest.approx(0.10) and steps[0]["gain_per_doubling"] == pytest.approx(0.10 / math.log2(3))
    assert steps[1]["doublings"] == pytest.approx(2) and steps[1]["gain_per_doubling"] == pytest.approx(0.01)


@pytest.mark.parametrize("points, rule, message", [
    (curve([0.5, 0.6]), "best", "pick_rule='best' is unknown; allowed: marginal, knee"),
    ([], "marginal", "no trained family member"),
    (curve([0.5, 0.6], [1e6, 1e6]), "marginal", "MACs must increase strictly"),
])
def test_pick_rejects_bad_input(points, rule, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        pick_cost_effective(points, rule)


# ---------------------------------------------------------------- seed stability
def rows_for(per_seed: dict[int, dict[float, float]], status=None):
    """results rows: per seed, {alpha: accuracy} (β = γ = 1); ``status`` maps (alpha, seed) to a non-ok status."""
    status = status or {}
    return [{"alpha": a, "beta": 1.0, "gamma": 1.0, "seed": s, "accuracy": acc, "cost_ratio": 2.0, "cost_flag": "ok",
             "status": status.get((a, s), "ok")} for s, accs in per_seed.items() for a, acc in accs.items()]


SEED0 = {1.0: 0.9, 1.1: 0.8, 1.2: 0.7, 1.3: 0.6}


@pytest.mark.parametrize("seed1, same_set, same_order", [
    ({1.0: 0.85, 1.1: 0.75, 1.2: 0.70, 1.3: 0.50}, True, True),    # the same order
    ({1.0: 0.80, 1.1: 0.90, 1.2: 0.70, 1.3: 0.10}, True, False),   # same three, swapped
    ({1.0: 0.80, 1.1: 0.50, 1.2: 0.70, 1.3: 0.95}, False, False),  # 1.3 enters the top-3
])
def test_seed_stability(seed1, same_set, same_order):
    s = seed_stability(rows_for({0: SEED0, 1: seed1}))
    assert (s["same_set"], s["same_order"], s["stable"]) == (same_set, same_order, same_order)
    assert [c[0] for c in s["per_seed_top"][0]] == [1.0, 1.1, 1.2]
    assert s["seeds"] == [0, 1] and s["k"] == 3


def test_seed_stability_one_seed_and_missing_seeds():
    assert seed_stability(rows_for({0: SEED0}))["stable"] is None
    # 1.0 failed under seed 1: only candidates ok under every seed are compared
    s = seed_stability(rows_for({0: SEED0, 1: {1.0: 0.99, 1.1: 0.8, 1.2: 0.7, 1.3: 0.6}}, status={(1.0, 1): "error"}))
    assert s["n_candidates"] == 3 and s["stable"] is True
    assert [c[0] for c in s["per_seed_top"][1]] == [1.1, 1.2, 1.3]


# ---------------------------------------------------------------- the ablation's variants
def test_ablation_variants_have_the_nominal_cost():
    from scalesearch.ablation import ablation_variants, compound_coefficients
    from scalesearch.scaling import PAPER, Coefficients

    best = Coefficients(1.4, 1.0, 1.2)
    vs = ablation_variants(32, [1, 2], compound_coefficients(best))
    assert [v["method"] for v in vs[:6]] == ["baseline", "depth-only", "width-only", "resolution-only",
                                             "compound best (1.4, 1.0, 1.2)", "compound paper (1.2, 1.1, 1.15)"]
    for v in vs:
        nominal = v["depth"] * v["width"] ** 2 * (v["resolution"] / 32) ** 2  # resolution rounded to a pixel
        assert nominal == pytest.approx(2 ** v["phi"] if "compound" not in v["method"] else v["nominal"], rel=0.05)
    single = [v for v in vs if v["phi"] == 2 and v["method"].endswith("-only")]
    assert [(v["depth"], v["width"], v["resolution"]) for v in single] == [(4, 1, 32), (1, 2, 32), (1, 1, 64)]
    assert list(compound_coefficients(PAPER)) == ["best (1.2, 1.1, 1.15) = paper"]  # the paper's once
    with pytest.raises(ValueError, match=re.escape("phis=[0]; allowed: a non-empty list of values > 0")):
        ablation_variants(32, [0])


# ---------------------------------------------------------------- tables and plots on hand-made data
def test_family_table_matches_trained_members_by_shape():
    fam = [{"name": f"b{i}", "phi": float(i), "depth_mult": d, "width_mult": w, "resolution": r, "macs": m, "params": 1}
           for i, (d, w, r, m) in enumerate([(1, 1, 32, 10), (1.2, 1.1, 37, 20), (1.44, 1.21, 42, 40)])]
    trained = [{"name": "b1", "phi": 1.0, "depth_mult": 1.2, "width_mult": 1.1, "resolution": 37, "accuracy": 0.3,
                "accuracy_std": 0.0, "macs": 21, "status": "ok", "seeds": [0]},
               {"name": "b2", "phi": 2.0, "depth_mult": 1.44, "width_mult": 1.21, "resolution": 40, "accuracy": 0.4,
                "accuracy_std": 0.0, "macs": 30, "status": "ok", "seeds": [0]}]  # another resolution: not b2
    table = family_table(fam, trained)
    assert [t["accuracy"] for t in table] == [None, 0.3, None]
    assert family_curve(table) == [{"name": "b1", "macs": 21, "accuracy": 0.3}]


def test_plots_are_labelled(tmp_path):
    fig = plot_family({"searched": [{"name": f"b{i}", "macs": m, "accuracy": a, "accuracy_std": 0.01}
                                    for i, (m, a) in enumerate([(8e6, 0.5), (17e6, 0.6), (35e6, 0.62)])]},
                      {"name": "b1", "label": "searched", "rule": "marginal"}, tmp_path / "f.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "MACs per image (M, log scale)" and "%" in ax.get_ylabel()
    assert "cost-effective pick: b1 (marginal)" in [t.get_text() for t in ax.get_legend().get_texts()]
    rows = rows_for({0: SEED0}, status={(1.3, 0): "diverged"})
    fig = plot_landscape(rows, {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}, tmp_path / "l.png", target=2.0)
    ax, cbar = fig.axes
    assert "α" in ax.get_xlabel() and "β" in ax.get_ylabel() and "accuracy (%" in cbar.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ok (3 trials)" in labels and "diverged (1 trials)" in labels and any(lb.startswith("best") for lb in labels)
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG and (tmp_path / "l.png").read_bytes()[:8] == PNG


def test_optuna_history_is_the_running_best(tmp_path):
    rows = rows_for({0: {1.0: 0.3, 1.1: 0.5, 1.2: 0.4, 1.3: 0.6}}, status={(1.1, 0): "stopped"})
    ax = plot_optuna_history(rows, tmp_path / "h.png").axes[0]
    step = next(ln for ln in ax.get_lines() if ln.get_label() == "best so far")
    assert list(step.get_ydata()) == [30, 30, 40, 60]  # the stopped trial's 0.5 never counts
    assert ax.get_xlabel().startswith("trial number") and "%" in ax.get_ylabel()


def handmade_run(path, strategy="optuna"):
    """A run directory written by hand (no Hydra record, so no settings to train with)."""
    from scalesearch.io import atomic_write_csv, atomic_write_json
    from scalesearch.results import COLUMNS

    rows = [{**r, "trial_id": f"t{i}", "product": 2.0} for i, r in enumerate(rows_for({0: SEED0, 1: SEED0}))]
    atomic_write_csv(path / "results.csv", rows, COLUMNS)
    atomic_write_json(path / "best.json", {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "product": 2.0, "cost_ratio": 2.0,
                                           "accuracy_mean": 0.9, "accuracy_std": 0.0, "n_seeds": 2, "strategy": strategy,
                                           "dataset": "synthetic", "num_classes": 10, "base_resolution": 32})
    atomic_write_json(path / "family.json", [
        {"name": f"b{i}", "phi": float(i), "depth_mult": d, "width_mult": 1.0, "resolution": 32, "dropout": 0.2,
         "params": p, "macs": m, "macs_ratio": m / 8474848, "ideal_ratio": 2.0**i, "phi_fit": None}
        for i, (d, p, m) in enumerate([(1.0, 4020358, 8474848), (2.0, 8954794, 17479648)])])
    return path


def test_report_of_an_untrained_optuna_run(tmp_path):
    from scalesearch.config import ReportConfig
    from scalesearch.report import write_report

    md = write_report(handmade_run(tmp_path), ReportConfig()).read_text()
    assert "No member was trained" in md and "Cost-effective pick" not in md
    assert "](plots/optuna_history.png)" in md and "Top-3 ranking stable across seeds [0, 1]: **yes**" in md
    for name in ("landscape", "optuna_history"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "plots" / "family_accuracy_vs_macs.png").exists()
    with pytest.raises(ValueError, match=r"needs the search's settings, but .*\.hydra/config.yaml is missing"):
        write_report(tmp_path, ReportConfig(train_family=True))


@pytest.mark.parametrize("override, message", [
    ({"pick_rule": "best"}, "report.pick_rule='best' is unknown; allowed: marginal, knee"),
    ({"max_phi": -1}, "report.max_phi=-1; allowed: >= 0"),
    ({"family_seeds": 0}, "report.family_seeds=0; allowed: >= 1"),
])
def test_bad_report_settings_are_one_line_errors(tmp_path, override, message):
    from scalesearch.config import ReportConfig
    from scalesearch.report import write_report

    with pytest.raises(ValueError, match=re.escape(message)):
        write_report(tmp_path, ReportConfig(**override))  # checked before the run directory is read


def test_report_cli_without_run_dir(tmp_path):
    rc, out, err = run_cli("report_main", f"hydra.run.dir={tmp_path}")
    assert rc == 2 and err.strip() == "scalesearch: error: run_dir is not set; allowed: scalesearch-report run_dir=<a search run directory>"


def test_load_run_rejects_a_directory_without_results(tmp_path):
    (tmp_path / "best.json").write_text("{}")
    with pytest.raises(ValueError, match=r"has no results.csv; allowed: a finished search run directory"):
        load_run(tmp_path)


# ---------------------------------------------------------------- one real run, end to end
PNG = b"\x89PNG\r\n\x1a\n"
DATA = ["dataset.train_size=200", "dataset.val_size=100", "dataset.image_size=32"]
BUDGET = ["proxy.epochs=1", "proxy.batch_size=50"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A grid search of 2 candidates × 2 seeds whose report trains the family and the paper's up to φ = 2."""
    d = tmp_path_factory.mktemp("report") / "run"
    rc, out, err = run_cli("search_main", "cluster.address=local", "search.max_points=2", "search.n_seeds=2", *DATA,
                           *BUDGET, "family_phis=[0,1,2,3]", "report.train_family=true", "report.compare_paper=true",
                           "report.max_phi=2", f"hydra.run.dir={d}")
    assert rc == 0, err[-3000:]
    return d


def md_section_table(md: str, heading: str) -> list[dict]:
    """The first markdown table after ``heading`` as a list of {column: cell}."""
    table = []
    for ln in md[md.index(heading):].splitlines():
        if ln.startswith("|"):
            table.append(ln)
        elif table:
            break
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def stated_pick(md: str) -> str:
    return re.search(r"\*\*Cost-effective pick: (\w+)\*\*", md).group(1)


@pytest.mark.slow
def test_report_tables_agree_with_the_artifacts(run_dir):
    md = (run_dir / "report.md").read_text()
    fam = json.loads((run_dir / "family.json").read_text())
    trained = json.loads((run_dir / "family_trained.json").read_text())
    searched = {t["name"]: t for t in trained["families"]["searched"]["members"]}
    assert sorted(searched) == ["b0", "b1", "b2"] and all(t["status"] == "ok" for t in searched.values())
    # the trained members are the emitted ones: same shape and the same measured MACs
    for m in fam[:3]:
        t = searched[m["name"]]
        assert (t["depth_mult"], t["width_mult"], t["resolution"], t["macs"]) == (
            m["depth_mult"], m["width_mult"], m["resolution"], m["macs"])

    table = md_section_table(md, "## Family")
    assert [r["name"] for r in table] == [m["name"] for m in fam]
    for row, m in zip(table, fam):
        assert float(row["params (M)"]) == pytest.approx(m["params"] / 1e6, abs=5e-4)
        assert float(row["MACs (M)"]) == pytest.approx(m["macs"] / 1e6, abs=5e-4)
        assert int(row["resolution (px)"]) == m["resolution"]
        t = searched.get(m["name"])
        assert row["proxy accuracy"] == ("—" if t is None else f"{t['accuracy']:.4f}")

    # diminishing returns and the pick, recomputed from family_trained.json
    pts = sorted(({"name": n, "macs": t["macs"], "accuracy": t["accuracy"]} for n, t in searched.items()),
                 key=lambda p: p["macs"])
    steps = md_section_table(md, "## Diminishing returns")
    for row, a, b in zip(steps, pts, pts[1:]):
        assert row["step"] == f"{a['name']} → {b['name']}"
        gain = b["accuracy"] - a["accuracy"]
        assert float(row["accuracy gain"]) == pytest.approx(gain, abs=5e-5)
        assert float(row["gain per doubling"]) == pytest.approx(gain / math.log2(b["macs"] / a["macs"]), abs=5e-5)
    assert len(steps) == 2
    assert "report.pick_rule=marginal" in md and "at least 0.0100 accuracy" in md
    assert stated_pick(md) == pick_cost_effective(pts, "marginal", 0.01)["name"]

    # the paper's family, trained with the same budget (unless the search found the paper's coefficients)
    best = json.loads((run_dir / "best.json").read_text())
    if (best["alpha"], best["beta"], best["gamma"]) == (1.2, 1.1, 1.15):
        assert "paper" not in trained["families"] and "The searched coefficients are the paper's" in md
    else:
        paper = {t["name"]: t for t in trained["families"]["paper"]["members"]}
        rows = md_section_table(md, "## Paper family")
        assert [r["name"] for r in rows] == ["b0", "b1", "b2"]
        assert [r["proxy accuracy"] for r in rows] == [f"{paper[r['name']]['accuracy']:.4f}" for r in rows]
        assert paper["b0"]["accuracy"] == searched["b0"]["accuracy"]  # the same B0: trained once

    # seed spread against results.csv
    ranked = aggregate(read_results(run_dir / "results.csv"))
    spread = md_section_table(md, "## Seed spread")
    assert len(spread) == len(ranked) == 2
    for row, c in zip(spread, ranked):
        assert (float(row["α"]), float(row["β"]), float(row["γ"])) == (c["alpha"], c["beta"], c["gamma"])
        assert row["accuracy (mean ± std)"] == f"{c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f}"
        assert row["seeds"] == "2"
    assert (best["alpha"], best["beta"], best["gamma"]) == (ranked[0]["alpha"], ranked[0]["beta"], ranked[0]["gamma"])
    stable = seed_stability(read_results(run_dir / "results.csv"))["stable"]
    assert f"Top-2 ranking stable across seeds [0, 1]: **{'yes' if stable else 'no'}**" in md


@pytest.mark.slow
def test_plots_are_valid_pngs(run_dir):
    from matplotlib.image import imread

    md = (run_dir / "report.md").read_text()
    for name in ("landscape", "family_accuracy_vs_macs"):
        path = run_dir / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG
        h, w, _ = imread(path).shape
        assert h > 300 and w > 500
        assert f"](plots/{name}.png)" in md
    assert not (run_dir / "plots" / "optuna_history.png").exists()  # a grid run has no optimisation history


@pytest.mark.slow
def test_ablation_then_report_cli_rerender(run_dir, tmp_path):
    rc, out, err = run_cli("ablate_main", f"run_dir={run_dir}", "phis=[1]", *DATA, *BUDGET, "proxy.threads=1",
                           f"hydra.run.dir={tmp_path}/a")
    assert rc == 0, err[-3000:]
    abl = json.loads((run_dir / "ablation.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    by = {r["method"].split(" (")[0]: r for r in abl["rows"]}
    is_paper = (best["alpha"], best["beta"], best["gamma"]) == (1.2, 1.1, 1.15)
    assert abl["same_data_as_search"] is True and len(abl["rows"]) == (5 if is_paper else 6)
    assert set(by) == {"baseline", "depth-only", "width-only", "resolution-only", "compound best"} | (
        set() if is_paper else {"compound paper"})
    assert (by["depth-only"]["depth"], by["width-only"]["width"], by["resolution-only"]["resolution"]) == (
        2.0, pytest.approx(math.sqrt(2)), round(32 * math.sqrt(2)))
    comp = by["compound best"]
    assert (comp["depth"], comp["width"], comp["resolution"]) == (
        pytest.approx(best["alpha"]), pytest.approx(best["beta"]), round(32 * best["gamma"]))
    assert all(r["status"] == "ok" and r["macs"] > by["baseline"]["macs"] for r in abl["rows"][1:])

    trained = run_dir / "family_trained.json"
    before = (trained.read_bytes(), trained.stat().st_mtime_ns)
    rc, out, err = run_cli("report_main", f"run_dir={run_dir}", "report.train_family=true", "report.compare_paper=true",
                           "report.max_phi=2", "report.pick_rule=knee", f"hydra.run.dir={tmp_path}/r")
    assert rc == 0, err[-3000:]
    assert "report: training" not in out + err  # re-rendered from family_trained.json
    assert (trained.read_bytes(), trained.stat().st_mtime_ns) == before
    md = (run_dir / "report.md").read_text()
    searched = json.loads(trained.read_text())["families"]["searched"]["members"]
    pts = [{"name": t["name"], "macs": t["macs"], "accuracy": t["accuracy"]} for t in searched]
    assert "report.pick_rule=knee" in md and stated_pick(md) == pick_cost_effective(pts, "knee")["name"]
    rows = md_section_table(md, "## Ablation")
    assert [r["accuracy"] for r in rows] == [f"{r['accuracy']:.4f}" for r in abl["rows"]]
    assert (run_dir / "plots" / "ablation.png").read_bytes()[:8] == PNG and "](plots/ablation.png)" in md


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
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # landscape and family plots, inline
    text = "".join(o.get("text", "") for o in outputs)
    md = (run_dir / "report.md").read_text()
    assert f"run: {run_dir}" in text and f"pick {stated_pick(md)}" in text


def test_settings_of_an_in_process_run_come_from_search_json(tmp_path):
    """A run made by run_search() in a Python process has no .hydra/ record: scalesearch-report
    re-renders it with the settings kept in search.json."""
    import dataclasses

    from conftest import compose_search
    from scalesearch.io import atomic_write_json
    from scalesearch.report import load_settings

    assert load_settings(tmp_path) is None
    cfg = compose_search("proxy.epochs=3", "dataset.train_size=300", "search.n_seeds=2")
    atomic_write_json(tmp_path / "search.json", {"fingerprint": "x", "status": "complete", "config": dataclasses.asdict(cfg)})
    assert load_settings(tmp_path) == cfg
