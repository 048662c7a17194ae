"""Every training of every stage, as Ray Tune trials, through one runner.

:class:`Runner` owns the Ray session (a new local Ray, or ``cluster.address`` / ``$RAY_ADDRESS``), puts the decoded
data into the object store once, and runs a :class:`Stage` — a list of training jobs, or an Optuna
searcher — as Tune trials with the search's resources (fractional GPUs included), failure retries
and resume. Each stage writes its rows atomically into its own table in the run directory
(``results.csv``, ``validation.csv``, ``family_results.csv``, ``ablation_results.csv``, NAS's
``results.csv``) as trials report and end.

A job is a plain dict built on the driver: ``key`` (unique in the stage), ``index`` (submission
order), ``spec`` (a ``ModelSpec`` dict), ``resolution``, ``seed``, ``epochs`` (its budget) and
``row`` (the identity columns copied into the table). Every trial receives the same small immutable
:class:`TrialContext` (budget, data shape, what to measure) — never the app config.

Resume (docs/RELIABILITY.md): a stage's table is the record. Jobs recorded there as finished are
not trained again; a job whose ``train_id`` (network, resolution, seed, budget, data) equals a
finished row of an earlier stage is copied from it. Searcher stages (Optuna) restore Tune's
experiment, whose searcher state cannot be rebuilt from a table, and replay recorded rows.
Nothing below this module imports Ray.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# Ray Tune's new console output prints its experiment boxes whatever RunConfig.verbose says; the legacy reporter
# honours verbose=0 (the tool prints its own progress; verbose=2 brings Ray's tables back)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
from ray.tune import Callback  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from ..config import (ClusterConfig, ProxyConfig, TrialsConfig, check_address, check_tune_storage, ray_address,
                     trial_budget)
from .interrupt import (IN_TUNE, INTERRUPTED, STOP_SIGNALS, Interrupted, RunStopped, abandon, deferred,
                        hand_to_tune, installed, interrupted_by, notice)
from ..io import atomic_write_csv
from ..decide.results import FINISHED, read_table

log = logging.getLogger("scalesearch")

__all__ = ["TrialContext", "trial_context", "Stage", "JobStage", "SearcherStage", "Runner", "init_ray", "FinishedOnly"]

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


@dataclass
class Stage:
    """What every stage of trainings has: its name, its table and columns, its trials' context, and Tune's metric
    and scheduler. A stage is a :class:`JobStage` or a :class:`SearcherStage`."""

    name: str
    table: Path
    columns: list[str]
    ctx: TrialContext
    scheduler: Any = None
    tune_metric: str | None = "accuracy"  # Tune's metric (schedulers need it); None for multi-objective searchers
    describe: Callable[[dict], str] = lambda r: r.get("key", "")


@dataclass
class JobStage(Stage):
    """Planned trainings (the grid, a race's look, validation, family, ablation): each job trains once; a resume
    trains the jobs its table lacks."""

    jobs: list[dict] = field(default_factory=list)
    reuse: list[dict] = field(default_factory=list)  # finished rows of earlier stages, matched by train_id


@dataclass
class SearcherStage(Stage):
    """Trainings a Ray Tune searcher suggests (Optuna in the search, the NAS): ``num_samples`` trials; a resume
    restores Tune's experiment (the searcher's state lives there)."""

    searcher: Any = None
    num_samples: int = 0


# ---------------------------------------------------------------- the trial
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


def _memory_error(stage_name: str, job: dict, need: int, how: str, limit: float, where: str,
                  allowed: str | None = None) -> str:
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
        raise RuntimeError(_memory_error("this", job, need, how, ctx.memory_share, "here"))
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


def _gpu_memory_task() -> int:
    """A Ray task on a GPU worker: the bytes of its GPU."""
    if not torch.cuda.is_available():
        return 0
    return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory


# ---------------------------------------------------------------- what a searcher learns
def _told_value(result: dict | None, metric) -> bool:
    """Whether ``result`` is a finished training's value: the final row, status ok, every metric finite."""
    if not result or not result.get("final", True) or result.get("status", "ok") != "ok":
        return False
    names = metric if isinstance(metric, list) else [metric]
    return all(isinstance(result.get(m), (int, float)) and math.isfinite(result[m]) for m in names)


