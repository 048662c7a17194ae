"""The worker side of a training: what a Ray Tune trial runs, and what it needs.

Every trial of a stage receives the same small immutable :class:`TrialContext` (budget, data shape, what to
measure) — never the app config — and trains one job (a plain dict built on the driver, see
:mod:`scalesearch.run.runner`) in :func:`run_trial`, the Tune trainable (a module-level function: Tune pickles it
by reference, and a trial's process imports this module and what training needs, nothing of the driver). Here too:
the memory a training needs (:func:`memory_need`, Ray's resource request :func:`trial_resources`, the errors that
name it), the device costs a trial or a Ray task measures, a race rung's trunk, and :func:`release_heap`. Ray is
imported only inside the functions that run in a trial or a task.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import math
import time
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import Callable

import numpy as np
import torch

from ..config import ProxyConfig, TrialsConfig, trial_budget

__all__ = ["TrialContext", "trial_context", "memory_need", "trial_resources", "memory_error", "release_heap",
           "run_trial", "train_rung_job", "measure_task", "gpu_memory_task"]


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a stage needs besides its job, built once on the driver."""

    budget: ProxyConfig  # threads filled in
    num_classes: int
    in_channels: int
    metric: str = "accuracy"
    gpus_per_trial: float = 0.0
    device_costs: bool = True
    latency_batch: int = 8
    cost_min_run_time: float = 0.1
    fault_stage: bool = False  # budget.fault's fail/diverge indices apply to this stage
    train_images: int = 0  # set by the runner: the training batch (and every timing's) is capped at it
    memory_share: float = 0.0  # set by the runner: bytes of (GPU) memory one trial may use; 0: unchecked
    job_from_config: Callable[[dict], dict] | None = None  # searcher stages: trial config -> job
    extra_metrics: Callable[[dict], dict] | None = None  # more metrics from a result (NAS: cost, objective)


def trial_context(proxy: ProxyConfig, trials: TrialsConfig, data, **settings) -> TrialContext:
    """The :class:`TrialContext` of an app's trials on ``data`` (its classes and channels), from its proxy budget and
    trials settings; ``settings`` override fields (NAS: its own latency settings)."""
    base = dict(budget=trial_budget(proxy, trials), num_classes=data.num_classes, in_channels=data.in_channels,
                gpus_per_trial=trials.gpus_per_trial, device_costs=trials.measure_device_costs,
                latency_batch=trials.latency_batch, cost_min_run_time=trials.cost_min_run_time)
    return TrialContext(**{**base, **settings})


_DEVICE_COSTS: dict = {}  # (kind, spec, resolution, device, batch) -> ms, per worker process


def _device_costs(spec, resolution: int, ctx: TrialContext, device: torch.device,
                  kinds=("latency", "train_step")) -> dict:
    """Inference latency and/or training-step time (ms, median of timed repeats) of ``spec`` on ``device``,
    cached per (kind, spec, resolution, device, batch size) in this worker process."""
    from ..scaling.cost import measure_latency, measure_train_step
    from ..scaling.model import EfficientNet
    from ..train.proxy import train_batch

    b = ctx.budget
    kw = dict(in_channels=ctx.in_channels, device=device, channels_last=b.channels_last, amp=b.amp,
              min_run_time=ctx.cost_min_run_time, threads=b.threads)
    blob = json.dumps(spec.to_dict(), sort_keys=True)
    out = {"device": str(device)}
    for kind in kinds:
        batch = ctx.latency_batch if kind == "latency" else train_batch(b.batch_size, ctx.train_images or b.batch_size)
        key = (kind, blob, resolution, str(device), batch)
        if key not in _DEVICE_COSTS:
            model = EfficientNet(spec, ctx.num_classes, ctx.in_channels)
            ms = (measure_latency(model, resolution, batch=batch, **kw) if kind == "latency" else
                  measure_train_step(model, resolution, ctx.num_classes, batch=batch, **kw))
            _DEVICE_COSTS[key] = round(ms, 4)
        out[f"{kind}_ms"] = _DEVICE_COSTS[key]
    return out


