"""The Ray session of an app run: starting or joining Ray, where Tune keeps its experiments, and the watch on Ray.

:func:`init_ray` starts a new local Ray or joins ``cluster.address`` / ``$RAY_ADDRESS``;
:func:`tune_survives_worker_deaths` lets Tune retry a trial whose process Ray's memory monitor killed;
:func:`tune_root` is where a run's Tune experiments lie (the run directory, or ``cluster.storage``);
:class:`RayWatch` ends the process with the tool's line when Ray's processes stop under the run. Ray is imported
inside the functions that use it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

from ..config import ClusterConfig
from ..plan.preflight import check_address, ray_address
from .interrupt import STOP_SIGNALS, abandon, notice

log = logging.getLogger("scalesearch")

__all__ = ["root_cause", "tune_survives_worker_deaths", "init_ray", "tune_root", "remove_tree", "RayWatch"]


def root_cause(e: BaseException) -> str:
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