class FinishedOnly(Searcher):
    """A searcher wrapper (like Tune's ``ConcurrencyLimiter``): the wrapped searcher learns only from finished
    trainings. Intermediate results reach it only when they carry the metric (evaluated epochs: Optuna's
    intermediate values, for its pruners); a trial's completion carries its value only when it is the final row
    with status ok. A trial stopped early (ASHA, an interrupt) is told without a value (Optuna: PRUNED), one that
    failed, diverged or was infeasible as an error (Optuna: FAIL) — never as a made-up 0 or a partial accuracy.
    Around Tune's ``Repeater`` (seeds), the study gets one value per candidate: the mean over the seeds that
    finished ok (the Repeater's ``np.nanmean``); a candidate none of whose seeds did is a failed Optuna trial."""

    def __init__(self, searcher: Searcher):
        self.searcher = searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        names = self.metric if isinstance(self.metric, list) else [self.metric]
        if result.get("final") is False and all(
                isinstance(result.get(m), (int, float)) and math.isfinite(result[m]) for m in names):
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if _told_value(result, self.metric):
            return self.searcher.on_trial_complete(trial_id, result=result, error=error)
        failed = error or bool(result and result.get("final", True) and result.get("status", "ok") != "stopped")
        self.searcher.on_trial_complete(trial_id, result=None, error=failed)

    def get_state(self) -> dict:  # stateless; Tune saves and restores the wrapped searcher itself
        return {}

    def set_state(self, state: dict) -> None:
        pass


# ---------------------------------------------------------------- rows
def _row(trial, stage: Stage, jobs: dict, ended: str | None = None) -> dict:
    """One table row from a Tune trial; ``ended`` ("complete" | "error") comes from the callbacks, which
    fire before Tune updates the trial's status."""
    r = dict(trial.last_result or {})
    if r.get("recorded_row"):
        return dict(r["recorded_row"])
    job = jobs.get((trial.config.get("job") or {}).get("key")) or _searcher_job(trial, stage)
    row = {k: r.get(k) for k in stage.columns}
    row.update({k: v for k, v in (job or {}).get("row", {}).items() if row.get(k) is None})
    if job:
        row.update(key=job["key"], seed=job["seed"], resolution=job["resolution"], train_id=job.get("train_id"))
    row.update(trial_id=trial.trial_id, failures=trial.num_failures)
    status = {"complete": "TERMINATED", "error": "ERROR"}.get(ended, trial.status)
    row["finished_at"] = r.get("timestamp") if status in ("TERMINATED", "ERROR") else None
    if status == "ERROR":
        row.update(status="error", error=error_line(trial, job, stage.ctx))
    elif status == "TERMINATED":
        row["status"] = r.get("status", "ok") if r.get("final") else "stopped"
        if row["status"] == "stopped":
            row.update(epochs=r.get("epoch"),
                       error=f"stopped early by the scheduler (ASHA) after epoch {r.get('epoch')}")
    else:
        row["status"] = status.lower()
    for k in ("accuracy", "loss", "images_per_s", "wall_s", "latency_ms", "train_step_ms"):
        if isinstance(row.get(k), float):
            row[k] = round(row[k], 6)
    return row


_OOM_NODE = re.compile(r"Memory on the node \(IP: ([^,]+),.*?was ([\d.]+GB) used / ([\d.]+GB) limit")


def error_line(trial, job: dict | None, ctx: TrialContext) -> str:
    """A failed trial's reason in one line: a kill by Ray's memory monitor names the node, its memory and the
    trial's estimate; a trial's own exception its message."""
    err = trial.get_error() if hasattr(trial, "get_error") else None
    text = str(err or "")
    if not text and trial.error_file and Path(trial.error_file).is_file():  # at a retry, only the local file has it
        text = Path(trial.error_file).read_text(errors="replace")
    if "running low on memory" in text:
        m = _OOM_NODE.search(text.replace("\n", " "))
        node = f" on node {m.group(1)} ({m.group(2)} used of {m.group(3)})" if m else ""
        est = ""
        if job and job.get("row", {}).get("params"):
            need, how = memory_need(job, ctx, ctx.gpus_per_trial > 0)
            est = f"; this training was estimated at {need / 2**30:.1f} GiB ({how})"
        return f"killed for memory by Ray's memory monitor{node}{est}"[:300]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or ["unknown error (no message from Ray)"]
    return next((ln for ln in reversed(lines) if "Error:" in ln or "rror" in ln.split(" ")[0]), lines[-1])[:300]


def _searcher_job(trial, stage: Stage) -> dict | None:
    if stage.ctx.job_from_config is None:
        return None
    try:
        return stage.ctx.job_from_config({**trial.config, "__trial_id__": trial.trial_id})
    except (KeyError, TypeError, ValueError):
        return None


def trial_name(trial) -> str:
    """Tune's name of a trial — its folder in the run's Tune storage, and what TensorBoard and Ray's dashboard
    show: Tune's id and the training's key (candidate and seed), not Tune's dump of the job dict and its spec."""
    job = trial.config.get("job") if isinstance(trial.config, dict) else None
    key = job.get("key") if isinstance(job, dict) else None
    return f"{trial.trial_id}_{re.sub(_UNSAFE, '_', str(key))[:80]}" if key else trial.trial_id