def _job_budget(job: dict, ctx: TrialContext) -> ProxyConfig:
    """The job's budget (its epochs or steps), with the test-only faults of the stage applied."""
    budget = ctx.budget
    if budget.epochs != job.get("epochs", budget.epochs) or budget.steps != job.get("steps", budget.steps):
        budget = dataclasses.replace(budget, epochs=job.get("epochs", budget.epochs),
                                     steps=job.get("steps", budget.steps))
    index, fault = job.get("index"), budget.fault
    if ctx.fault_stage and index in fault.fail_trials:
        raise RuntimeError(f"injected failure in trial {index} (proxy.fault.fail_trials)")
    if ctx.fault_stage and index in fault.diverge_trials:
        budget = dataclasses.replace(budget, lr=budget.lr * 1e6)
    if ctx.fault_stage and index in fault.hog_trials and fault.hog_gb > 0:  # Ray's memory monitor kills it here
        hog = torch.ones(int(fault.hog_gb * 2**30) // 4)
        for _ in range(200):
            time.sleep(0.1)
        del hog
    return budget


def memory_need(job: dict, ctx: TrialContext, cuda: bool) -> tuple[int, str]:
    """(bytes, how) a job's training needs: the estimate of :func:`scalesearch.scaling.cost.estimate_train_memory` at
    the batch the training and its timing use (fp32 activations on CPU, bf16 under CUDA autocast), plus the process
    itself on CPU."""
    from ..scaling.cost import PROCESS_BASE_BYTES, Cost, estimate_train_memory
    from ..train.proxy import train_batch

    row, b = job["row"], ctx.budget
    batch = train_batch(b.batch_size, ctx.train_images or b.batch_size)
    cost = Cost(int(row.get("params") or 0), int(row.get("macs") or 0), int(row.get("activations") or 0),
                int(job["resolution"]))
    need = estimate_train_memory(cost, batch, 2 if (cuda and b.amp) else 4) + (0 if cuda else PROCESS_BASE_BYTES)
    return need, f"{cost.params / 1e6:,.1f}M parameters, activations at batch {batch} and {cost.resolution} px"


def trial_resources(config: dict, ctx: TrialContext, cpus: float, gpus: float, share: float, most: int):
    """Ray's resource request of one trial: trials.cpus_per_trial / gpus_per_trial, times the trial shares of
    memory its training needs (a job's :func:`memory_need` over ``share``, at most ``most``), so Ray packs a large
    training with fewer beside it instead of the node running out of memory. A searcher stage's trial (its job is
    made in the trial) requests one share, and checks its need against it."""
    from ray.tune import PlacementGroupFactory

    k = 1
    if "job" in config and share > 0:
        need, _ = memory_need(config["job"], ctx, gpus > 0)
        k = min(most, max(1, math.ceil(need / share)))
    return PlacementGroupFactory([{"CPU": cpus * k, "GPU": gpus * k}])


def memory_error(stage_name: str, job: dict, need: int, how: str, limit: float, where: str,
                 allowed: str | None = None) -> str:
    """Why a training does not fit the memory a training can get ``where`` (its need, the limit, what is allowed)."""
    allowed = allowed or "a smaller proxy.batch_size, search.phi or dataset.base_resolution"
    more = ("more memory per trial (trials.cpus_per_trial / trials.gpus_per_trial)" if where == "here" else
            "a node (or GPU) with more memory")
    return (f"{stage_name} training {job['key']} needs about {need / 2**30:.1f} GiB ({how}) but a training can get "
            f"at most about {limit / 2**30:.1f} GiB {where}; allowed: {allowed}, or {more}")


def _cuda_oom(job: dict, resolution: int, budget, need: int, ctx: TrialContext) -> str:
    return (f"CUDA out of memory training {job['key']} at {resolution}px, batch {budget.batch_size} (estimated "
            f"{need / 2**30:.1f} GiB), with trials.gpus_per_trial={ctx.gpus_per_trial}; lower proxy.batch_size or "
            "raise trials.gpus_per_trial")


def release_heap() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc's ``malloc_trim``; elsewhere nothing more). A
    reused Ray actor otherwise keeps the heap its earlier trials freed: measured on the CIFAR race recording
    (benchmarks/README.md), a worker grew to 7.2 GB after ~65 trainings, and ``malloc_trim(0)`` took one from
    3.9 GB back to 1.0 GB, so two workers no longer fill a 24 GB node."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def run_trial(config: dict, ctx: TrialContext = None, data: dict = None, recorded: dict | None = None) -> None:
    """One Ray Tune trial: train one job's network, report every evaluated epoch, then a final row."""
    import ray
    from ray import tune

    from ..train.data import ProxyData
    from ..train.proxy import epoch_count, resolve_device, train_proxy
    from ..scaling.spec import ModelSpec

    if "job" in config:
        job = config["job"]
    else:
        job = ctx.job_from_config({**config, "__trial_id__": tune.get_context().get_trial_id()})
    row = (recorded or {}).get(job["key"]) or (recorded or {}).get(tune.get_context().get_trial_id())
    if row is not None:  # finished before an interrupt that Ray's experiment state does not know of
        value = row.get(ctx.metric)
        tune.report({ctx.metric: float("nan") if value is None else value, "epoch": row.get("epochs") or 0,
                     "final": True, "status": row.get("status"), "recorded_row": row})
        return
    if job["row"].get("cost_flag") == "infeasible":  # an Optuna suggestion the pixel grid cannot build at the cost
        tune.report({**job["row"], ctx.metric: 0.0, "epoch": 0, "final": True, "status": "infeasible",
                     "error": job["row"].get("error")})
        return
    release_heap()  # what the actor's previous trial freed
    budget = _job_budget(job, ctx)
    device = resolve_device(budget.device)
    need, how = memory_need(job, ctx, device.type == "cuda")
    if "job" not in config and ctx.memory_share and need > ctx.memory_share:  # a searcher's: it asked 1 share
        raise RuntimeError(memory_error("this", job, need, how, ctx.memory_share, "here"))
    torch.set_num_threads(int(budget.threads or 1))
    with warnings.catch_warnings():  # zero-copy views of the shared object-store arrays (read-only)
        warnings.simplefilter("ignore", UserWarning)
        proxy_data = ProxyData(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in data.items()})
    spec = ModelSpec.from_dict(job["spec"], where=f"job {job['key']}")
    resolution = int(job["resolution"])
    static = {**job["row"], "key": job["key"], "seed": job["seed"], "resolution": resolution,
              "train_id": job.get("train_id"), "node": ray.get_runtime_context().get_node_id()[:12]}
    if ctx.device_costs:
        static.update(_device_costs(spec, resolution, ctx, device))
    last_epoch = epoch_count(budget, len(proxy_data.train_y))

    def with_extra(result: dict) -> dict:
        return {**result, **ctx.extra_metrics(result)} if ctx.extra_metrics else result

    def report(m):
        # only evaluated epochs reach Tune (every result carries the metric: schedulers and searchers never see an
        # unevaluated epoch; ASHA sets proxy.eval_every=1); the last epoch is reported once, with the final row
        if m["epoch"] < last_epoch and m.get("accuracy") is not None:
            tune.report(with_extra({**static, **m, "final": False}))

    try:
        if job.get("rung_plan"):
            final = train_rung_job(spec, resolution, proxy_data, budget, job, device)
        else:
            final = train_proxy(spec, resolution, proxy_data, budget, seed=job["seed"], report=report)
    except torch.cuda.OutOfMemoryError:
        raise RuntimeError(_cuda_oom(job, resolution, budget, need, ctx)) from None
    tune.report(with_extra({**static, **final, "final": True}))


