"""scalesearch-compare over a real Hydra multirun (the synthetic data and real CIFAR-10 JPEGs side by side),
and its refusals: incomparable settings (naming the setting), a multirun directory with no finished run."""

import json
import shutil

import pytest

from helpers import TINY, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def multirun(tmp_path_factory, cifar_folder):
    sweep = tmp_path_factory.mktemp("multirun")
    rc, out, err = run_cli("search_main", "-m", "dataset=synthetic,imagefolder", f"dataset.root={cifar_folder}",
                           "dataset.train_per_class=20", "dataset.val_per_class=10", *TINY, "search.max_points=2", "search.n_seeds=1",
                           "family.train=true", "family.max_phi=1", f"hydra.sweep.dir={sweep}",
                           "hydra.sweep.subdir=${hydra.job.num}")
    assert rc == 0, err[-3000:]
    return sweep


@pytest.mark.slow
def test_compare_a_multirun_over_datasets(multirun, tmp_path):
    rc, out, err = run_cli("compare_main", f"runs=[{multirun}]", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h")
    assert rc == 0, err[-3000:]
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert [r["dataset"]["name"] for r in doc["runs"]] == ["synthetic", "imagefolder"] and doc["paper"] == [1.2, 1.1, 1.15]
    for r, job in zip(doc["runs"], ("0", "1")):
        best = json.loads((multirun / job / "best.json").read_text())
        assert (r["alpha"], r["beta"], r["gamma"], r["accuracy_mean"]) == (best["alpha"], best["beta"], best["gamma"],
                                                                          best["accuracy_mean"])
        assert [best["alpha"], best["beta"], best["gamma"]] in r["confidence_set"]
        assert r["shares"] == best["shares"] and r["shares"]["sentence"]  # each run's model over shares
    md = (tmp_path / "compare.md").read_text()
    assert md.count("| synthetic") == 2 and md.count("| imagefolder") == 2 and "confidence set" in md
    assert "## How the compute splits, per dataset" in md  # the shares' effects side by side
    for name in ("compare_coefficients", "compare_families"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG and f"plots/{name}.png" in md


@pytest.mark.slow
def test_compare_refuses_incomparable_runs_and_empty_directories(multirun, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(multirun / "1", other)
    state = json.loads((other / "search.json").read_text())
    state["config"]["proxy"]["epochs"] = 4
    (other / "search.json").write_text(json.dumps(state))
    rc, out, err = run_cli("compare_main", f"runs=[{multirun / '0'},{other}]", f"hydra.run.dir={tmp_path}/h")
    assert rc == 2 and "differ in proxy.epochs (1 vs 4)" in err and "Traceback" not in err
    (tmp_path / "empty" / "0").mkdir(parents=True)
    rc, out, err = run_cli("compare_main", f"runs=[{tmp_path / 'empty'}]", f"hydra.run.dir={tmp_path}/h2")
    assert rc == 2 and "holds no finished run" in err


# ---------------------------------------------------------------- the table, without a run (fast)
def _rows(table, n_seeds=3):
    out = []
    for i, (name, accs) in enumerate(table.items()):
        out += [{"candidate": name, "alpha": 1.0 + 0.1 * i, "beta": 1.0, "gamma": 1.2, "seed": s, "accuracy": a,
                 "status": "ok", "cost_ratio": 2.0} for s, a in enumerate(accs)]
    return out


def test_confidence_set_recomputed_or_read_from_best_json():
    from scalesearch.apps.compare import confidence_set

    rows = _rows({"a": [0.70, 0.72, 0.71], "b": [0.69, 0.73, 0.70], "c": [0.40, 0.41, 0.42]})
    # recomputed by scalesearch.decide.stats.confidence_set: c is beaten clearly, a and b are not told apart
    assert [c["candidate"] for c in confidence_set(rows, {"val_images": 400})] == ["a", "b"]
    # best.json's own set wins (it is what the verdict said)
    assert [c["candidate"] for c in confidence_set(rows, {"confidence_set": ["a"]})] == ["a"]
    two = _rows({"a": [0.9, 0.91], "b": [0.1, 0.11]})
    assert [c["candidate"] for c in confidence_set(two, {})] == ["a", "b"]  # 2 seeds: nothing is excluded


def test_compare_markdown_states_the_set_and_the_decision(tmp_path):
    from scalesearch.apps.compare import compare_markdown, confidence_set
    from scalesearch.decide.results import aggregate
    from scalesearch.decide.verdict import verdict

    rows = _rows({"a": [0.70, 0.72, 0.71], "b": [0.50, 0.51, 0.49], "c": [0.40, 0.41, 0.42]})
    ranked = aggregate(rows)
    v = verdict(ranked, rows, "search", paper="c", fid=None, chance=0.1, budget="2 epochs", val_n=400)
    best = {**ranked[0], **{k: getattr(v, k) for k in ("confidence_set", "decided", "vs_paper", "vs_runner_up")},
            "decided_by": "search", "num_classes": 10}
    run = {"path": tmp_path, "config": {"dataset": {"name": "synthetic"}, "seed": 0}, "best": best, "fidelity": None,
           "rows": rows}
    run["confidence"] = confidence_set(rows, best)
    md = compare_markdown([run], {"coefficients": "plots/c.png"})
    line = next(x for x in md.splitlines() if x.startswith("| synthetic"))
    assert "| yes |" in line and "outside the set of the best" in line and "| (1, 1, 1.2) |" in line
    assert "worse" not in line
    assert "(1.1, 1, 1.2)" not in line and "family-wise" in md
