"""A parallel Hydra multirun (``-m … hydra/launcher=joblib``): its jobs run in worker processes of the Hydra
process, which is where a stop signal arrives (the console script's supervisor forwards Ctrl-C, SIGTERM and
SIGHUP to it alone). The Hydra process passes the stop on to every job that runs, waits until each has stopped as a
single run stops (its one line with its own resume command, its search.json ``interrupted``), lets no waiting job
start, and then exits 128 + signal with nothing more to say.

The jobs find the Hydra process through one environment variable, ``SCALESEARCH_MULTIRUN`` = ``<pid>:<folder>``
(inherited by the launcher's workers): a running job holds a file named by its pid in the folder, and a file
``STOP`` there turns away the jobs that have not started. Jobs in the Hydra process itself (the basic launcher)
take no part: the app's own handler stops them. Standard library only (and scalesearch.io)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import interrupt
from ..io import atomic_write_text

__all__ = ["ENV", "host", "job"]

ENV = "SCALESEARCH_MULTIRUN"
WAIT_S = 60.0  # the longest the Hydra process waits for its jobs to stop (a job takes seconds: Tune, then Ray)
_HOST: dict = {"folder": None, "stopping": None}


def host() -> None:
    """In the Hydra process of a multirun, before its launcher starts workers: the folder the jobs register in,
    and the handler that hands a stop signal to them (:func:`interrupt.on_signal` when no job runs elsewhere)."""
    folder = Path(tempfile.mkdtemp(prefix="scalesearch-multirun-"))
    os.environ[ENV] = f"{os.getpid()}:{folder}"
    _HOST["folder"] = folder
    import atexit

    atexit.register(shutil.rmtree, folder, True)
    for sig in interrupt.STOP_SIGNALS:
        signal.signal(sig, _on_signal)


def _running(folder: Path) -> list[int]:
    """The jobs registered and alive (a job that Ray's end took down at once leaves its file behind)."""
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit() and _alive(int(p.name))]


def _alive(pid: int) -> bool:
    try:
        if Path("/proc/self/stat").exists():  # Linux: a process that ended but is not yet reaped (a zombie) is not
            return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _on_signal(signum, frame) -> None:
    """The Hydra process's stop: the jobs running in workers are signalled, the rest turned away; once those have
    stopped (or after WAIT_S), :class:`interrupt.Interrupted` unwinds the launcher, which ends its workers."""
    folder = _HOST["folder"]
    if _HOST["stopping"] is not None:  # a second signal while the jobs stop: theirs too (they end at once)
        for pid in _HOST["stopping"]:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        return
    atomic_write_text(folder / "STOP", str(signum))  # first: a job registers, then looks for it (none slips between)
    jobs = _running(folder)
    if not jobs:  # the jobs run in this process (the basic launcher), or none has started: a single run's stop
        return interrupt.on_signal(signum, frame)
    _HOST["stopping"] = jobs
    for pid in jobs:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
    deadline = time.monotonic() + WAIT_S
    while _running(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    interrupt.said_elsewhere()  # each job said its line with its own resume command
    interrupt.on_signal(signum, frame)


def _hosted() -> Path | None:
    """The Hydra process's folder, in a job that runs in one of its workers (else None)."""
    pid, _, folder = os.environ.get(ENV, "").partition(":")
    if not pid.isdigit() or int(pid) == os.getpid() or not Path(folder).is_dir():
        return None
    return Path(folder)


@contextlib.contextmanager
def job():
    """Around a job of a multirun: in a worker process, it handles stop signals as an app does, is registered
    while it runs, and does not start after the multirun was stopped (exit 128 + signal, nothing written)."""
    folder = _hosted()
    if folder is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    me = folder / str(os.getpid())
    me.touch()
    try:
        stop = folder / "STOP"
        if stop.exists():
            sys.exit(128 + int(stop.read_text() or signal.SIGINT))
        interrupt.install()
        yield
    finally:
        me.unlink(missing_ok=True)
