"""The race's trunks, kept by one Ray actor on the driver's node (issue 37).

A race rung continues its candidate's trunk: the weights and optimizer state that the rung below saved at its
last trunk step. A trial may run on any node, and the run directory is on the driver's disk, so a trial never
touches a trunk file itself: it sends the trunk to the :class:`TrunkStore` of its run, an actor pinned to the
driver's node (no CPU), which writes it atomically under ``<run dir>/checkpoints/`` and serves it to the rung
above, wherever that runs. Nothing is written on a worker node; the trunks outlive the trials (and, on disk,
the driver: a resumed run continues them). No Ray here (the runner starts the actor) and nothing heavy: the
actor's process loads this module only.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_bytes

__all__ = ["TrunkStore"]


class TrunkStore:
    """The trunk files of one run (their paths lie in the run directory on this, the driver's, node)."""

    def save(self, path: str, data: bytes) -> None:
        atomic_write_bytes(path, data)

    def load(self, path: str) -> bytes | None:
        p = Path(path)
        return p.read_bytes() if p.is_file() else None

    def remove(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

