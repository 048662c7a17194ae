"""scalesearch-compare over a real Hydra multirun (the synthetic data and real CIFAR-10 JPEGs side by side),
and its refusals: incomparable settings (naming the setting), a multirun directory with no finished run."""

import json
import shutil

import pytest

from conftest import TINY, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def multirun(tmp_path_factory, cifar_folder):
    sweep = tmp_path_factory.mktemp("multirun")
    rc, out, err = run_cli("search_main", "-m", "dataset=synthetic,imagefolder", f"dataset.root={cifar_folder}",
                           "dataset.train_per_class=20", "dataset.val_per_class=10", *TINY, "search.max_points=2", "search.n_seeds=1",
                           "report.train_family=true", "report.max_phi=1", f"hydra.sweep.dir={sweep}",
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
    md = (tmp_path / "compare.md").read_text()
    assert md.count("| synthetic") == 1 and md.count("| imagefolder") == 1 and "confidence set" in md
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
