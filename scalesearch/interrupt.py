"""Stopping cleanly on SIGINT / SIGTERM (Ctrl-C, a closed terminal, a cluster scheduler).

The apps install :func:`on_signal` for both signals. Inside a Ray Tune run the handler flags the interrupt
and passes it on to Tune's own graceful stop (SIGUSR1, which Tune always handles: the loop ends, the
experiment state is saved with the running trials unfinished, so that a restore resumes them); nothing
ending after the flag is recorded as finished, and the runner raises :class:`Interrupted` once Tune has
returned (raising inside Ray's C calls would leave Ray broken). Anywhere else, or on a second signal, it raises at once. The CLI
turns :class:`Interrupted` into one line saying how to resume and exit code 128 + the signal (130, 143).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["INTERRUPTED", "Interrupted", "on_signal", "interrupted_by", "install", "reinstall"]

# set by the SIGINT/SIGTERM handler (:func:`on_signal`): Tune stops every trial and nothing ending after it is
# recorded as finished; the runner then raises Interrupted
INTERRUPTED = threading.Event()
_IN_TUNE = threading.Event()


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop, keep what is recorded, exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, frame) -> None:
    """The apps' SIGINT/SIGTERM handler. Inside a Tune run it only flags the interrupt (Tune then stops all
    trials at its next step: raising inside Ray's C calls would leave Ray in a broken state); elsewhere, or on a
    second signal, it raises :class:`Interrupted` at once."""
    first = not INTERRUPTED.is_set()
    INTERRUPTED.set()
    if first:
        INTERRUPTED.signum = signum
    if getattr(INTERRUPTED, "raised", False):  # the clean-up after the interrupt runs undisturbed
        return
    if first and _IN_TUNE.is_set() and hasattr(signal, "SIGUSR1"):
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop
        return
    INTERRUPTED.raised = True
    raise Interrupted(getattr(INTERRUPTED, "signum", signum))


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


def install() -> None:
    """Handle SIGINT and SIGTERM with :func:`on_signal` (the apps call this first)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    _INSTALLED.set()


def reinstall() -> None:
    """Again after ``ray.init``: Ray's core worker installs its own SIGTERM handler in the driver (it aborts the
    process), which would turn a scheduler's SIGTERM into a crash instead of a clean stop."""
    if _INSTALLED.is_set() and threading.current_thread() is threading.main_thread():
        install()
