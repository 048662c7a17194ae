"""Atomic artifact writing: every file goes to a temp file in the same directory and is
renamed over the target, so a crash never leaves a truncated artifact. The file gets the permissions
any other new file gets (0o666 less the umask), not mkstemp's 0o600."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import threading
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_csv", "save_png", "read_json",
           "read_run_json"]


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status); elsewhere set and
    restored at once (under a lock, for this module's threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``path`` whole or not at all (temp file in its directory, fsync, rename). An OSError names the file
    (a full disk: "[Errno 28] No space left on device: 'RUN/results.csv'"); the previous file stays."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, e.filename or str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # as open() creates a file (mkstemp: 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")


def atomic_write_csv(path, rows: list[dict], columns: list[str]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def save_png(fig, path) -> Path:
    """Save a matplotlib figure as PNG atomically (rendered in memory, then renamed into place)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_run_json(path):
    """A JSON file a search wrote (best.json, family.json, …), else a one-line ValueError naming the file."""
    try:
        return read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({str(e).splitlines()[0]}); allowed: the file a search wrote "
                         "(rerun the search with resume=true to rewrite it)") from None
