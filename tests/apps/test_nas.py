"""Baseline architecture search (issue 8): the block space, the NAS on real Ray + Optuna, and the chain
NAS → coefficient search → family through the real Hydra app."""

import json
import math

import optuna
import pytest
import torch

from helpers import run_cli
from scalesearch.scaling.cost import count_cost, count_params
from scalesearch.scaling.spec import load_baseline
from scalesearch.scaling.model import build_model
from scalesearch.config import NASAppConfig
from scalesearch.apps.nas import check_nas_app, objective_value, pareto_front, run_nas
from scalesearch.plan.blocks import arch_string, load_block_space
from scalesearch.scaling.spec import B0, ModelSpec, round_channels

TINY = ["dataset.train_size=200", "dataset.val_size=100", "dataset.image_size=32", "dataset.base_resolution=32",
        "proxy.epochs=1", "proxy.batch_size=50", "trials.measure_device_costs=false", "verbose=0"]


def compose_nas(*overrides) -> NASAppConfig:
    """Real Hydra composition of conf/nas.yaml → a validated NASAppConfig."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scalesearch.apps.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="nas", overrides=list(overrides)))


# ---------------------------------------------------------------- the space
def test_space_is_the_issue_space_and_contains_b0_exactly():
    s = load_block_space("blocks")
    assert len(s.stages) == len(B0.stages) and [c.stride for c in s.stages] == [st.stride for st in B0.stages]
    for c, st in zip(s.stages, B0.stages):
        assert c.kernel == (3, 5) and c.expand_ratio == (1, 4, 6) and c.se_ratio == (0.0, 0.25)
        assert c.repeats == tuple(r for r in (st.repeats - 1, st.repeats, st.repeats + 1) if r >= 1)
        assert c.out_channels == tuple(sorted({round_channels(st.out_channels * m) for m in (0.75, 1.0, 1.25)}))
    assert s.contains(B0)
    params = s.params_of(B0)
    assert s.spec(params) == B0
    # the Optuna define-by-run space reaches B0 (FixedTrial answers every suggest from params)
    assert s.spec(s.define_by_run(optuna.trial.FixedTrial(params))) == B0
    # a spec off the space is rejected, naming the value
    from dataclasses import replace

    off = replace(B0, stages=(replace(B0.stages[0], kernel=7),) + B0.stages[1:])
    assert not s.contains(off)
    with pytest.raises(ValueError, match=r"stage 0 kernel=7 is not in space blocks; allowed: \[3, 5\]"):
        s.params_of(off)


@pytest.fixture
def one_thread():
    """One torch thread: two OpenMP threads spin against each other on a busy 2-core machine (10x slower)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_random_specs_build_and_train_forward_backward(one_thread):
    s = load_block_space("blocks")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    torch.manual_seed(0)
    archs = set()
    for _ in range(30):
        spec = s.spec(s.define_by_run(study.ask()))
        assert s.contains(spec) and isinstance(spec, ModelSpec)
        archs.add(arch_string(spec))
        model = build_model(spec=spec, num_classes=10)
        assert model.spec == spec  # build_model's scale(spec, 1, 1) keeps every rounded width and repeat
        out = model(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10)
        torch.nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(archs) == 30


