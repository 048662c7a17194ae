"""The rows of a stage's table: one row per training, built from its Ray Tune trial, and the table kept up to date.

A stage's table (``results.csv``, ``validation.csv``, ...) is its record (docs/RELIABILITY.md): :class:`TableWriter`
rewrites it atomically as trials report and end, with one progress line per finished training and the stage's
ETA; :func:`recorded_rows` reads back what a resumed stage finished, and :func:`split_jobs` parts a stage's jobs
into rows kept (recorded, or copied from a finished row of an earlier stage with the same ``train_id``) and jobs
to train. A ``stage`` here is a :class:`scalesearch.run.runner.Stage` (its name, table, columns, trial context).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ..decide.results import FINISHED, read_table
from ..io import atomic_write_csv
from .interrupt import INTERRUPTED, hand_to_tune
from .trial import TrialContext, memory_need

log = logging.getLogger("scalesearch")

__all__ = ["trial_row", "error_line", "trial_name", "TableWriter", "copied_row", "recorded_rows", "dedupe",
           "split_jobs"]


def trial_row(trial, stage: Any, jobs: dict, ended: str | None = None) -> dict:
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


def _searcher_job(trial, stage: Any) -> dict | None:
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

    def __init__(self, stage: Any, jobs: dict, kept: list[dict], total: int, unplanned: list[dict] = ()):
        self.stage, self.jobs, self.kept, self.total, self.unplanned = stage, jobs, kept, total, list(unplanned)
        self.last, self.t0, self.done = 0.0, time.time(), len(kept)

    def write(self, trials, ended=None, how=None) -> None:
        rows = self.kept + [trial_row(t, self.stage, self.jobs, how if t is ended else None) for t in trials]
        atomic_write_csv(self.stage.table, dedupe(rows) + self.unplanned, self.stage.columns)

    def on_step_begin(self, iteration, trials, **info):
        hand_to_tune()  # an interrupt flagged before Tune's loop had its SIGUSR1 handler

    def on_trial_recover(self, iteration, trials, trial, **info):
        job = self.jobs.get((trial.config.get("job") or {}).get("key")) or _searcher_job(trial, self.stage)
        r = trial_row(trial, self.stage, self.jobs, "error")
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
        r = trial_row(trial, self.stage, self.jobs, how)
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


def copied_row(src: dict, job: dict, stage: Any, table: str | None) -> dict:
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


def dedupe(rows: list[dict]) -> list[dict]:
    """One row per key (the last wins), in job order."""
    out: dict = {}
    for r in rows:
        out[r.get("key") or r.get("trial_id")] = r
    return sorted(out.values(), key=lambda r: (r.get("index", 0) if r.get("index") is not None else 1 << 30,
                                               str(r.get("key"))))


def split_jobs(stage: Any, recorded: dict) -> tuple[list[dict], list[dict], list[tuple[dict, dict]]]:
    """(rows kept: recorded or reused from an earlier stage by train_id, jobs to train, twins: a job whose training
    another job of this stage does — e.g. B0 of two families — with that job)."""
    reuse = {r["train_id"]: r for r in stage.reuse if r.get("status") == "ok" and r.get("train_id")}
    kept, todo, twins, first = [], [], [], {}
    for job in stage.jobs:
        if job["key"] in recorded:
            kept.append(recorded[job["key"]])
        elif job.get("train_id") in reuse:
            kept.append(copied_row(reuse[job["train_id"]], job, stage, reuse[job["train_id"]].get("_table")))
        elif job.get("train_id") in first:
            twins.append((job, first[job["train_id"]]))
        else:
            first[job.get("train_id") or job["key"]] = job
            todo.append(job)
    return kept, todo, twins