_UNSAFE = r"[^\w.-]"  # characters a trial's folder name does without


def _eta(done: int, total: int, elapsed: float) -> str:
    if done == 0 or done >= total:
        return ""
    left = elapsed / done * (total - done)
    return f", ETA {left / 60:.0f} min" if left >= 90 else f", ETA {left:.0f} s"


class TableWriter(Callback):
    """Rewrites a stage's table atomically whenever a trial reports (at most every 2 s) or ends; one progress
    line per finished trial with the stage's ETA. ``kept``: rows recorded before this attempt."""

    def __init__(self, stage: Stage, jobs: dict, kept: list[dict], total: int, unplanned: list[dict] = ()):
        self.stage, self.jobs, self.kept, self.total, self.unplanned = stage, jobs, kept, total, list(unplanned)
        self.last, self.t0, self.done = 0.0, time.time(), len(kept)

    def write(self, trials, ended=None, how=None) -> None:
        rows = self.kept + [_row(t, self.stage, self.jobs, how if t is ended else None) for t in trials]
        atomic_write_csv(self.stage.table, _dedupe(rows) + self.unplanned, self.stage.columns)

    def on_step_begin(self, iteration, trials, **info):
        hand_to_tune()  # an interrupt flagged before Tune's loop had its SIGUSR1 handler

    def on_trial_recover(self, iteration, trials, trial, **info):
        job = self.jobs.get((trial.config.get("job") or {}).get("key")) or _searcher_job(trial, self.stage)
        r = _row(trial, self.stage, self.jobs, "error")
        log.warning("[%s] %s: attempt %d failed (%s); retrying (trials.max_failures=%d)", self.stage.name,
                    self.stage.describe(r), trial.num_failures, error_line(trial, job, self.stage.ctx),
                    trial.max_failures)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.time() - self.last > 2.0 and not INTERRUPTED.is_set():
            self.last = time.time()
            self.write(trials)

    def ended(self, trials, trial, how):
        if INTERRUPTED.is_set():  # trials torn down by the interrupt are unfinished, not failed
            return
        self.write(trials, trial, how)
        self.done += 1
        r = _row(trial, self.stage, self.jobs, how)
        detail = f"accuracy {r['accuracy']:.4f}" if r.get("accuracy") is not None and r["status"] == "ok" else (
            r.get("error") or "")
        wall = f" ({r['wall_s']:.0f} s)" if isinstance(r.get("wall_s"), (int, float)) else ""
        log.info("[%s %d/%d] %s: %s %s%s%s", self.stage.name, self.done, self.total, self.stage.describe(r),
                 r["status"],
                 detail, wall, _eta(self.done - len(self.kept), self.total - len(self.kept), time.time() - self.t0))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended(trials, trial, "complete")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended(trials, trial, "error")


def _copy(src: dict, job: dict, stage: Stage, table: str | None) -> dict:
    """A finished row standing in for ``job`` (the same training): its metrics, the job's identity."""
    return {**{k: src.get(k) for k in stage.columns}, **job["row"], "key": job["key"], "seed": job["seed"],
            "resolution": job["resolution"], "train_id": job.get("train_id"),
            "reused_from": table or "an earlier stage"}


def recorded_rows(path: Path, keys: set | None) -> tuple[dict, list[dict]]:
    """The finished rows of a stage table by key, and the rows for keys not in ``keys`` (None: every key is
    planned). Two rows for one key that disagree are refused, naming the file, the lines and the values; rows for
    unplanned keys are reported and kept in the table (never used, never dropped)."""
    rows, seen, unplanned = read_table(path), {}, []
    for line, r in enumerate(rows, start=2):
        key = r.get("key")
        if not key or r.get("status") not in FINISHED:
            continue
        if keys is not None and key not in keys:
            unplanned.append(r)
            log.warning("%s: line %d records %s (status %s, accuracy %s), which this run does not plan; kept in the "
                        "table, not used", path, line, key, r.get("status"), r.get("accuracy"))
            continue
        if key in seen:
            first, r0 = seen[key]
            if (r0.get("status"), r0.get("accuracy")) != (r.get("status"), r.get("accuracy")):
                raise ValueError(f"{path}: lines {first} and {line} both record {key} ({r0.get('status')} accuracy "
                                 f"{r0.get('accuracy')}, {r.get('status')} accuracy {r.get('accuracy')}); allowed: "
                                 "one row per training (delete the wrong one, or use a new hydra.run.dir)")
            continue
        seen[key] = (line, r)
    return {k: r for k, (_, r) in seen.items()}, unplanned


