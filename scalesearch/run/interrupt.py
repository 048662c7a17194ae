"""Stopping cleanly on SIGINT / SIGTERM (Ctrl-C, a closed terminal, a cluster scheduler).

The apps install :func:`on_signal` for both signals. Inside a Ray Tune run the handler flags the interrupt
and passes it on to Tune's own graceful stop (SIGUSR1, which Tune always handles: the loop ends, the
experiment state is saved with the running trials unfinished, so that a restore resumes them); nothing
ending after the flag is recorded as finished, and the runner raises :class:`Interrupted` once Tune has
returned (raising inside Ray's C calls would leave Ray broken). Anywhere else, or on a second signal, it raises
at once. The CLI turns :class:`Interrupted` into one line saying how to resume and exit code 128 + the signal
(130, 143).

A scheduler stops a job by signalling *all* its processes (``timeout``, Slurm, systemd; SIGHUP from a closed
terminal): Ray's own processes of a local session then die with the driver's signal — Ray's core worker may end the
driver at once ("Raylet IPC connection failed", exit 1), or its wait on them would end, 60 s later, in Ray's own
"Failed to connect to GCS" abort. So while a Ray session is up the runner's watch learns of a signal the moment it
arrives (Python's wakeup fd, even while the main thread waits inside Ray) and calls :func:`notice`: the one line is
printed then (:func:`say`: once per process) and the run's stop callbacks record it (search.json says
``interrupted``); when Ray's processes are gone the watch calls :func:`abandon`, which ends the process at once.
Ray's core worker, whose raylet got the same signal, can still end the process first (exit 1), before the line
or the record: so the console scripts run the app under a supervisor (:mod:`scalesearch.apps.supervise`) that forwards a
signal to its group to the app alone (Ray's processes are not signalled) and, where every process was signalled,
outlives the app to say the line and record the stop itself (the app tells it what to say: :func:`tell`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

__all__ = ["INTERRUPTED", "IN_TUNE", "Interrupted", "RunStopped", "on_signal", "interrupted_by", "install",
           "install_early", "reinstall", "deferred", "hand_to_tune", "raise_if_interrupted", "set_resume_line",
           "stop_line", "say", "notice", "on_stop", "abandon", "STOP_SIGNALS", "installed", "SUPERVISOR_FD",
           "report_to", "tell", "mark_interrupted", "said_elsewhere", "line_out"]

# set by the SIGINT/SIGTERM handler (:func:`on_signal`): Tune stops every trial and nothing ending after it is
# recorded as finished; the runner then raises Interrupted
INTERRUPTED = threading.Event()
IN_TUNE = threading.Event()  # a Tune loop is running: the interrupt is handed to it (:func:`hand_to_tune`)
_DEFER = threading.Event()  # inside :func:`deferred`: the interrupt is raised when the block ends
_RESUME: dict = {"line": None}  # the app's resume command (:func:`set_resume_line`), for :func:`abandon`
_SAID = threading.Event()  # the one stop line is printed (:func:`say`)
_ON_STOP: list = []  # the run's stop callbacks (:func:`on_stop`), called with the signal's name
_LOCK = threading.Lock()
SUPERVISOR_FD = "SCALESEARCH_SUPERVISOR_FD"  # the pipe to the console script's supervisor (scalesearch.apps.supervise)
_TELL: dict = {"fd": None}  # that pipe, in the supervised app (:func:`report_to`)
# the signals that stop a run cleanly: Ctrl-C, a scheduler's or kill's SIGTERM, a closed terminal's SIGHUP
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class RunStopped(RuntimeError):
    """A fault the run cannot go on from (Ray Tune itself failed): what finished is recorded and the run stays
    resumable; the CLI prints one line with the resume command and exits 3."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop, keep what is recorded, exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, frame) -> None:
    """The apps' SIGINT/SIGTERM handler. Inside a Tune run, or inside :func:`deferred` (Ray's start-up), it only
    flags the interrupt: Tune then stops all trials at its next step, the deferred block raises when it ends
    (raising inside Ray's C calls leaves Ray broken, and inside the fork handlers of Ray's start-up the exception
    is swallowed: "Exception ignored in _releaseLock"). Elsewhere, or on a second signal, it raises
    :class:`Interrupted` at once."""
    first = not INTERRUPTED.is_set()
    INTERRUPTED.set()
    if first:
        INTERRUPTED.signum = signum
    if getattr(INTERRUPTED, "raised", False):  # the clean-up after the interrupt runs undisturbed
        return
    if first and (IN_TUNE.is_set() or _DEFER.is_set()):
        return
    INTERRUPTED.raised = True
    raise Interrupted(getattr(INTERRUPTED, "signum", signum))


def raise_if_interrupted() -> None:
    """Raise the flagged interrupt (once), at a point where raising is safe."""
    if INTERRUPTED.is_set() and not getattr(INTERRUPTED, "raised", False):
        INTERRUPTED.raised = True
        raise Interrupted(getattr(INTERRUPTED, "signum", signal.SIGINT))


@contextlib.contextmanager
def deferred():
    """A block that a signal must not cut mid-way (``ray.init``, ``ray.put``): the interrupt is raised when it
    ends (a second signal still raises at once)."""
    _DEFER.set()
    try:
        yield
    finally:
        _DEFER.clear()
    raise_if_interrupted()


def hand_to_tune() -> None:
    """Called by the runner's Tune callback at every step of Tune's loop (where Tune's SIGUSR1 handler is surely
    installed): a flagged interrupt becomes Tune's graceful stop, once."""
    if INTERRUPTED.is_set() and not getattr(INTERRUPTED, "told_tune", False) and hasattr(signal, "SIGUSR1"):
        INTERRUPTED.told_tune = True
        os.kill(os.getpid(), signal.SIGUSR1)


