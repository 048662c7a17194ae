"""The console scripts' supervisor: an app runs as a child process that its scripts' process only watches.

Why: a scheduler stops a job by signalling *all* its processes (``timeout``, ``kill -- -PGID``; Slurm's scancel and
systemd signal every process of the job). Ray's raylet then dies with the driver, and Ray's core worker may end the
driver at once (exit 1), before it prints its one line or records the stop. So the console script (this module,
standard library only, no Ray) starts the app as a child in its own process group and forwards each SIGINT, SIGTERM
and SIGHUP to the child alone — a signal to the script's group reaches Ray's processes no more than a signal to
the driver alone does, which stops Tune gracefully. Where every process is signalled anyway, the script outlives
the child: if the child ended without its line, the script prints it, records the stop in search.json and exits
128 + signal. Ctrl-Z stops the child's group with the script; a SIGKILLed script takes the child with it (Linux's
parent-death signal). The child tells the script its resume line, its run record and that the line is said through
a pipe (:func:`scalesearch.run.interrupt.tell`). Only on Linux; elsewhere the app runs in the script's own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..run.interrupt import STOP_SIGNALS, SUPERVISOR_FD, line_out, mark_interrupted, stop_line
from ..io import atomic_write_json

__all__ = ["main", "generate_main", "report_main", "ablate_main", "nas_main", "validate_main", "compare_main",
           "supervised", "child"]

_PARENT = "SCALESEARCH_SUPERVISOR_PID"


def supervised() -> bool:
    """Whether the console scripts run their app as a watched child here (Linux, and not already a child)."""
    return sys.platform.startswith("linux") and SUPERVISOR_FD not in os.environ


def run(app: str) -> int:
    """Run ``scalesearch.apps.cli.<app>`` (an app function) as a supervised child; return the exit code to use."""
    if not supervised():
        from . import cli

        getattr(cli, app)()
        return 0
    read_end, write_end = os.pipe()
    watch = _Watch()
    watch.install()
    # the child sees what the script saw: its argv[0] and its first import path (``-c`` would put the working
    # directory first, where a user's yaml.py or signal.py would shadow the real one)
    code = (f"import sys; sys.path[:1] = {sys.path[:1]!r} if sys.path[:1] == [''] else sys.path[:1]; "
            f"sys.argv[0] = {sys.argv[0]!r}; from scalesearch.apps.supervise import child; child({app!r})")
    env = {**os.environ, SUPERVISOR_FD: str(write_end), _PARENT: str(os.getpid())}
    proc = subprocess.Popen([sys.executable, "-c", code, *sys.argv[1:]], env=env, pass_fds=(write_end,),
                            preexec_fn=os.setpgrp)  # (one thread here: preexec_fn is safe)
    os.close(write_end)
    told: dict = {}
    watch.start(proc)
    reader = threading.Thread(target=_read, args=(read_end, told, watch), daemon=True)
    reader.start()
    rc = proc.wait()
    reader.join(timeout=5)
    return watch.outcome(rc, told)


def _read(fd: int, told: dict, watch: "_Watch") -> None:
    """The child's messages (``kind<TAB>value`` lines) until it ends: the last value of each kind is kept."""
    with open(fd, "rb") as f:
        for raw in f:
            kind, _, value = raw.decode(errors="replace").rstrip("\n").partition("\t")
            told[kind] = value
            if kind == "ready":
                watch.on_ready()


class _Watch:
    """The script's signal handling: stop signals forwarded to the child (those that came while it started, once
    it runs), Ctrl-Z and fg passed to the child's group, and what to do once the child ended."""

    def __init__(self):
        self.proc, self.signals, self.sent = None, [], 0
        self.ready, self.lock = False, threading.RLock()  # the child handles signals (it said "ready")

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.on_stop)
        if hasattr(signal, "SIGTSTP"):
            signal.signal(signal.SIGTSTP, self.on_tstp)
            signal.signal(signal.SIGCONT, self.on_cont)

    def start(self, proc) -> None:
        self.proc = proc
        self.flush()

    def on_stop(self, signum, frame) -> None:
        self.signals.append(signum)
        self.flush()

    def on_ready(self) -> None:
        self.ready = True
        self.flush()

    def flush(self) -> None:
        """Forward the signals not yet sent, once the child's own handlers are in place (before, a SIGINT would
        print Python's KeyboardInterrupt traceback there)."""
        with self.lock:
            while self.proc is not None and self.ready and self.sent < len(self.signals):
                signum, self.sent = self.signals[self.sent], self.sent + 1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signum)

    def on_tstp(self, signum, frame) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)  # stopped here until fg / bg sends SIGCONT (a re-raised SIGTSTP would
        # be discarded where the script's process group is orphaned, e.g. a session of its own)

    def on_cont(self, signum, frame) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)

    def outcome(self, rc: int, told: dict) -> int:
        """The child's exit code — unless a stop signal came and the child ended without a code of its own (Ray's
        core worker ended it: exit 1; or a signal): then the stop is recorded, the line said (if the child did not
        live to) and the code is 128 + signal."""
        if not self.signals or rc in (0, 2, 3) or rc >= 128:
            return 128 - rc if rc < 0 else rc
        signum = self.signals[0]
        name = signal.Signals(signum).name
        record = Path(told["record"]) if told.get("record") else None
        if record is not None and record.is_file():
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(record.read_text())
                if mark_interrupted(doc, name):
                    atomic_write_json(record, doc)
        if "said" not in told:
            with contextlib.suppress(OSError, ValueError):
                line_out(stop_line(f"interrupted by {name}", told.get("resume") or None))
        return 128 + signum


def child(app: str) -> None:
    """The app, in the supervised child: it dies with the script (a SIGKILLed script leaves no run behind), and
    keeps the pipe to the script to itself (Ray's processes, started from here, do not inherit it)."""
    parent = int(os.environ.pop(_PARENT, "0"))
    fd = int(os.environ.pop(SUPERVISOR_FD))
    os.set_inheritable(fd, False)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:  # the script died before the line above
        os._exit(128 + signal.SIGKILL)
    from ..run import interrupt

    interrupt.report_to(fd)
    interrupt.install_early()  # from here a signal is this app's (the script forwards it once this is said)
    interrupt.tell("ready")
    from . import cli

    getattr(cli, app)()


def _entry(app: str):
    def entry() -> None:
        sys.exit(run(app))

    entry.__name__ = entry.__qualname__ = app
    entry.__doc__ = f"Console script: ``scalesearch.apps.cli.{app}`` under the supervisor."
    return entry


main, generate_main, report_main = _entry("main"), _entry("generate_main"), _entry("report_main")
ablate_main, nas_main, validate_main, compare_main = (_entry("ablate_main"), _entry("nas_main"),
                                                       _entry("validate_main"), _entry("compare_main"))
