"""Every training of every stage, as Ray Tune trials, through one runner.

:class:`Runner` owns the Ray session (a new local Ray, or ``cluster.address`` / ``$RAY_ADDRESS``:
:mod:`scalesearch.run.session`), puts the decoded data into the object store once, and runs a :class:`Stage` — a
list of training jobs, or an Optuna searcher — as Tune trials with the search's resources (fractional GPUs
included), failure retries and resume. Each stage writes its rows atomically into its own table in the run directory
(``results.csv``, ``validation.csv``, ``family_results.csv``, ``ablation_results.csv``, NAS's
``results.csv``) as trials report and end (:mod:`scalesearch.run.tables`).

A job is a plain dict built on the driver: ``key`` (unique in the stage), ``index`` (submission
order), ``spec`` (a ``ModelSpec`` dict), ``resolution``, ``seed``, ``epochs`` (its budget) and
``row`` (the identity columns copied into the table). Every trial receives the same small immutable
:class:`scalesearch.run.trial.TrialContext` (budget, data shape, what to measure) — never the app config — and
runs :func:`scalesearch.run.trial.run_trial`.

Resume (docs/RELIABILITY.md): a stage's table is the record. Jobs recorded there as finished are
not trained again; a job whose ``train_id`` (network, resolution, seed, budget, data) equals a
finished row of an earlier stage is copied from it. Searcher stages (Optuna) restore Tune's
experiment, whose searcher state cannot be rebuilt from a table, and replay recorded rows.
Ray is imported in run/ only, and above it by the modules that use the runner: nothing the runner imports from
outside run/ imports Ray.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import ClusterConfig, TrialsConfig
from ..io import atomic_write_csv
from ..plan.preflight import check_tune_storage, ray_address
from .interrupt import IN_TUNE, INTERRUPTED, Interrupted, RunStopped, deferred, installed, interrupted_by
from .searcher import FinishedOnly
from .session import RayWatch, init_ray, remove_tree, root_cause, tune_root, tune_survives_worker_deaths
from .tables import TableWriter, copied_row, dedupe, recorded_rows, split_jobs, trial_name, trial_row
from .trial import (TrialContext, gpu_memory_task, measure_task, memory_error, memory_need, run_trial,
                    trial_resources)

# Ray Tune's new console output prints its experiment boxes whatever RunConfig.verbose says; the legacy reporter
# honours verbose=0 (the tool prints its own progress; verbose=2 brings Ray's tables back)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

log = logging.getLogger("scalesearch")

__all__ = ["Stage", "JobStage", "SearcherStage", "Runner"]


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
                total = ray.get(ray.remote(gpu_memory_task).options(num_gpus=s.gpus_per_trial).remote())
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
            raise ValueError(memory_error(name, over[0], over[1], over[2], limit, where, allowed))

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
        kept, todo, twins = split_jobs(stage, recorded)
        if not todo:
            if kept:
                atomic_write_csv(stage.table, dedupe(kept) + unplanned, stage.columns)
            return dedupe(kept)
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
        rows += [copied_row(done[src["key"]], job, stage, stage.table.name) for job, src in twins
                 if src["key"] in done]
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
            raise RunStopped(f"Ray Tune could not go on with the {stage.name} stage ({root_cause(e)}); its finished "
                             f"trainings are kept in {stage.table}") from e
        finally:
            IN_TUNE.clear()
        trials = grid._experiment_analysis.trials  # Trial objects: status and error detail live there
        rows = [trial_row(t, stage, jobs) for t in trials]
        if INTERRUPTED.is_set():
            rows = [r if r.get("finished_at") and r["status"] in ("ok", "diverged", "infeasible") else
                    {**r, "status": "interrupted", "error": None, "finished_at": None} for r in rows]
        return rows

    def _finish(self, stage: Stage, rows: list[dict], unplanned: list[dict]) -> list[dict]:
        """The stage's table written (atomically); an interrupt raised once everything is kept."""
        rows = dedupe(rows)
        atomic_write_csv(stage.table, rows + unplanned, stage.columns)
        if INTERRUPTED.is_set():
            INTERRUPTED.raised = True
            raise Interrupted(getattr(INTERRUPTED, "signum", signal.SIGINT))
        return rows