def set_resume_line(line: str | None) -> None:
    """The command that resumes this app's run, for a stop that cannot unwind (:func:`abandon`) — and for the
    supervisor, should the process end before it says it."""
    _RESUME["line"] = line
    tell("resume", line or "")


def report_to(fd: int) -> None:
    """In an app run by the console scripts' supervisor: tell it, through pipe ``fd``, the resume line, the run's
    record (search.json) and that the stop line is said (:func:`tell`)."""
    _TELL["fd"] = fd


def tell(kind: str, value: str = "") -> None:
    """One message to the supervisor (``kind<TAB>value``, one write), if this app has one; never an error."""
    if _TELL["fd"] is not None:
        with contextlib.suppress(OSError, ValueError):
            os.write(_TELL["fd"], f"{kind}\t{value}".replace("\n", " ").encode() + b"\n")


def mark_interrupted(doc: dict, signal_name: str) -> bool:
    """A run's record (search.json's document) marked as stopped by ``signal_name`` — only while it says
    ``running`` (a resume sets it ``running`` again); returns whether it changed."""
    if doc.get("status") != "running":
        return False
    doc.update(status="interrupted", interrupted={"signal": signal_name, "at": time.time()})
    return True


def stop_line(what: str, resume: str | None) -> str:
    """The one line of a stopped run: what stopped it, that the finished work is kept, how to resume."""
    hint = f"; resume with: {resume}" if resume else ""
    return f"scalesearch: {what}: what finished is recorded and the run stays resumable{hint}"


def line_out(line: str) -> None:
    """``line`` and its newline to stderr in one write: the jobs of a parallel multirun share the terminal, and a
    stream that writes through (unbuffered) would otherwise send the newline apart, splicing two jobs' lines."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def say(line: str) -> None:
    """Print the run's one stop line, once per process (the first to come: the signal's notice, the watch's
    abandon, the app's own unwinding). A closed terminal (SIGHUP) may refuse it: that is not an error."""
    with _LOCK:
        if _SAID.is_set():
            return
        _SAID.set()
    tell("said")
    with contextlib.suppress(OSError, ValueError):
        line_out(line)


def said_elsewhere() -> None:
    """The stop lines are said by other processes (a parallel multirun's jobs, :mod:`scalesearch.run.multirun`):
    this one adds none."""
    with _LOCK:
        _SAID.set()
    tell("said")


@contextlib.contextmanager
def on_stop(callback):
    """Within the block, a stop signal calls ``callback(signal_name)`` (from the runner's watch thread, the moment
    it arrives: it must be thread-safe), so that the record says so even if Ray ends the process next."""
    _ON_STOP.append(callback)
    try:
        yield
    finally:
        _ON_STOP.remove(callback)


def notice(signum: int) -> None:
    """A stop signal arrived while Ray runs the trainings (the runner's watch calls this at once): the one line is
    printed now (one write, first), then the stop callbacks record it — Ray's processes, signalled with the
    driver's group, may end the driver before it can unwind, or even before this returns. The main thread still
    stops Tune gracefully (:func:`on_signal`)."""
    name = signal.Signals(signum).name
    say(stop_line(f"interrupted by {name}", _RESUME["line"]))
    for callback in list(_ON_STOP):
        with contextlib.suppress(Exception):
            callback(name)


def abandon(why: str, signum: int | None = None) -> None:
    """End the process now, from any thread, when Ray is gone under a waiting main thread (nothing can unwind
    through Ray's calls): the one line — ``interrupted by SIG…`` and exit 128 + signal after an interrupt (the
    handler's, or ``signum`` that the watch noticed first), else ``error: <why>`` and exit 3 (as
    :class:`RunStopped`) — then ``os._exit``. Finished trainings are on disk already (each row is written when its
    trial ends); the run directory's lock goes with the process."""
    if INTERRUPTED.is_set():
        signum = getattr(INTERRUPTED, "signum", signum or signal.SIGTERM)
    if signum is not None:
        what, code = f"interrupted by {signal.Signals(signum).name} ({why})", 128 + signum
    else:
        what, code = f"error: {why}", 3
    say(stop_line(what, _RESUME["line"]))
    for handler in logging.getLogger().handlers + logging.getLogger("scalesearch").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


def interrupted_by(e: BaseException) -> Interrupted | None:
    """The Interrupted behind ``e`` (a C extension may wrap it in a SystemError), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Interrupted):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None




_INSTALLED = threading.Event()


def _early(signum, frame) -> None:
    tell("said")
    line_out(f"scalesearch: interrupted by {signal.Signals(signum).name} while starting: nothing was started")
    os._exit(128 + signum)


def installed() -> bool:
    """Whether this process is an app that handles the stop signals (:func:`install`)."""
    return _INSTALLED.is_set()


def install_early() -> None:
    """While an app imports (torch, Ray, Hydra: seconds) nothing is written or started yet: a signal then ends
    the process at once with one line (Python would print a KeyboardInterrupt traceback). Only in a process
    started as an app (``scalesearch*`` console scripts, ``python -m scalesearch``), never in a notebook or test
    runner that imports the package."""
    argv0 = Path(sys.argv[0] if sys.argv else "")
    if not (argv0.name.startswith("scalesearch") or argv0.parent.name == "scalesearch"):
        return
    if threading.current_thread() is threading.main_thread() and not _INSTALLED.is_set():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _early)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP with :func:`on_signal` (the apps call this first)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    _INSTALLED.set()


def reinstall() -> None:
    """Again after ``ray.init``: Ray's core worker installs its own SIGTERM handler in the driver (it aborts the
    process), which would turn a scheduler's SIGTERM into a crash instead of a clean stop."""
    if _INSTALLED.is_set() and threading.current_thread() is threading.main_thread():
        install()
