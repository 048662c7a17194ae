"""A run directory belongs to one app and, while it runs, to one live process.

**The lock.** :func:`claim` holds ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<run_dir>/.scalesearch.lock`` for the
life of an app's job; a second run, or a ``resume=true``, on a directory in use is refused with one line naming
the holder (pid, host, app, start time, which the holder writes into the file). The kernel drops a flock when
the last descriptor of its open file is closed — on any exit, SIGKILL included — so the lock of a dead run is
free by construction: no stale-lock detection, no pid check, nothing to clean up. The file is never deleted
(two runs could otherwise lock two different files of one name). Its descriptor is close-on-exec and not
inheritable, and a ``fork()``-ed child closes its copy at once, so no process the run starts (Ray's GCS,
raylet, workers) keeps the lock alive after the run has died. Within one process a claim is re-entrant
(``scalesearch-validate`` claims the run, then the search it resumes claims it again).

NFS caveat: Linux NFS clients turn flock into a whole-file POSIX lock held by the server's lock manager
(NFSv4, or NFSv3 with lockd), which works across hosts; but on a mount with ``nolock`` or
``local_lock=flock|all`` the lock is only local to each host, so two hosts can both run in one directory, and an
NFSv4 client cut off from the server past its lease loses the lock while its run goes on. Keep run directories
on a local disk, or on an NFS with working locks.

**Ownership.** The app that makes a directory records itself in ``<run_dir>/.scalesearch-app`` (one line); a
directory written before that file existed is recognised by its files (:data:`SIGNS`). An app refuses a
directory another app owns, naming both — except the apps meant to work on another app's run
(:data:`GUESTS`): ``scalesearch-validate``, ``scalesearch-report`` and ``scalesearch-ablate`` (``run_dir=``)
on a ``scalesearch`` run. Guests take the lock but never claim ownership.

**The data a resume continues on.** :func:`data_summary` (fingerprint, image and class counts) is stored
when a run first loads its data; :func:`check_same_data` refuses a resume whose data differ.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..io import atomic_write_text

__all__ = ["SEARCH", "NAS", "GENERATE", "ABLATE", "VALIDATE", "REPORT", "COMPARE", "APPS", "GUESTS", "SIGNS",
           "LOCK_FILE", "OWNER_FILE", "owner_of", "check_owner", "holder", "claim", "precheck", "data_summary",
           "data_changes", "check_same_data"]

SEARCH, NAS, GENERATE, ABLATE = "scalesearch", "scalesearch-nas", "scalesearch-generate", "scalesearch-ablate"
VALIDATE, REPORT, COMPARE = "scalesearch-validate", "scalesearch-report", "scalesearch-compare"
APPS = (SEARCH, NAS, GENERATE, ABLATE, VALIDATE, REPORT, COMPARE)
# the apps that work on another app's run (run_dir=...): the owners whose runs they accept
GUESTS = {VALIDATE: (SEARCH,), REPORT: (SEARCH,), ABLATE: (SEARCH,)}
# the files that name the app of a directory without .scalesearch-app (written before it existed); first match wins
# (best.json before family.json: a search run holds both, the generator writes no best.json)
SIGNS = (("search.json", SEARCH), ("nas.json", NAS), ("baseline.json", NAS), ("pareto.json", NAS), ("tune/nas", NAS),
         ("best.json", SEARCH), ("family.json", GENERATE), ("ablation_results.csv", ABLATE), ("ablation.json", ABLATE),
         ("compare.json", COMPARE))
LOCK_FILE, OWNER_FILE = ".scalesearch.lock", ".scalesearch-app"
ELSEWHERE = "another hydra.run.dir"

_HELD: dict[str, list] = {}  # resolved run dir → [fd, depth]: the claims of this process
_HELD_APP: list[str] = []  # the app of this process's first claim, while it holds it


def _close_in_child() -> None:
    """A fork()-ed child drops its copies (closing, never unlocking: the lock stays the parent's)."""
    for fd, _ in _HELD.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
    _HELD_APP.clear()


os.register_at_fork(after_in_child=_close_in_child)


# ---------------------------------------------------------------- ownership
def owner_of(run_dir: str | os.PathLike) -> str | None:
    """The app that owns ``run_dir``: its .scalesearch-app, else the first of :data:`SIGNS` present, else None."""
    run_dir = Path(run_dir)
    try:
        recorded = (run_dir / OWNER_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        recorded = None
    if recorded in APPS:
        return recorded
    return next((app for name, app in SIGNS if (run_dir / name).exists()), None)


def check_owner(run_dir, app: str, guest: bool = False, elsewhere: str = ELSEWHERE) -> str | None:
    """The owner of ``run_dir`` when ``app`` may work there (itself or nobody; a guest: also the owners of
    :data:`GUESTS`), else a one-line ValueError naming both apps."""
    owner = owner_of(run_dir)
    accepted = (app, *GUESTS.get(app, ())) if guest else (app,)
    if owner is None or owner in accepted:
        return owner
    if guest:
        raise ValueError(f"{run_dir} holds a {owner} run; {app} works on {' or '.join(accepted[1:])} runs; "
                         f"allowed: {elsewhere}")
    raise ValueError(f"{run_dir} holds a {owner} run, not a {app} one; allowed: {elsewhere}")


def _record_owner(run_dir: Path, app: str) -> None:
    if not (run_dir / OWNER_FILE).is_file():
        atomic_write_text(run_dir / OWNER_FILE, app + "\n")


# ---------------------------------------------------------------- the lock
def holder(run_dir) -> dict | None:
    """Who holds ``run_dir``'s lock now ({pid, host, app, since}), None when it is free. Creates nothing."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: nobody ever locked it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            return None  # a file system without locks: the claim says so
        return _read_holder(path)
    finally:
        os.close(fd)  # (a lock this probe took goes with it)
    return None


def _read_holder(path: Path) -> dict:
    """The holder's record; the holder writes it right after locking, so an empty file is read again a little."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text())
            if isinstance(info, dict):
                return info
        time.sleep(0.05)
    return {}


def _in_use(run_dir: Path, info: dict, elsewhere: str) -> ValueError:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"])) if info.get("since") else "?"
    who = f"{info.get('app', 'scalesearch')} (pid {info.get('pid', '?')} on host {info.get('host', '?')} since {since})"
    return ValueError(f"run directory {run_dir} is in use by {who}; allowed: wait for it, stop it, or {elsewhere}")


def _lock(run_dir: Path, app: str, elsewhere: str) -> int:
    """The directory's lock taken (its fd, close-on-exec) with this process's record in it; one-line refusals."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror}); allowed: a writable directory, or "
                         f"{elsewhere}") from None
    os.set_inheritable(fd, False)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise _in_use(run_dir, _read_holder(run_dir / LOCK_FILE), elsewhere) from None
        raise ValueError(f"run directory {run_dir} cannot be locked ({e.strerror}); allowed: a directory on a file "
                         f"system with locks (a local disk, NFS with a lock manager), or {elsewhere}") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "app": _process_app(app), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def _process_app(app: str) -> str:
    """The app this process runs: the first one it claimed a directory for (scalesearch-nas for its chained search)."""
    return _HELD_APP[0] if _HELD_APP else app


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)  # no stale record left to read
    os.close(fd)  # the lock goes with the last descriptor


@contextlib.contextmanager
def claim(run_dir, app: str, guest: bool = False, elsewhere: str = ELSEWHERE):
    """Hold ``run_dir`` for ``app`` while the block runs: ownership checked (before anything is created), the
    lock taken (else a one-line ValueError), the owner recorded (not by a guest). Re-entrant in one process.
    An owner's directory is created; a guest's must exist. Yields the resolved directory."""
    run_dir = Path(run_dir).resolve()
    check_owner(run_dir, app, guest, elsewhere)
    key = str(run_dir)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield run_dir
        finally:
            _HELD[key][1] -= 1
        return
    _make(run_dir, guest, elsewhere)
    fd, pid, first = _lock(run_dir, app, elsewhere), os.getpid(), not _HELD_APP
    _HELD[key] = [fd, 1]
    _HELD_APP[:] = _HELD_APP or [app]
    try:
        owner = check_owner(run_dir, app, guest, elsewhere)  # again: another run may have made it between
        if owner is None and not guest:
            _record_owner(run_dir, app)
        yield run_dir
    finally:
        if os.getpid() == pid:  # (a fork()-ed child that got here has closed its copy already)
            _HELD.pop(key, None)
            if first:
                _HELD_APP.clear()
            _release(fd)


def _make(run_dir: Path, guest: bool, elsewhere: str) -> None:
    if guest:
        if not run_dir.is_dir():
            raise ValueError(f"{run_dir} is not a directory; allowed: {elsewhere}")
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"run directory {run_dir} cannot be created ({e.strerror}); allowed: a writable directory, "
                         f"or {elsewhere}") from None


def precheck(run_dir, app: str, guest: bool = False, elsewhere: str = ELSEWHERE) -> None:
    """:func:`claim`'s refusals without taking anything or writing anything (for a CLI, before Hydra writes its
    .hydra/ into the directory): another app's run, or a run in use."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir() or str(run_dir) in _HELD:
        return
    check_owner(run_dir, app, guest, elsewhere)
    info = holder(run_dir)
    if info is not None:
        raise _in_use(run_dir, info, elsewhere)


# ---------------------------------------------------------------- the data a run is measured on
DATA_FIELDS = (("train_images", "train images"), ("val_images", "validation images"), ("classes", "classes"))


def data_summary(data) -> dict:
    """What a resume checks of a :class:`~scalesearch.train.data.ProxyData`: its fingerprint and sizes."""
    return {"name": data.name, "fingerprint": data.fingerprint, "train_images": len(data.train_y),
            "val_images": len(data.val_y), "classes": data.num_classes}


def data_changes(stored: dict, now: dict) -> list[str]:
    """What differs, e.g. ['train images 12 there, 36 here']; the fingerprint only when the counts agree."""
    out = [f"{label} {stored[k]} there, {now[k]} here" for k, label in DATA_FIELDS
           if stored.get(k) is not None and stored[k] != now.get(k)]
    if not out and stored.get("fingerprint") not in (None, now.get("fingerprint")):
        out.append(f"the images (fingerprint {stored['fingerprint']} there, {now.get('fingerprint')} here)")
    return out


def check_same_data(stored: dict | None, now: dict, elsewhere: str = "a new hydra.run.dir") -> None:
    """A one-line ValueError when the data summary ``now`` differs from the ``stored`` one (None: nothing stored)."""
    changes = data_changes(stored or {}, now)
    if changes:
        raise ValueError(f"the dataset changed since this run started: {', '.join(changes)}; allowed: the same data, "
                         f"or {elsewhere}")