def _dedupe(rows: list[dict]) -> list[dict]:
    """One row per key (the last wins), in job order."""
    out: dict = {}
    for r in rows:
        out[r.get("key") or r.get("trial_id")] = r
    return sorted(out.values(), key=lambda r: (r.get("index", 0) if r.get("index") is not None else 1 << 30,
                                               str(r.get("key"))))


# ---------------------------------------------------------------- Ray
def _split_jobs(stage: Stage, recorded: dict) -> tuple[list[dict], list[dict], list[tuple[dict, dict]]]:
    """(rows kept: recorded or reused from an earlier stage by train_id, jobs to train, twins: a job whose training
    another job of this stage does — e.g. B0 of two families — with that job)."""
    reuse = {r["train_id"]: r for r in stage.reuse if r.get("status") == "ok" and r.get("train_id")}
    kept, todo, twins, first = [], [], [], {}
    for job in stage.jobs:
        if job["key"] in recorded:
            kept.append(recorded[job["key"]])
        elif job.get("train_id") in reuse:
            kept.append(_copy(reuse[job["train_id"]], job, stage, reuse[job["train_id"]].get("_table")))
        elif job.get("train_id") in first:
            twins.append((job, first[job["train_id"]]))
        else:
            first[job.get("train_id") or job["key"]] = job
            todo.append(job)
    return kept, todo, twins


def _root_cause(e: BaseException) -> str:
    """One line for why Tune stopped: an OSError behind it (it names the file), else the last error line of the
    traceback text Tune wraps the cause in."""
    seen, cur = set(), e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError):
            return str(cur)[:300]
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Traceback")]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
    return (errors or lines or [type(e).__name__])[-1][:300]


def tune_survives_worker_deaths() -> None:
    """When Ray's memory monitor kills a trial's process mid-task, Ray raises ``OutOfMemoryError`` (ray-project/ray
    #28937), not an actor error; Tune's actor manager knows only actor and task errors and ends the whole run
    ("Caught unexpected exception"). Hand such deaths (and a crashed worker, a dead node) to Tune as the actor
    errors they are: the trial fails, is retried up to trials.max_failures, then recorded with its reason."""
    from ray import exceptions as rex
    from ray.air.execution._internal.actor_manager import RayActorManager

    original = RayActorManager._actor_task_failed
    if getattr(original, "scalesearch", False):
        return
    deaths = (rex.OutOfMemoryError, rex.WorkerCrashedError, rex.NodeDiedError)

    def task_failed(self, tracked_actor_task, exception):
        if isinstance(exception, deaths) and not isinstance(exception, (rex.RayActorError, rex.RayTaskError)):
            exception = rex.RayActorError(error_msg=str(exception))
        return original(self, tracked_actor_task, exception)

    task_failed.scalesearch = True
    RayActorManager._actor_task_failed = task_failed