def train_rung_job(spec, resolution: int, data, budget, job: dict, device) -> dict:
    """A race rung (:func:`scalesearch.train.proxy.train_rung`): continue the trunk that the rung below saved when the
    run's :class:`scalesearch.run.trunks.TrunkStore` has it (else train it from scratch: the same result, slower), save
    this rung's trunk through the store, and remove the one it continued from (superseded). The trial touches no
    file: the store (the actor the plan names), on the driver's node, keeps the trunks in the run directory."""
    import ray

    from ..train.proxy import train_rung

    plan = job["rung_plan"]
    store = ray.get_actor(plan["store"])
    blob = ray.get(store.load.remote(plan["resume"])) if plan.get("resume") else None
    start = torch.load(BytesIO(blob), map_location=device, weights_only=True) if blob is not None else None
    if start is not None and int(start["done"]) > plan["trunk_steps"]:
        start = None  # a trunk from a longer rung (another rule): not this one's past

    def keep(state: dict) -> None:
        buf = BytesIO()
        torch.save(state, buf)
        ray.get(store.save.remote(plan["save"], buf.getvalue()))  # on disk before the trial reports

    out = train_rung(spec, resolution, data, budget, seed=job["seed"], trunk_steps=plan["trunk_steps"],
                     cooldown_steps=plan["cooldown_steps"], start=start, on_trunk=keep)
    if start is not None and plan["resume"] != plan["save"]:
        ray.get(store.remove.remote(plan["resume"]))
    return out


def measure_task(spec: dict, resolution: int, ctx: TrialContext, kinds=("latency", "train_step")) -> dict:
    """A Ray task: the device costs of one network on a worker with the trials' resources."""
    from ..train.proxy import resolve_device
    from ..scaling.spec import ModelSpec

    torch.set_num_threads(int(ctx.budget.threads or 1))
    return _device_costs(ModelSpec.from_dict(spec), resolution, ctx, resolve_device(ctx.budget.device), kinds)


def gpu_memory_task() -> int:
    """A Ray task on a GPU worker: the bytes of its GPU."""
    if not torch.cuda.is_available():
        return 0
    return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
