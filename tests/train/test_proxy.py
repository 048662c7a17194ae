"""The proxy trainer on real (generated or JPEG) images with tiny budgets: ``train_proxy(spec, resolution,
data, budget)`` learns, runs are reproducible, divergence is reported, bad input is refused.

Every budget runs on one torch thread: the 2 cores are shared, and 2 threads on a busy machine
oversubscribe them (measured: ~40x slower steps)."""

import math
import warnings

import pytest
import torch

from helpers import proxy_yaml
from helpers import smoke_budget as budget
from scalesearch.config import DatasetConfig, FaultConfig, ProxyConfig
from scalesearch.plan.preflight import check_proxy
from scalesearch.train.data import ProxyData, load_data
from scalesearch.scaling.model import spec_cost
from scalesearch.train.proxy import build_proxy_model, train_proxy
from scalesearch.scaling.spec import B0, scale

EPOCH_KEYS = {"epoch", "accuracy", "loss", "train_loss", "images_per_s"}
FINAL_KEYS = EPOCH_KEYS | {"wall_s", "epochs", "steps", "status", "resolution"}


SMOKE = proxy_yaml("cpu_smoke")


@pytest.fixture(scope="module", autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 64 validation images: the loader warns about the accuracy's uncertainty
        return load_data(DatasetConfig(image_size=16, base_resolution=16, train_size=128, val_size=64))


@pytest.mark.parametrize("name", ["cpu_smoke", "cpu", "gpu"])
def test_proxy_configs_validate(name):
    p = proxy_yaml(name)
    assert p.epochs >= 1 and p.batch_size >= 1 and p.optimizer in ("sgd", "adamw") and p.compile == "off"
    assert p.device == ("cuda" if name == "gpu" else "cpu") and p.channels_last
    check_proxy(p, gpus_per_trial=1 if name == "gpu" else 0)


def test_the_smoke_budget_is_the_default():
    assert SMOKE == ProxyConfig()


# ---------------------------------------------------------------- learning
def test_default_proxy_learns_well_above_chance():
    """The default synthetic data (10 classes, 500 training images, base 40 px) and the default proxy (2 epochs of
    AdamW, ~8 s on one core): B0 reaches well above chance (0.10). Measured 0.28-0.39 over seeds 0-2; asserted > 0.2."""
    data = load_data(DatasetConfig())
    assert (data.num_classes, data.base_resolution, len(data.train_y), len(data.val_y)) == (10, 40, 500, 400)
    r = train_proxy(B0, data.base_resolution, data, budget(), seed=0)
    assert r["status"] == "ok" and r["resolution"] == 40 and r["steps"] == 2 * (500 // 32) and r["epochs"] == 2
    assert r["accuracy"] > 0.2 and math.isfinite(r["loss"]) and r["loss"] < math.log(10)


def test_real_cifar10_jpegs_learn(cifar_folder):
    """A real-image ImageFolder (CIFAR-10 JPEGs, 200 per class, 500 test images) learns above chance (0.10) in one
    epoch of 40 steps (~10 s): measured 0.23-0.25 over seeds 0-2; asserted > 0.17 (chance + 5 standard errors)."""
    data = load_data(DatasetConfig(name="imagefolder", root=str(cifar_folder)))
    assert data.num_classes == 10 and data.train_x.shape[1:] == (3, 32, 32) and len(data.val_y) == 500
    r = train_proxy(B0, 32, data, budget(epochs=1, batch_size=50), seed=0)
    assert r["status"] == "ok" and r["steps"] == 40 and r["accuracy"] > 0.17


# ---------------------------------------------------------------- contract
def test_reports_every_epoch_and_final_metrics(tiny):
    reports = []
    r = train_proxy(B0, 16, tiny, budget(epochs=3, eval_every=1, fault=FaultConfig(epoch_sleep=0.1)),
                    report=reports.append)
    assert [m["epoch"] for m in reports] == [1, 2, 3] and all(set(m) == EPOCH_KEYS for m in reports)
    assert all(0 <= m["accuracy"] <= 1 and math.isfinite(m["loss"]) and m["images_per_s"] > 0 for m in reports)
    assert set(r) == FINAL_KEYS and r["status"] == "ok" and r["epochs"] == 3 and r["steps"] == 3 * (128 // 32)
    assert r["resolution"] == 16 and r["images_per_s"] > 0
    assert r["wall_s"] >= 0.3 and {k: r[k] for k in ("accuracy", "loss")} == {k: reports[-1][k] for k in ("accuracy", "loss")}
    # the proxy does not count cost (the planner knows it): no params/MACs in its result
    assert not {"params", "macs", "activations", "cost_ratio"} & set(r)


def test_evaluation_only_when_asked_and_it_does_not_change_training(tiny):
    """eval_every=0 (the default) evaluates after the last epoch only, eval_every=2 every second epoch and the last;
    evaluating (BN recalibration, eval forwards) consumes no randomness and leaves training as it was, so the
    results are identical (which is why eval_every is not part of a training's train_id)."""
    runs = {}
    for every in (0, 2):
        reports = []
        r = train_proxy(B0, 16, tiny, budget(epochs=3, eval_every=every), seed=3, report=reports.append)
        runs[every] = (r, reports)
    assert [("accuracy" in m) for m in runs[0][1]] == [False, False, True]
    assert [("accuracy" in m) for m in runs[2][1]] == [False, True, True]
    assert all(set(m) == {"epoch", "train_loss", "images_per_s"} for m in runs[0][1][:2])
    assert [m["train_loss"] for m in runs[2][1]] == [m["train_loss"] for m in runs[0][1]]
    assert (runs[2][0]["accuracy"], runs[2][0]["loss"]) == (runs[0][0]["accuracy"], runs[0][0]["loss"])


def test_a_scaled_spec_at_its_own_resolution(tiny):
    spec = scale(B0, 1.2, 1.1, depth_rounding="total")
    reports = []
    r = train_proxy(spec, 20, tiny, budget(steps=1, bn_recalibration=0), report=reports.append)
    assert r["status"] == "ok" and r["resolution"] == 20 and r["steps"] == 1 and len(reports) == 1


def test_build_proxy_model_applies_the_budget_regularisation():
    spec = scale(B0, 0.5, 0.5, depth_rounding="total")
    m = build_proxy_model(spec, 10, 1, budget(dropout=0.3, drop_path=0.1))
    assert m.dropout.p == 0.3 and m.spec.drop_path == 0.1 and m.spec.stages == spec.stages
    assert m.stem.conv.in_channels == 1 and m.classifier.out_features == 10
    assert sum(p.numel() for p in m.parameters()) == spec_cost(spec, 16, 10, 1).params
    keep = build_proxy_model(spec, 10, 3, budget(dropout=None, drop_path=None))
    assert keep.dropout.p == spec.dropout == 0.2 and keep.spec.drop_path == spec.drop_path == 0.2


def test_steps_budget_spans_epochs(tiny):
    reports = []
    r = train_proxy(B0, 16, tiny, budget(steps=6, batch_size=32), report=reports.append)
    assert r["steps"] == 6 and r["epochs"] == 2 and len(reports) == 2  # 4 steps per epoch


def test_same_seed_is_bit_identical_and_seeds_differ(tiny):
    b = budget(epochs=2, eval_every=1)

    def run(seed):
        reports = []
        r = train_proxy(B0, 16, tiny, b, seed=seed, report=reports.append)
        return [(m["accuracy"], m["loss"], m["train_loss"]) for m in reports] + [(r["accuracy"], r["loss"])]

    first = run(7)
    assert run(7) == first
    assert run(8) != first


def test_divergence_is_reported_not_raised(tiny):
    reports = []
    r = train_proxy(B0, 16, tiny, budget(epochs=3, lr=SMOKE.lr * 1e6), report=reports.append)
    assert r["status"] == "diverged" and r["epochs"] < 3 and len(reports) == r["epochs"]
    assert not math.isfinite(r["loss"]) and 0.0 <= r["accuracy"] <= 1.0


def test_adamw_onecycle_and_one_channel_data(tiny):
    gray = ProxyData("gray", tiny.train_x[:, :1].contiguous(), tiny.train_y, tiny.val_x[:, :1].contiguous(), tiny.val_y,
                     10, tiny.classes, 16, "gray")
    assert gray.in_channels == 1
    r = train_proxy(B0, 16, gray, budget(optimizer="adamw", lr=2e-3, schedule="onecycle", epochs=2))
    assert r["status"] == "ok" and math.isfinite(r["loss"])
    r = train_proxy(scale(B0, 0.5, 0.5), 24, gray, budget(optimizer="sgd", lr=0.05, steps=2))
    assert r["status"] == "ok" and r["resolution"] == 24


@pytest.mark.parametrize(
    "resolution, overrides, message",
    [
        (15, {}, r"resolution=15 is below 16; allowed: >= 16"),
        (16, {"optimizer": "lion"}, r"proxy.optimizer='lion' is unknown; allowed: sgd, adamw"),
        (16, {"schedule": "step"}, r"proxy.schedule='step' is unknown; allowed: cosine, onecycle"),
        (16, {"schedule": "onecycle", "steps": 1}, r"proxy.schedule=onecycle with 1 step; allowed: a budget of >= 2 steps"),
        (16, {"compile": "maybe"}, r"proxy.compile='maybe'; allowed: off, auto, on"),
        (16, {"device": "tpu"}, r"proxy.device='tpu' is not a device"),
        (16, {"epochs": 0}, r"epochs=0.*allowed: each >= 1"),
        (16, {"steps": 0}, r"steps=0.*allowed: each >= 1"),
        (16, {"batch_size": 0}, r"batch_size=0.*allowed: each >= 1"),
    ],
    ids=["resolution", "optimizer", "schedule", "onecycle-1-step", "compile", "device", "epochs", "steps", "batch"],
)
def test_bad_input_is_a_clear_error(tiny, resolution, overrides, message):
    with pytest.raises(ValueError, match=message) as e:
        train_proxy(B0, resolution, tiny, budget(**overrides))
    assert "\n" not in str(e.value)


def test_threads_are_applied(tiny):
    torch.set_num_threads(2)
    train_proxy(B0, 16, tiny, budget(steps=1, threads=1, bn_recalibration=0))
    assert torch.get_num_threads() == 1

