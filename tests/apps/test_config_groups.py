"""The config groups: ``trials`` (how every training runs), ``family`` (what trains after the search), ``report``
(rendering only). A key of an older version is refused on the command line with one line naming its new place, and an
older run's stored settings are read with each moved key in its new place (so it resumes, compares and validates)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from helpers import run_cli

from scalesearch import config as C
from scalesearch.plan import preflight as P
from scalesearch.plan import samplers as S
from scalesearch.run.resume import config_fingerprint, settings_diff
from test_cli import compose, in_process

OLD_STORED = {  # search.json's "config" as scalesearch 0.2 wrote it (the moved keys in their old places)
    "dataset": dataclasses.asdict(C.DatasetConfig()), "proxy": dataclasses.asdict(C.ProxyConfig()),
    "search": {**dataclasses.asdict(C.SearchConfig()), "cpus_per_trial": 2, "gpus_per_trial": 0,
               "max_concurrent_trials": None, "max_failures": 3, "reuse_actors": True, "measure_device_costs": False,
               "latency_batch": 8, "cost_min_run_time": 0.1},
    "cluster": dataclasses.asdict(C.ClusterConfig()), "model": dataclasses.asdict(C.ModelConfig()),
    "validate": dataclasses.asdict(C.ValidateConfig()),
    "report": {"enabled": True, "train_family": False, "max_phi": 2, "family_seeds": 3, "compare_paper": True,
               "ablation": False, "ablation_phis": [1.0], "pick_rule": "knee", "min_gain_per_doubling": 0.01,
               "top_k": 5},
    "seed": 0, "resume": False, "verbose": 1, "family_phis": [0.0, 1.0, 2.0],
}


@pytest.mark.parametrize("old, new", sorted(P.MOVED.items()))
def test_a_moved_key_is_one_line_naming_its_new_place_before_hydra_makes_a_directory(tmp_path, capsys, old, new):
    code, out, err = in_process("main", f"{old}=1", f"hydra.run.dir={tmp_path / 'run'}", capsys=capsys)
    assert code == 2 and out == "", err
    assert err == f"scalesearch: error: {old} moved to {new}; allowed: {new}=1\n"
    assert not (tmp_path / "run").exists()


def test_the_ablate_and_nas_apps_take_trials_not_search_for_their_resources(capsys):
    assert C.AblateAppConfig().trials == C.TrialsConfig() and not hasattr(C.AblateAppConfig(), "search")
    assert compose("ablate", "trials.gpus_per_trial=0.5").trials.gpus_per_trial == 0.5
    assert compose("nas", "trials=gpu_shared").trials.gpus_per_trial == 0.25
    code, _, err = in_process("ablate_main", "search.cpus_per_trial=2", capsys=capsys)
    assert code == 2 and "search.cpus_per_trial moved to trials.cpus_per_trial" in err, err


def test_an_older_runs_settings_are_read_with_each_moved_key_in_its_new_place():
    new = P.migrate_settings(OLD_STORED)
    assert new["trials"] == {"cpus_per_trial": 2, "gpus_per_trial": 0, "max_concurrent_trials": None,
                             "max_failures": 3, "reuse_actors": True, "measure_device_costs": False,
                             "latency_batch": 8, "cost_min_run_time": 0.1}
    assert new["family"] == {"train": False, "max_phi": 2, "seeds": 3, "compare_paper": True, "ablation": False,
                             "ablation_phis": [1.0], "phis": [0.0, 1.0, 2.0]}
    assert new["report"] == {"enabled": True, "pick_rule": "knee", "min_gain_per_doubling": 0.01, "top_k": 5}
    assert set(new["search"]) == {f.name for f in dataclasses.fields(C.SearchConfig)}
    assert "family_phis" not in new and OLD_STORED["search"]["cpus_per_trial"] == 2  # the input is not changed
    now = dataclasses.asdict(C.SearchAppConfig())
    assert P.migrate_settings(now) == now  # this version's settings come back equal
    assert settings_diff(OLD_STORED, C.SearchAppConfig()) == []  # so an older run resumes with the same settings


def test_trials_settings_never_define_a_result_but_the_timed_batch_of_a_latency_search():
    base = C.SearchAppConfig()
    other = dataclasses.replace(base, trials=C.TrialsConfig(cpus_per_trial=2, max_failures=4, latency_batch=16,
                                                            measure_device_costs=False))
    assert config_fingerprint(base) == config_fingerprint(other) and settings_diff(dataclasses.asdict(base), other) == []
    lat = dataclasses.replace(base, search=C.SearchConfig(cost="latency"))
    lat16 = dataclasses.replace(lat, trials=C.TrialsConfig(latency_batch=16))
    assert settings_diff(dataclasses.asdict(lat), lat16) == ["search.latency_batch: 8 there, 16 here"]


def test_the_family_and_report_groups_hold_what_their_names_say():
    report = {f.name for f in dataclasses.fields(C.ReportConfig)}
    assert report == {"enabled", "pick_rule", "min_gain_per_doubling", "top_k"}  # rendering only: nothing trains
    assert {f.name for f in dataclasses.fields(C.FamilyConfig)} == {"phis", "train", "max_phi", "seeds",
                                                                     "compare_paper", "ablation", "ablation_phis"}
    resources = {"cpus_per_trial", "gpus_per_trial", "max_concurrent_trials", "max_failures", "reuse_actors"}
    assert not resources & {f.name for f in dataclasses.fields(C.SearchConfig)}


def test_a_bad_family_value_names_its_key(tmp_path):
    rc, out, err = run_cli("search_main", "family.seeds=0", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert rc == 2 and err.strip().splitlines() == ["scalesearch: error: family.seeds=0; allowed: >= 1"], err
    assert not (tmp_path / "run").exists()
    json.dumps(OLD_STORED)  # (the fixture is JSON, as search.json is)


@pytest.mark.parametrize("name", ["NSGAIISampler", "NSGAIIISampler", "TPESampler"])
def test_every_sampler_pickles_as_ray_tune_saves_its_searcher(name):
    """Tune pickles the searcher (with its sampler) into the experiment state: Optuna 5's genetic samplers hold a
    threading.Lock, which made `scalesearch-nas nas.objective=pareto` fail ("cannot pickle '_thread.lock'")."""
    import pickle

    import optuna
    from ray import cloudpickle

    if not hasattr(optuna.samplers, name):
        pytest.skip(f"this optuna has no {name}")
    sampler = S.make_sampler(name, {}, "nas", 0)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(sampler))
        assert type(back) is type(sampler)
        assert {k for k in vars(back)} == {k for k in vars(sampler)}


@pytest.mark.parametrize("strategy", ["grid", "optuna", "surface", "race"])
def test_search_delta_sets_the_within_region_in_every_strategy(strategy):
    """search.delta (the options within δ of the best, and a race's indifference zone) is accepted by every strategy,
    with its range checked; a resume may change it (it defines no training)."""
    from omegaconf import OmegaConf

    base = ["search=race", "search.n_seeds=3"] if strategy == "race" else [f"search={strategy}"]
    P.check_search_app(OmegaConf.to_object(compose("config", *base, "search.delta=0.02")))
    with pytest.raises(ValueError, match=r"^search\.delta=1\.5; allowed: in \[0, 1\)"):
        P.check_search_app(OmegaConf.to_object(compose("config", *base, "search.delta=1.5")))
    a, b = (OmegaConf.to_object(compose("config", *base, f"search.delta={d}")) for d in (0.01, 0.03))
    assert config_fingerprint(a) == config_fingerprint(b)
