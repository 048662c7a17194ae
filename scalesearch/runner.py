"""Every training of every stage, as Ray Tune trials, through one runner.

:class:`Runner` owns the Ray session (a new local Ray, or ``cluster.address``), puts the decoded
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

import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# Ray Tune's new console output prints its experiment boxes whatever RunConfig.verbose says; the legacy reporter
# honours verbose=0 (the tool prints its own progress; verbose=2 brings Ray's tables back)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
from ray.tune import Callback  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from .config import ClusterConfig, ProxyConfig, SearchConfig, check_address
from .interrupt import _IN_TUNE, INTERRUPTED, Interrupted
from .io import atomic_write_csv
from .results import FINISHED, read_table

log = logging.getLogger("scalesearch")

__all__ = ["TrialContext", "Stage", "Runner", "init_ray", "FinishedOnly"]

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
    job_from_config: Callable[[dict], dict] | None = None  # searcher stages: trial config -> job
    extra_metrics: Callable[[dict], dict] | None = None  # more metrics from a result (NAS: cost, objective)


@dataclass
class Stage:
    name: str
    table: Path
    columns: list[str]
    ctx: TrialContext
    jobs: list[dict] | None = None
    searcher: Any = None  # a Ray Tune Searcher (Optuna); with num_samples
    num_samples: int = 0
    scheduler: Any = None
    reuse: list[dict] = field(default_factory=list)  # finished rows of earlier stages, matched by train_id
    tune_metric: str | None = "accuracy"  # Tune's metric (schedulers need it); None for multi-objective searchers
    describe: Callable[[dict], str] = lambda r: r.get("key", "")


# ---------------------------------------------------------------- the trial
_DEVICE_COSTS: dict = {}  # (kind, spec, resolution, device, batch) -> ms, per worker process


def _device_costs(spec, resolution: int, ctx: TrialContext, device: torch.device,
                  kinds=("latency", "train_step")) -> dict:
    """Inference latency and/or training-step time (ms, median of timed repeats) of ``spec`` on ``device``,
    cached per (kind, spec, resolution, device, batch size) in this worker process."""
    from .cost import measure_latency, measure_train_step
    from .model import EfficientNet

    b = ctx.budget
    kw = dict(in_channels=ctx.in_channels, device=device, channels_last=b.channels_last, amp=b.amp,
              min_run_time=ctx.cost_min_run_time, threads=b.threads)
    blob = json.dumps(spec.to_dict(), sort_keys=True)
    out = {"device": str(device)}
    for kind in kinds:
        batch = ctx.latency_batch if kind == "latency" else b.batch_size
        key = (kind, blob, resolution, str(device), batch)
        if key not in _DEVICE_COSTS:
            model = EfficientNet(spec, ctx.num_classes, ctx.in_channels)
            ms = (measure_latency(model, resolution, batch=batch, **kw) if kind == "latency" else
                  measure_train_step(model, resolution, ctx.num_classes, batch=batch, **kw))
            _DEVICE_COSTS[key] = round(ms, 4)
        out[f"{kind}_ms"] = _DEVICE_COSTS[key]
    return out


def run_trial(config: dict, ctx: TrialContext = None, data: dict = None, recorded: dict | None = None) -> None:
    """One Ray Tune trial: train one job's network, report every evaluated epoch, then a final row."""
    import ray
    from ray import tune

    from .data import ProxyData
    from .proxy import resolve_device, train_proxy
    from .spec import ModelSpec

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
    budget = ctx.budget
    if budget.epochs != job.get("epochs", budget.epochs) or budget.steps != job.get("steps", budget.steps):
        budget = dataclasses.replace(budget, epochs=job.get("epochs", budget.epochs), steps=job.get("steps", budget.steps))
    index, fault = job.get("index"), budget.fault
    if ctx.fault_stage and index in fault.fail_trials:
        raise RuntimeError(f"injected failure in trial {index} (proxy.fault.fail_trials)")
    if ctx.fault_stage and index in fault.diverge_trials:
        budget = dataclasses.replace(budget, lr=budget.lr * 1e6)
    torch.set_num_threads(int(budget.threads or 1))
    if job["row"].get("cost_flag") == "infeasible":  # an Optuna suggestion the pixel grid cannot build at the cost
        tune.report({**job["row"], ctx.metric: 0.0, "epoch": 0, "final": True, "status": "infeasible",
                     "error": job["row"].get("error")})
        return
    with warnings.catch_warnings():  # zero-copy views of the shared object-store arrays (read-only)
        warnings.simplefilter("ignore", UserWarning)
        proxy_data = ProxyData(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in data.items()})
    spec = ModelSpec.from_dict(job["spec"], where=f"job {job['key']}")
    resolution = int(job["resolution"])
    device = resolve_device(budget.device)
    static = {**job["row"], "key": job["key"], "seed": job["seed"], "resolution": resolution,
              "train_id": job.get("train_id"), "node": ray.get_runtime_context().get_node_id()[:12]}
    if ctx.gpus_per_trial > 0 and device.type == "cuda":
        _check_gpu_memory(job, budget, ctx.gpus_per_trial)
    if ctx.device_costs:
        static.update(_device_costs(spec, resolution, ctx, device))
    last_epoch = budget.epochs if not budget.steps else math.ceil(
        budget.steps / max(1, len(proxy_data.train_y) // min(budget.batch_size, len(proxy_data.train_y))))

    def with_extra(result: dict) -> dict:
        return {**result, **ctx.extra_metrics(result)} if ctx.extra_metrics else result

    def report(m):
        # only evaluated epochs reach Tune (every result carries the metric: schedulers and searchers never see an
        # unevaluated epoch; ASHA sets proxy.eval_every=1); the last epoch is reported once, with the final row
        if m["epoch"] < last_epoch and m.get("accuracy") is not None:
            tune.report(with_extra({**static, **m, "final": False}))

    try:
        final = train_proxy(spec, resolution, proxy_data, budget, seed=job["seed"], report=report)
    except torch.cuda.OutOfMemoryError:
        raise RuntimeError(
            f"CUDA out of memory training {job['key']} at {resolution}px, batch {budget.batch_size}, with "
            f"search.gpus_per_trial={ctx.gpus_per_trial}; lower proxy.batch_size or raise search.gpus_per_trial"
        ) from None
    tune.report(with_extra({**static, **final, "final": True}))


def _measure_task(spec: dict, resolution: int, ctx: TrialContext, kinds=("latency", "train_step")) -> dict:
    """A Ray task: the device costs of one network on a worker with the trials' resources."""
    from .proxy import resolve_device
    from .spec import ModelSpec

    torch.set_num_threads(int(ctx.budget.threads or 1))
    return _device_costs(ModelSpec.from_dict(spec), resolution, ctx, resolve_device(ctx.budget.device), kinds)


def _check_gpu_memory(job: dict, budget, share: float) -> None:
    """Refuse a trial whose estimated training memory exceeds its share of the GPU."""
    from .cost import Cost, estimate_train_memory

    row = job["row"]
    need = estimate_train_memory(Cost(row["params"], row["macs"], row["activations"], job["resolution"]), budget.batch_size)
    have = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory * min(1.0, share)
    if need > have:
        raise RuntimeError(
            f"trial {job['key']} needs about {need / 2**30:.1f} GiB of GPU memory ({job['resolution']}px, batch "
            f"{budget.batch_size}) but search.gpus_per_trial={share} gives it {have / 2**30:.1f} GiB; lower "
            "proxy.batch_size or raise search.gpus_per_trial")


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
        err = trial.get_error() if hasattr(trial, "get_error") else None
        lines = [ln.strip() for ln in str(err or "unknown error").splitlines() if ln.strip()]
        row.update(status="error", error=next((ln for ln in reversed(lines) if "rror" in ln), lines[-1])[:300])
    elif status == "TERMINATED":
        row["status"] = r.get("status", "ok") if r.get("final") else "stopped"
        if row["status"] == "stopped":
            row.update(epochs=r.get("epoch"), error=f"stopped early by the scheduler (ASHA) after epoch {r.get('epoch')}")
    else:
        row["status"] = status.lower()
    for k in ("accuracy", "loss", "images_per_s", "wall_s", "latency_ms", "train_step_ms"):
        if isinstance(row.get(k), float):
            row[k] = round(row[k], 6)
    return row


def _searcher_job(trial, stage: Stage) -> dict | None:
    if stage.ctx.job_from_config is None:
        return None
    try:
        return stage.ctx.job_from_config({**trial.config, "__trial_id__": trial.trial_id})
    except (KeyError, TypeError, ValueError):
        return None


def _eta(done: int, total: int, elapsed: float) -> str:
    if done == 0 or done >= total:
        return ""
    left = elapsed / done * (total - done)
    return f", ETA {left / 60:.0f} min" if left >= 90 else f", ETA {left:.0f} s"


class TableWriter(Callback):
    """Rewrites a stage's table atomically whenever a trial reports (at most every 2 s) or ends; one progress
    line per finished trial with the stage's ETA. ``kept``: rows recorded before this attempt."""

    def __init__(self, stage: Stage, jobs: dict, kept: list[dict], total: int):
        self.stage, self.jobs, self.kept, self.total = stage, jobs, kept, total
        self.last, self.t0, self.done = 0.0, time.time(), len(kept)

    def write(self, trials, ended=None, how=None) -> None:
        rows = self.kept + [_row(t, self.stage, self.jobs, how if t is ended else None) for t in trials]
        atomic_write_csv(self.stage.table, _dedupe(rows), self.stage.columns)

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
        log.info("[%s %d/%d] %s: %s %s%s%s", self.stage.name, self.done, self.total, self.stage.describe(r), r["status"],
                 detail, wall, _eta(self.done - len(self.kept), self.total - len(self.kept), time.time() - self.t0))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended(trials, trial, "complete")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended(trials, trial, "error")


def _copy(src: dict, job: dict, stage: Stage, table: str | None) -> dict:
    """A finished row standing in for ``job`` (the same training): its metrics, the job's identity."""
    return {**{k: src.get(k) for k in stage.columns}, **job["row"], "key": job["key"], "seed": job["seed"],
            "resolution": job["resolution"], "train_id": job.get("train_id"), "reused_from": table or "an earlier stage"}


def _dedupe(rows: list[dict]) -> list[dict]:
    """One row per key (the last wins), in job order."""
    out: dict = {}
    for r in rows:
        out[r.get("key") or r.get("trial_id")] = r
    return sorted(out.values(), key=lambda r: (r.get("index", 0) if r.get("index") is not None else 1 << 30,
                                               str(r.get("key"))))


# ---------------------------------------------------------------- Ray
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
    if cluster.address:
        check_address(cluster.address)
        ray.init(address=cluster.address, **kwargs)
    else:  # a new local Ray, never the last `ray start` cluster of this machine (which may be dead)
        # Ray turns on token authentication for a new local cluster by default and warns that it did: it is
        # what this tool wants (no other user of the machine can submit work to it), so the warning is noise
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", num_cpus=cluster.num_cpus, num_gpus=cluster.num_gpus,
                 include_dashboard=cluster.include_dashboard, dashboard_host=cluster.dashboard_host, **kwargs)
    return True


class Runner:
    """The Ray session of one app run and the stages it runs (``with Runner(...) as r: r.run(stage)``)."""

    def __init__(self, cluster: ClusterConfig, resources: SearchConfig, storage: Path, verbose: int = 1):
        self.cluster, self.res, self.storage, self.verbose = cluster, resources, Path(storage), verbose
        self.started, self.data_ref, self.data_fingerprint = False, None, None

    def __enter__(self) -> "Runner":
        from .interrupt import reinstall

        self.started = init_ray(self.cluster, self.verbose)
        reinstall()
        try:
            self.check_resources()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import ray

        if self.started:
            ray.shutdown()
            self.started = False

    def check_resources(self) -> None:
        import ray

        have = ray.cluster_resources()
        gpus, cpus, s = have.get("GPU", 0), have.get("CPU", 0), self.res
        if s.gpus_per_trial > 0 and gpus < s.gpus_per_trial:
            raise ValueError(f"search.gpus_per_trial={s.gpus_per_trial} but the Ray cluster has {gpus:g} GPU(s); "
                             "allowed: 0 here, or run on a cluster with GPUs")
        if s.cpus_per_trial > cpus:
            raise ValueError(f"search.cpus_per_trial={s.cpus_per_trial} but the Ray cluster has {cpus:g} CPU(s); "
                             f"allowed: <= {cpus:g}")

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

        arrays = {f.name: getattr(data, f.name).numpy() if torch.is_tensor(getattr(data, f.name)) else getattr(data, f.name)
                  for f in dataclasses.fields(data)}
        self.data_ref = ray.put(arrays)
        self.data_fingerprint = data.fingerprint

    def measurer(self, ctx: TrialContext, kind: str, cache_path: Path) -> Callable:
        """``measure(spec, resolution) -> ms`` of a device cost (``latency`` | ``train_step``), measured by a Ray
        task with the trials' resources (so on the trials' kind of device), cached per (spec, resolution,
        device) in ``cache_path`` (the plan of a resumed run measures nothing twice)."""
        import ray

        from .io import atomic_write_json, read_json

        cache = read_json(cache_path) if Path(cache_path).is_file() else {}
        task = ray.remote(_measure_task).options(num_cpus=self.res.cpus_per_trial, num_gpus=self.res.gpus_per_trial)
        device = ctx.budget.device if self.res.gpus_per_trial == 0 else f"{ctx.budget.device}-gpu"

        def measure(spec, resolution: int) -> float:
            blob = json.dumps(spec.to_dict(), sort_keys=True)
            batch = ctx.latency_batch if kind == "latency" else ctx.budget.batch_size
            key = f"{kind}|{hashlib.sha256(blob.encode()).hexdigest()[:16]}|{resolution}|{device}|b{batch}"
            if key not in cache:
                cache[key] = ray.get(task.remote(spec.to_dict(), int(resolution), ctx, (kind,)))
                atomic_write_json(cache_path, cache)
            return cache[key][f"{kind}_ms"]

        return measure

    def _reporter(self, stage: Stage):
        """Ray's trial table at verbose=2: a job trial shows its key, not the whole job dict."""
        if self.verbose < 2:
            return None
        from ray import tune

        params = {"job/key": "job"} if stage.searcher is None else None
        return tune.CLIReporter(parameter_columns=params, metric_columns=["epoch", stage.ctx.metric],
                                max_report_frequency=30)

    def run(self, stage: Stage) -> list[dict]:
        """Run the stage's unfinished trainings; return all its rows (recorded and new), in job order."""
        from ray import tune

        recorded = {r["key"]: r for r in read_table(stage.table) if r.get("status") in FINISHED and r.get("key")}
        reuse = {r["train_id"]: r for r in stage.reuse if r.get("status") == "ok" and r.get("train_id")}
        kept, todo, twins = [], [], []
        first: dict = {}
        for job in stage.jobs or []:
            if job["key"] in recorded:
                kept.append(recorded[job["key"]])
            elif job.get("train_id") in reuse:
                kept.append(_copy(reuse[job["train_id"]], job, stage, reuse[job["train_id"]].get("_table")))
            elif job.get("train_id") in first:  # the same training twice in this stage (e.g. B0 of two families)
                twins.append((job, first[job["train_id"]]))
            else:
                first[job.get("train_id") or job["key"]] = job
                todo.append(job)
        if stage.searcher is None and not todo:
            if kept:
                atomic_write_csv(stage.table, _dedupe(kept), stage.columns)
            return _dedupe(kept)
        jobs = {j["key"]: j for j in todo}
        total = len(kept) + (len(todo) if stage.searcher is None else stage.num_samples)
        if kept:
            log.info("%s: %d of %d trainings already recorded (not trained again)", stage.name, len(kept), total)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, ctx=stage.ctx, data=self.data_ref,
                                 recorded=recorded if stage.searcher is not None else None),
            {"cpu": self.res.cpus_per_trial, "gpu": self.res.gpus_per_trial})
        writer = TableWriter(stage, jobs, kept if stage.searcher is None else list(recorded.values()), total)
        tune_dir = self.storage / "tune" / stage.name
        run_config = tune.RunConfig(name=stage.name, storage_path=str(self.storage / "tune"), callbacks=[writer],
                                    verbose=0 if self.verbose < 2 else 1, progress_reporter=self._reporter(stage),
                                    failure_config=tune.FailureConfig(max_failures=self.res.max_failures))
        if stage.searcher is not None and tune.Tuner.can_restore(str(tune_dir)):
            log.info("%s: restoring the Ray Tune experiment in %s (%d finished trials kept)", stage.name, tune_dir,
                     len(recorded))
            tuner = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_unfinished=True, resume_errored=False,
                                       restart_errored=False)
        else:
            if stage.searcher is None and tune_dir.exists():  # an interrupted attempt: its unfinished jobs start anew
                import shutil

                shutil.rmtree(tune_dir, ignore_errors=True)
            param_space = {"job": tune.grid_search(todo)} if stage.searcher is None else {}
            concurrent = self.res.max_concurrent_trials or (self.slots() if stage.searcher is not None else None)
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric=stage.tune_metric, mode="max" if stage.tune_metric else None,
                    search_alg=stage.searcher and FinishedOnly(stage.searcher), scheduler=stage.scheduler,
                    num_samples=1 if stage.searcher is None else stage.num_samples,
                    max_concurrent_trials=concurrent, reuse_actors=self.res.reuse_actors),
                run_config=run_config)
        _IN_TUNE.set()
        try:
            grid = tuner.fit()
        finally:
            _IN_TUNE.clear()
        trials = grid._experiment_analysis.trials  # Trial objects: status and error detail live there
        rows = [_row(t, stage, jobs) for t in trials]
        if INTERRUPTED.is_set():  # trials the interrupt stopped are unfinished: resume trains them
            rows = [r if r.get("finished_at") and r["status"] in ("ok", "diverged", "infeasible") else
                    {**r, "status": "interrupted", "error": None, "finished_at": None} for r in rows]
        done = {r["key"]: r for r in rows if r["status"] == "ok"}
        rows += [_copy(done[src["key"]], job, stage, stage.table.name) for job, src in twins if src["key"] in done]
        rows = _dedupe((kept if stage.searcher is None else list(recorded.values())) + rows)
        atomic_write_csv(stage.table, rows, stage.columns)
        if INTERRUPTED.is_set():
            INTERRUPTED.raised = True
            raise Interrupted(getattr(INTERRUPTED, "signum", signal.SIGINT))
        return rows