def init_ray(cluster: ClusterConfig, verbose: int = 1) -> bool:
    """Start or join Ray. Returns True when this call started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(log_to_driver=verbose >= 2, configure_logging=True, logging_level=logging.WARNING)
    if verbose < 2:  # on an interrupt Tune advises its own Tuner.restore and lists the trials that never started:
        # the tool says how to resume (scalesearch resume=true) and records those trials as interrupted
        for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # a failed attempt's traceback (and Ray's whole memory report when its monitor killed a trial) and the list
        # of trials that did not complete: the tool prints one line per failed attempt and per trial instead
        for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    address, where = ray_address(cluster)
    if address:
        check_address(address, where.split(" ")[0])
        log.info("Ray: joining %s (%s)", address, where)
        ray.init(address=address, **kwargs)
    else:  # a new local Ray, never the last `ray start` cluster of this machine (which may be dead)
        # Ray turns on token authentication for a new local cluster by default and warns that it did: it is
        # what this tool wants (no other user of the machine can submit work to it), so the warning is noise
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", num_cpus=cluster.num_cpus, num_gpus=cluster.num_gpus,
                 include_dashboard=cluster.include_dashboard, dashboard_host=cluster.dashboard_host, **kwargs)
    return True


def tune_root(storage: str | None, run_dir: Path) -> str:
    """Where a run's Ray Tune experiments lie: ``<run dir>/tune``, or with ``cluster.storage`` a folder of its own
    there (the run directory's name and a hash of its absolute path: runs and multirun jobs sharing one storage
    never meet; a resume finds its own)."""
    if storage is None:
        return str(run_dir / "tune")
    key = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{storage.rstrip('/')}/{Path(run_dir).name}-{key}"


def remove_tree(where: str) -> None:
    """Remove a folder given as a local path or a URI (pyarrow's filesystems, as Ray Tune opens its storage)."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(where if "://" in where else str(Path(where).resolve()))
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        fs.delete_dir(path)


class RayWatch(threading.Thread):
    """While a Ray session is up: when its GCS stops answering — a scheduler's SIGTERM to the whole process group
    or cgroup (``timeout``, Slurm, systemd) stops a local Ray's GCS and raylet with the driver; the OOM killer —
    the main thread waits on Ray, which would end the process 60 s later with its own abort and no resume line.
    This ends it at once with the tool's line (:func:`scalesearch.run.interrupt.abandon`). ``patience``: seconds
    without an answer first (a local GCS that refuses a connection is gone; a remote one may be a network
    blip). ``signals`` (in an app's main thread): it also learns of a stop signal the moment it arrives, through
    Python's wakeup fd — even while the main thread waits inside Ray, whose core worker may end the process first
    when the signal stopped its raylet — calls :func:`scalesearch.run.interrupt.notice` (the record, the one line) and,
    for a local Ray, from then on looks every 20 ms and gives up at the first refusal."""

    def __init__(self, address: str, patience: float, every: float = 1.0, signals: bool = False):
        super().__init__(name="scalesearch-ray-watch", daemon=True)
        host, port = address.rsplit(":", 1)
        self.address, self.where, self.patience, self.every = address, (host, int(port)), patience, every
        self.done = threading.Event()
        self.wakeup = self.previous_fd = None
        if signals and threading.current_thread() is threading.main_thread():
            self.wakeup = os.pipe()
            for fd in self.wakeup:
                os.set_blocking(fd, False)
            self.previous_fd = signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)

    def answers(self) -> bool:
        try:
            socket.create_connection(self.where, timeout=self.every).close()
            return True
        except OSError:
            return False

    def signalled(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for a stop signal; the first one that came, or None."""
        if self.wakeup is None:
            self.done.wait(timeout)
            return None
        import select

        if not select.select([self.wakeup[0]], [], [], timeout)[0]:
            return None
        try:
            got = os.read(self.wakeup[0], 64)
        except OSError:
            return None
        return next((n for n in got if n in STOP_SIGNALS), None)

    def run(self) -> None:
        silent_since = stopped_by = None
        while not self.done.is_set():
            signum = self.signalled(self.every)
            if self.done.is_set():
                break
            if signum is not None and stopped_by is None:
                stopped_by = signum
                notice(signum)
                if self.patience < 10:  # a local Ray: the signal may have stopped it too
                    self.every, self.patience = 0.02, 0.0
            if self.answers():
                silent_since = None
                continue
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since >= self.patience and not self.done.is_set():
                abandon(f"Ray's processes stopped under the run: its GCS at {self.address} no longer answers",
                        stopped_by)

    def stop(self) -> None:
        self.done.set()
        if self.wakeup is not None:
            os.write(self.wakeup[1], b"\0")  # (wakes the select)
        self.join()
        if self.wakeup is not None:
            signal.set_wakeup_fd(self.previous_fd)
            for fd in self.wakeup:
                os.close(fd)
            self.wakeup = None


class Runner:
    """The Ray session of one app run and the stages it runs (``with Runner(...) as r: r.run(stage)``)."""

    def __init__(self, cluster: ClusterConfig, resources: TrialsConfig, storage: Path, verbose: int = 1):
        self.cluster, self.res, self.storage, self.verbose = cluster, resources, Path(storage), verbose
        check_tune_storage(cluster.storage)
        self.tune_root = tune_root(cluster.storage, self.storage)
        self.started, self.data_ref, self.data_fingerprint, self.train_images = False, None, None, 0
        self._unit = None  # Runner._memory_unit, asked of Ray once
        self.watch: RayWatch | None = None
        self._trunks: tuple[str, Any] | None = None  # the race's TrunkStore (name, handle), started once

    def __enter__(self) -> "Runner":
        import ray

        from .interrupt import reinstall

        tune_survives_worker_deaths()
        with deferred():  # a signal during Ray's start-up is raised once it is up (and then shut down)
            self.started = init_ray(self.cluster, self.verbose)
        reinstall()
        gcs = getattr(ray.get_runtime_context(), "gcs_address", None) if self.started else None
        if gcs:  # (a session the caller started is the caller's to watch; Ray Client has no GCS address)
            self.watch = RayWatch(gcs, 30.0 if ray_address(self.cluster)[0] else 3.0, signals=installed())
            self.watch.start()
        try:
            self.check_resources()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import ray

        if self.watch is not None:  # before Ray's own shutdown stops the GCS
            self.watch.stop()
            self.watch = None
        self._trunks = None  # the race's TrunkStore goes with its handle (on a joined cluster too)
        if self.started:
            ray.shutdown()
            self.started = False

    def check_resources(self) -> None:
        import ray

        have = ray.cluster_resources()
        gpus, cpus, s = have.get("GPU", 0), have.get("CPU", 0), self.res
        if s.gpus_per_trial > 0 and gpus < s.gpus_per_trial:
            raise ValueError(f"trials.gpus_per_trial={s.gpus_per_trial} but the Ray cluster has {gpus:g} GPU(s); "
                             "allowed: 0 here, or run on a cluster with GPUs")
        if s.cpus_per_trial > cpus:
            raise ValueError(f"trials.cpus_per_trial={s.cpus_per_trial} but the Ray cluster has {cpus:g} CPU(s); "
                             f"allowed: <= {cpus:g}")
        nodes = sum(n.get("Alive", False) for n in ray.nodes())
        if nodes > 1 and self.cluster.storage is None:  # Tune's trials write its storage path on their node
            raise ValueError(f"cluster.storage=null but the Ray cluster has {nodes} nodes: a trial on another node "
                             f"writes Ray Tune's experiment folder ({self.tune_root}) on that node's disk; allowed: a "
                             "path every node sees (/mnt/nfs/scalesearch) or a URI (s3://bucket/scalesearch, gs://...)")

    def slots(self) -> int:
        """How many trials the cluster runs at once with these resources."""
        import ray

        have, s = ray.cluster_resources(), self.res
        slots = [have.get("CPU", 1) // s.cpus_per_trial]
        if s.gpus_per_trial:
            slots.append(have.get("GPU", 0) // s.gpus_per_trial)
        return max(1, int(min(slots)))

    def share(self, data) -> None:
        """Put the decoded data into the object store once (numpy arrays: trials map them zero-copy)."""
        import ray

        arrays = {f.name: (getattr(data, f.name).numpy() if torch.is_tensor(getattr(data, f.name))
                           else getattr(data, f.name))
                  for f in dataclasses.fields(data)}
        with deferred():
            self.data_ref = ray.put(arrays)
        self.data_fingerprint, self.train_images = data.fingerprint, len(data.train_y)

    def memory_share(self) -> tuple[float, str]:
        """(bytes, how) of memory one trial may use: its share of the GPU's memory (trials.gpus_per_trial), else of
        the largest node's memory for Ray's tasks (trials.cpus_per_trial / the node's CPUs)."""
        mem, units, per_trial, how = self._memory_unit()
        return mem * min(1.0, per_trial / units), how

    def memory_limit(self) -> tuple[float, int]:
        """(bytes, shares): the most memory one training of a job stage may get — the shares of all the trial slots
        of the GPU or of the largest node (:func:`trial_resources` requests them) — and how many shares that is."""
        share, _ = self.memory_share()
        _, units, per_trial, _ = self._memory_unit()
        most = max(1, int(units // per_trial))
        return share * most, most

    def _memory_unit(self) -> tuple[float, float, float, str]:
        """(memory, its units, one trial's units, how) of what trials share, asked of Ray once: the GPU's memory
        and 1 GPU, else the largest node's memory for Ray's tasks and its CPUs."""
        import ray

        if self._unit is None:
            s = self.res
            if s.gpus_per_trial > 0:
                total = ray.get(ray.remote(_gpu_memory_task).options(num_gpus=s.gpus_per_trial).remote())
                self._unit = (total, 1.0, s.gpus_per_trial, f"of GPU memory ({total / 2**30:.0f} GiB, "
                                                            f"trials.gpus_per_trial={s.gpus_per_trial:g})")
            else:
                node = max((n["Resources"] for n in ray.nodes() if n.get("Alive")), key=lambda r: r.get("memory", 0))
                mem, cpus = node.get("memory", 0), max(1.0, node.get("CPU", 1))
                self._unit = (mem, cpus, s.cpus_per_trial, f"of node memory ({mem / 2**30:.1f} GiB for Ray's tasks "
                                                           f"on the largest node, {cpus:g} CPUs, "
                                                           f"trials.cpus_per_trial={s.cpus_per_trial:g})")
        return self._unit

    def memory_over(self, ctx: TrialContext, jobs: list[dict]) -> tuple[dict, int, str] | None:
        """(job, bytes, how) of the training of ``jobs`` needing the most memory, when that is more than one training
        may get (:meth:`memory_limit`: the shares of every trial slot of the largest node, or of the GPU); None when
        every one fits."""
        limit, _ = self.memory_limit()
        cuda = self.res.gpus_per_trial > 0
        needs = [(job, *memory_need(job, ctx, cuda)) for job in jobs if job["row"].get("params") is not None]
        worst = max(needs, key=lambda x: x[1], default=None)
        return worst if worst is not None and worst[1] > limit else None

    def check_memory(self, name: str, ctx: TrialContext, jobs: list[dict], allowed: str | None = None) -> None:
        """Refuse a stage (before anything of it trains) when one of its trainings would not fit the memory one
        training may get (Ray's memory monitor would kill it, or the node would swap)."""
        over = self.memory_over(ctx, jobs)
        if over is not None:
            (share, where), (limit, most) = self.memory_share(), self.memory_limit()
            where += f" = {most} trials' shares of {share / 2**30:.1f} GiB" if most > 1 else ""
            raise ValueError(_memory_error(name, over[0], over[1], over[2], limit, where, allowed))

    def trunk_store(self) -> str:
        """The name of this session's :class:`scalesearch.run.trunks.TrunkStore` (on the driver's node; started at
        the first call), which a race's trainings name in their plan."""
        if self._trunks is None:
            import uuid

            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            from .trunks import TrunkStore

            name = f"scalesearch-trunks-{uuid.uuid4().hex[:12]}"
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            store = ray.remote(TrunkStore).options(name=name, num_cpus=0, scheduling_strategy=here)
            self._trunks = name, store.remote()
        return self._trunks[0]

    def measurer(self, ctx: TrialContext, kind: str, cache_path: Path) -> Callable:
        """``measure(spec, resolution) -> ms`` of a device cost (``latency`` | ``train_step``), measured by a Ray
        task with the trials' resources (so on the trials' kind of device), cached per (spec, resolution,
        device) in ``cache_path`` (the plan of a resumed run measures nothing twice)."""
        import ray

        from ..io import atomic_write_json, read_json
        from ..train.proxy import train_batch

        cache = read_json(cache_path) if Path(cache_path).is_file() else {}
        task = ray.remote(measure_task).options(num_cpus=self.res.cpus_per_trial, num_gpus=self.res.gpus_per_trial)
        device = ctx.budget.device if self.res.gpus_per_trial == 0 else f"{ctx.budget.device}-gpu"

        def measure(spec, resolution: int) -> float:
            blob = json.dumps(spec.to_dict(), sort_keys=True)
            n = self.train_images or ctx.budget.batch_size
            batch = ctx.latency_batch if kind == "latency" else train_batch(ctx.budget.batch_size, n)
            key = f"{kind}|{hashlib.sha256(blob.encode()).hexdigest()[:16]}|{resolution}|{device}|b{batch}"
            if key not in cache:
                ctx_ = dataclasses.replace(ctx, train_images=self.train_images)
                cache[key] = ray.get(task.remote(spec.to_dict(), int(resolution), ctx_, (kind,)))
                atomic_write_json(cache_path, cache)
            return cache[key][f"{kind}_ms"]

        return measure

    def _reporter(self, stage: Stage):
        """Ray's trial table at verbose=2: a job trial shows its key, not the whole job dict."""
        if self.verbose < 2:
            return None
        from ray import tune

        params = None if isinstance(stage, SearcherStage) else {"job/key": "job"}
        return tune.CLIReporter(parameter_columns=params, metric_columns=["epoch", stage.ctx.metric],
                                max_report_frequency=30)

    def run(self, stage: Stage) -> list[dict]:
        """Run the stage's unfinished trainings; return all its rows (recorded and new), in job order. Two paths
        over one Tune fit: a job stage (a grid of planned jobs) and a searcher stage (Optuna's suggestions)."""
        return self._run_searcher(stage) if isinstance(stage, SearcherStage) else self._run_jobs(stage)

    def _run_jobs(self, stage: JobStage) -> list[dict]:
        from ray import tune

        recorded, unplanned = recorded_rows(stage.table, {j["key"] for j in stage.jobs})
        kept, todo, twins = _split_jobs(stage, recorded)
        if not todo:
            if kept:
                atomic_write_csv(stage.table, _dedupe(kept) + unplanned, stage.columns)
            return _dedupe(kept)
        ctx = self._trial_ctx(stage, todo)
        jobs = {j["key"]: j for j in todo}
        if kept:
            log.info("%s: %d of %d trainings already recorded (not trained again)", stage.name, len(kept),
                     len(kept) + len(todo))
        writer = TableWriter(stage, jobs, kept, len(kept) + len(todo), unplanned)
        tune_dir = f"{self.tune_root}/{stage.name}"
        remove_tree(tune_dir)  # an interrupted attempt's experiment: its unfinished jobs start anew
        tuner = tune.Tuner(self._trainable(ctx, None), param_space={"job": tune.grid_search(todo)},
                           tune_config=self._tune_config(stage, 1, self.res.max_concurrent_trials or None),
                           run_config=self._run_config(stage, writer))
        rows = self._fit(stage, tuner, jobs)
        done = {r["key"]: r for r in rows if r["status"] == "ok"}
        rows += [_copy(done[src["key"]], job, stage, stage.table.name) for job, src in twins if src["key"] in done]
        return self._finish(stage, kept + rows, unplanned)

    def _run_searcher(self, stage: SearcherStage) -> list[dict]:
        from ray import tune

        recorded, unplanned = recorded_rows(stage.table, None)
        ctx = self._trial_ctx(stage, [])
        writer = TableWriter(stage, {}, list(recorded.values()), stage.num_samples, unplanned)
        trainable = self._trainable(ctx, recorded)
        tune_dir = f"{self.tune_root}/{stage.name}"
        if tune.Tuner.can_restore(tune_dir):
            log.info("%s: restoring the Ray Tune experiment in %s (%d finished trials kept)", stage.name, tune_dir,
                     len(recorded))
            tuner = tune.Tuner.restore(tune_dir, trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            tuner = tune.Tuner(trainable, param_space={},
                               tune_config=self._tune_config(stage, stage.num_samples,
                                                             self.res.max_concurrent_trials or self.slots()),
                               run_config=self._run_config(stage, writer))
        return self._finish(stage, list(recorded.values()) + self._fit(stage, tuner, {}), unplanned)

    def _trial_ctx(self, stage: Stage, todo: list[dict]) -> TrialContext:
        """The stage's trial context with this session's data size and memory share, the memory checked."""
        ctx = dataclasses.replace(stage.ctx, train_images=self.train_images, memory_share=self.memory_share()[0])
        self.check_memory(stage.name, ctx, todo)
        return ctx

    def _trainable(self, ctx: TrialContext, recorded: dict | None):
        from ray import tune

        (share, _), (_, most) = self.memory_share(), self.memory_limit()
        resources = functools.partial(trial_resources, ctx=ctx, cpus=self.res.cpus_per_trial,
                                      gpus=self.res.gpus_per_trial, share=share, most=most)
        return tune.with_resources(tune.with_parameters(run_trial, ctx=ctx, data=self.data_ref, recorded=recorded),
                                   resources)

    def _tune_config(self, stage: Stage, num_samples: int, concurrent: int | None):
        from ray import tune

        return tune.TuneConfig(metric=stage.tune_metric, mode="max" if stage.tune_metric else None,
                               search_alg=FinishedOnly(stage.searcher) if isinstance(stage, SearcherStage) else None,
                               scheduler=stage.scheduler,
                               num_samples=num_samples, max_concurrent_trials=concurrent,
                               reuse_actors=self.res.reuse_actors, trial_name_creator=trial_name,
                               trial_dirname_creator=trial_name)

    def _run_config(self, stage: Stage, writer: TableWriter):
        from ray import tune

        return tune.RunConfig(name=stage.name, storage_path=self.tune_root, callbacks=[writer],
                              verbose=0 if self.verbose < 2 else 1, progress_reporter=self._reporter(stage),
                              failure_config=tune.FailureConfig(max_failures=self.res.max_failures))

    def _fit(self, stage: Stage, tuner, jobs: dict) -> list[dict]:
        """One Tune fit; the rows of its trials (those an interrupt stopped: ``interrupted``, resume trains them)."""
        IN_TUNE.set()
        try:
            grid = tuner.fit()
        except Exception as e:  # Tune itself could not go on: what finished is in the table
            if interrupted_by(e) is not None:
                raise
            raise RunStopped(f"Ray Tune could not go on with the {stage.name} stage ({_root_cause(e)}); its finished "
                             f"trainings are kept in {stage.table}") from e
        finally:
            IN_TUNE.clear()
        trials = grid._experiment_analysis.trials  # Trial objects: status and error detail live there
        rows = [_row(t, stage, jobs) for t in trials]
        if INTERRUPTED.is_set():
            rows = [r if r.get("finished_at") and r["status"] in ("ok", "diverged", "infeasible") else
                    {**r, "status": "interrupted", "error": None, "finished_at": None} for r in rows]
        return rows

    def _finish(self, stage: Stage, rows: list[dict], unplanned: list[dict]) -> list[dict]:
        """The stage's table written (atomically); an interrupt raised once everything is kept."""
        rows = _dedupe(rows)
        atomic_write_csv(stage.table, rows + unplanned, stage.columns)
        if INTERRUPTED.is_set():
            INTERRUPTED.raised = True
            raise Interrupted(getattr(INTERRUPTED, "signum", signal.SIGINT))
        return rows