BAD_SPACES = {
    "empty": ("", "is empty or not a mapping"),
    "no stages": ("choices: {kernel: [3]}\nstages: []\n", "stages must be a non-empty list"),
    "empty choice": ("choices: {kernel: [], expand_ratio: [1], se_ratio: [0], repeats_delta: [0], channel_mult: [1]}\n"
                     "stages: [{stride: 1, out_channels: 16, repeats: 1}]\n", r"kernel=\[\] admits no value \(contradictory\)"),
    "no repeats left": ("choices: {kernel: [3], expand_ratio: [1], se_ratio: [0], repeats_delta: [-2, -1], channel_mult: [1]}\n"
                        "stages: [{stride: 1, out_channels: 16, repeats: 1}]\n",
                        r"repeats 1 \+ repeats_delta \[-2, -1\] leaves no block count >= min_repeats 1 \(contradictory\)"),
    "unknown top key": ("kernels: [3]\nstages: [{stride: 1, out_channels: 16, repeats: 1}]\n", r"unknown keys \['kernels'\]"),
    "unknown choice": ("choices: {kernel: [3], dilation: [1]}\nstages: [{stride: 1, out_channels: 16, repeats: 1}]\n",
                       r"unknown choices \['dilation'\]"),
    "unknown stage key": ("choices: {kernel: [3], expand_ratio: [1], se_ratio: [0], repeats_delta: [0], channel_mult: [1]}\n"
                          "stages: [{stride: 1, out_channels: 16, repeats: 1, groups: 2}]\n", r"unknown keys \['groups'\]"),
    "even kernel": ("choices: {kernel: [3, 4], expand_ratio: [1], se_ratio: [0], repeats_delta: [0], channel_mult: [1]}\n"
                    "stages: [{stride: 1, out_channels: 16, repeats: 1}]\n", r"kernel=4 is outside what the builder accepts"),
    "se ratio": ("choices: {kernel: [3], expand_ratio: [1], se_ratio: [1.5], repeats_delta: [0], channel_mult: [1]}\n"
                 "stages: [{stride: 1, out_channels: 16, repeats: 1}]\n", r"se_ratio=1.5 is outside"),
    "expand 0": ("choices: {kernel: [3], expand_ratio: [0], se_ratio: [0], repeats_delta: [0], channel_mult: [1]}\n"
                 "stages: [{stride: 1, out_channels: 16, repeats: 1}]\n", r"expand_ratio=0 is outside"),
    "stride choice": ("choices: {kernel: [3], expand_ratio: [1], se_ratio: [0], repeats_delta: [0], channel_mult: [1]}\n"
                      "stages: [{stride: [1, 2], out_channels: 16, repeats: 1}]\n", r"stride=\[1, 2\]; allowed: 1 or 2"),
    "stem not /8": ("stem_channels: 30\nchoices: {kernel: [3]}\nstages: [{stride: 1, out_channels: 16, repeats: 1}]\n",
                    r"stem_channels=30; allowed: a multiple of 8"),
    "missing choice": ("choices: {kernel: [3]}\nstages: [{stride: 1, out_channels: 16, repeats: 1}]\n",
                       r"stage 0: no expand_ratio choices"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_bad_space_files_are_one_line_errors(tmp_path, case):
    text, match = BAD_SPACES[case]
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        load_block_space(str(p))
    assert "\n" not in str(e.value)


def test_nas_config_checks_and_positive_w_warns():
    with pytest.warns(UserWarning, match=r"nas.w=0.07 is positive: .* rewards cost"):
        check_nas_app(compose_nas("nas.w=0.07"))
    for override, match in [("nas.objective=flops", r"nas.objective='flops' is unknown; allowed: weighted, pareto"),
                            ("nas.cost=energy", r"nas.cost='energy' is unknown; allowed: macs, latency"),
                            ("nas.sampler=Nope", r"nas.sampler='Nope' is not an optuna sampler"),
                            ("nas.num_samples=0", r"nas.num_samples=0; allowed: >= 1"),
                            ("nas.target_macs=-1", r"nas.target_macs=-1.0; allowed: > 0"),
                            ("nas.space=nope", r"nas.space='nope' not found")]:
        with pytest.raises(ValueError, match=match):
            check_nas_app(compose_nas(override))


def test_pareto_front_and_objective_units():
    rows = [{"status": "ok", "accuracy": a, "cost": c, "trial_id": i} for i, (a, c) in
            enumerate([(0.5, 10), (0.6, 20), (0.4, 30), (0.6, 15), (0.5, 10), (0.7, 40)])]
    rows.append({"status": "error", "accuracy": None, "cost": None, "trial_id": 9})
    assert [r["trial_id"] for r in pareto_front(rows)] == [0, 4, 3, 5]  # ties at (0.5, 10) both stay
    assert objective_value(0.5, 2.0, 1.0, -0.07) == pytest.approx(0.5 * 2 ** -0.07)
    assert objective_value(0.5, 1.0, 1.0, -0.07) == 0.5


# ---------------------------------------------------------------- real searches
def _check_front(run_dir):
    import csv

    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [{**r, "accuracy": float(r["accuracy"]), "cost": float(r["cost"]), "objective": float(r["objective"])}
          for r in rows if r["status"] == "ok"]
    front = json.loads((run_dir / "pareto.json").read_text())
    pts = front["points"]
    assert pts, "an ok trial always leaves a non-empty front"
    for p in pts:  # no trial dominates a front point
        assert not any(o["accuracy"] >= p["accuracy"] and o["cost"] <= p["cost"] and
                       (o["accuracy"] > p["accuracy"] or o["cost"] < p["cost"]) for o in ok), p
    # and every non-dominated trial is on the front
    nondom = {o["trial_id"] for o in ok if not any(
        q["accuracy"] >= o["accuracy"] and q["cost"] <= o["cost"] and (q["accuracy"] > o["accuracy"] or q["cost"] < o["cost"])
        for q in ok)}
    assert {p["trial_id"] for p in pts} == nondom
    assert {r["trial_id"] for r in rows if r["pareto"] == "True"} == nondom
    return rows, ok, front


@pytest.mark.slow
def test_nas_pareto_search(ray_session, tmp_path):
    cfg = compose_nas("nas.objective=pareto", "nas.num_samples=5", "+nas.sampler_kwargs.population_size=3", *TINY)
    baseline = run_nas(cfg, tmp_path)
    rows, ok, front = _check_front(tmp_path)
    assert len(rows) == 5 and len(ok) == 5 and front["sampler"] == "NSGAIISampler" and front["cost_kind"] == "macs"
    assert sum(r["is_b0"] == "True" for r in rows) == 1  # B0 evaluated (enqueued first)
    assert len({r["arch"] for r in rows}) >= 4
    # the cost column is the MACs measured on each front spec, and the objective follows from it
    b0_macs = count_cost(build_model(spec=B0, num_classes=10), 32).macs
    assert front["target"] == b0_macs and front["target_is_b0"]
    for p in front["points"]:
        spec = ModelSpec.from_dict(p["spec"])
        c = count_cost(build_model(spec=spec, num_classes=10), 32)
        assert p["cost"] == p["macs"] == c.macs and p["params"] == c.params and p["arch"] == arch_string(spec)
        assert p["objective"] == pytest.approx(p["accuracy"] * (c.macs / b0_macs) ** -0.07, abs=1e-6)
    # baseline.json: the ok trial with the best weighted objective, on the front, loadable as the coefficient baseline
    assert baseline["objective"] == max(o["objective"] for o in ok) and baseline["on_pareto_front"]
    spec = load_baseline(str(tmp_path / "baseline.json"))
    assert arch_string(spec) == baseline["arch"] and baseline["cost_kind"] == "macs"
    assert baseline["macs"] == count_cost(build_model(spec=spec, num_classes=10), 32).macs
    assert baseline["b0"]["arch"] == arch_string(B0)
    md = (tmp_path / "pareto.md").read_text()
    assert "cost used: **macs**" in md and "B0 in this search" in md and "(chosen)" in md
    assert (tmp_path / "plots" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_nas_latency_cost(ray_session, tmp_path):
    cfg = compose_nas(*TINY, "nas.cost=latency", "nas.num_samples=2", "trials.max_concurrent_trials=1",
                      "nas.latency_min_run_time=0.1")
    baseline = run_nas(cfg, tmp_path)
    rows, ok, front = _check_front(tmp_path)
    assert len(ok) == 2 and all(r["cost_kind"] == "latency" for r in rows)
    assert all(0 < o["cost"] < 10_000 and o["cost"] != float(o["macs"]) for o in ok)  # ms, measured, not MACs
    assert baseline["cost_kind"] == "latency" and front["target"] > 0
    assert baseline["objective"] == pytest.approx(
        baseline["accuracy"] * (baseline["cost"] / front["target"]) ** -0.07, abs=1e-6)
    md = (tmp_path / "pareto.md").read_text()
    assert "cost used: **latency** (inference latency, ms per batch of 8 at 32 px)" in md


@pytest.mark.slow
def test_chained_experiment_emits_family_of_found_baseline(tmp_path):
    rc, out, err = run_cli("nas_main", "+experiment=nas_chain", "dataset.train_size=200", "dataset.val_size=100",
                           "dataset.base_resolution=32", "nas.num_samples=3", "search.max_points=2", "search.n_seeds=1",
                           "trials.measure_device_costs=false", "verbose=0", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err[-3000:]
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    found = load_baseline(str(tmp_path / "baseline.json"))
    coeff = tmp_path / "coefficients"
    best = json.loads((coeff / "best.json").read_text())
    assert best["baseline"] == str(tmp_path / "baseline.json")
    fam = json.loads((coeff / "family.json").read_text())["members"]
    assert [m["name"] for m in fam] == ["b0", "b1", "b2", "b3"]
    # the family's B0 is the found spec: same params and (base resolution 32) the same MACs as in the NAS
    assert fam[0]["params"] == count_params(build_model(spec=found, num_classes=10)) == baseline["params"]
    assert fam[0]["macs"] == baseline["macs"]
    assert fam[1]["params"] > fam[0]["params"] and math.isclose(fam[1]["depth_mult"], best["alpha"], abs_tol=1e-3)
    # the coefficient search trained scaled copies of the found baseline, not of B0
    from scalesearch.decide.results import read_table

    rows = read_table(coeff / "results.csv")
    assert rows and all(r["status"] == "ok" for r in rows)
    for r in rows:
        scaled = build_model(spec=found, depth=r["alpha"], width=r["beta"], num_classes=10, depth_rounding="total")
        assert r["params"] == count_params(scaled)
    assert found != B0 or baseline["arch"] == arch_string(B0)
    assert (tmp_path / "pareto.md").exists() and (tmp_path / "plots" / "pareto.png").exists()


def test_cli_bad_space_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kernels: [3]\n")
    rc, out, err = run_cli("nas_main", f"nas.space={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert rc == 2
    assert err.strip().splitlines()[-1] == ("scalesearch: error: space bad.yaml: unknown keys ['kernels']; allowed: "
                                            "['choices', 'description', 'head_channels', 'min_repeats', 'stages', "
                                            "'stem_channels']")
