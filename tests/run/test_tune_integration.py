"""What Ray Tune shows the searcher (issue 19): only evaluated epochs, one value per finished training.

Unit level: searcher.FinishedOnly between Tune and a recording searcher. End to end: the single-seed Optuna search
of the issue's report, at the default proxy budget (2 epochs, evaluated after the last only), with a real
SQLite study read back: one COMPLETE value per trial, equal to the table's accuracy, no intermediate value."""

import math

import optuna
import pytest
from helpers import run_cli
from ray.tune.search import Searcher

from scalesearch.decide.results import read_table
from scalesearch.run.searcher import FinishedOnly


class Recorder(Searcher):
    def __init__(self):
        super().__init__(metric="accuracy", mode="max")
        self.results, self.completed = [], []

    def suggest(self, trial_id):
        return {}

    def on_trial_result(self, trial_id, result):
        self.results.append((trial_id, result))

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result, error))


@pytest.mark.parametrize("last, told, error", [
    ({"accuracy": 0.4, "final": True, "status": "ok"}, 0.4, False),                 # a finished training: its value
    ({"accuracy": 0.3, "epoch": 1, "final": False}, None, False),                   # stopped by ASHA / an interrupt
    ({"accuracy": 0.0, "final": True, "status": "diverged"}, None, True),           # never a made-up 0
    ({"accuracy": 0.0, "final": True, "status": "infeasible"}, None, True),
    ({"accuracy": float("nan"), "final": True, "status": "error", "recorded_row": {}}, None, True),
    (None, None, True),                                                             # Tune: an errored trial
])
def test_the_searcher_learns_only_finished_values(last, told, error):
    inner = Recorder()
    s = FinishedOnly(inner)
    s.on_trial_complete("t", result=last, error=last is None)
    (_, result, err), = inner.completed
    assert (result or {}).get("accuracy") == told and err is error


def test_intermediate_results_reach_the_searcher_only_with_the_metric():
    inner = Recorder()
    s = FinishedOnly(inner)
    s.on_trial_result("t", {"epoch": 1, "train_loss": 2.0, "final": False})            # an unevaluated epoch
    s.on_trial_result("t", {"epoch": 2, "accuracy": float("nan"), "final": False})
    s.on_trial_result("t", {"epoch": 3, "accuracy": 0.5, "final": False})              # evaluated: Optuna's pruners
    s.on_trial_result("t", {"epoch": 4, "accuracy": 0.6, "final": True})               # told once, at completion
    assert [r["epoch"] for _, r in inner.results] == [3]


@pytest.mark.slow
def test_single_seed_optuna_search_at_the_default_budget(tmp_path):
    run_dir = tmp_path / "run"
    rc, out, err = run_cli("search_main", "search=optuna", "search.num_samples=3", "search.n_seeds=1",
                           "validate.enabled=false", "report.enabled=false", "search.storage=sqlite:///optuna.db",
                           "dataset.train_size=60", "dataset.val_size=30", f"hydra.run.dir={run_dir}")
    assert rc == 0, (out + err)[-4000:]
    rows = [r for r in read_table(run_dir / "results.csv") if r["status"] == "ok"]
    assert len(rows) == 3 and all(r["epochs"] == 2 for r in rows), rows
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert sorted(t.value for t in trials) == pytest.approx(sorted(r["accuracy"] for r in rows), abs=1e-6)
    assert all(t.intermediate_values == {} for t in trials)  # no epoch before the last was evaluated
    assert all(math.isfinite(t.value) for t in trials)


def test_the_optuna_sampler_is_seeded_by_seed_whatever_its_class():
    """The default TPESampler (whose __init__ optuna wraps) used to get no seed: the same seed suggested other
    candidates. Now two samplers built from one config suggest the same points; another seed others."""
    import optuna

    from helpers import compose_search
    from scalesearch.plan.samplers import search_sampler

    def suggest(*overrides):
        study = optuna.create_study(sampler=search_sampler(compose_search("search=optuna", *overrides)))
        study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=12)
        return [t.params["x"] for t in study.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert suggest() == suggest() != suggest("seed=1")
    assert suggest("search.sampler=QMCSampler") == suggest("search.sampler=QMCSampler")
