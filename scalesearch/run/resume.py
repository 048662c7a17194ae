"""What defines a run and how it resumes: the result-defining settings and their fingerprint, the checks a resume
passes (same settings, same data), the run's setting in words (its budget, its context), search.json (the run's
state record, :class:`State`) and :class:`SearchJob`, one run's facts and what its stages produce."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import threading
import time
from pathlib import Path

from ..config import SearchAppConfig, TrialsConfig, flatten
from ..decide.shares import ShareModel
from ..decide.verdict import Verdict
from ..io import atomic_write_json, read_json
from ..plan.confirm import Confirmation
from ..plan.preflight import migrate_settings
from ..report.verdict import Extension, VerdictWords
from ..scaling.coefficients import Coefficients
from ..scaling.scaler import Scaler
from ..train.data import accuracy_half_width
from ..train.proxy import train_batch
from .interrupt import mark_interrupted, tell

__all__ = ["RESULT_KEYS", "EXTENSIBLE_GRID_KEYS", "RACE_KEYS", "config_fingerprint", "settings_diff", "read_state",
           "find_resumable", "prepare_run_dir", "stored_data", "depth_rounding", "budget_str", "run_context", "State",
           "SearchJob"]


# settings that define a run's results (a resume must keep them); the rest may change between attempts
RESULT_KEYS = ("dataset", "proxy", "search", "model", "seed")
# a grid run may be extended in place with more seeds: its seeds are jobs, the finished ones are kept (an Optuna
# study's seeds live in Tune's Repeater, so there they define the run); a race replays its decisions from its table,
# so every setting of its rule may change (more seeds, another rung, a larger budget): only what is new trains
EXTENSIBLE_GRID_KEYS = ("n_seeds",)
# the race's rule (replayed from its table) and search.delta (the report's "within δ" elsewhere): no training's result
RACE_KEYS = ("rungs", "max_seeds", "seed_step", "budget", "drop", "delta", "eta")


# ---------------------------------------------------------------- settings and the run directory
def _result_settings(config: dict) -> dict:
    """The settings that define a run's results (``config``: as stored, of any version, or as this one has them);
    the trials' settings never do, but for the timed batch when the latency is the cost held equal."""
    config = migrate_settings(config)
    d = {k: json.loads(json.dumps(config.get(k), default=str)) for k in RESULT_KEYS}
    (d.get("proxy") or {}).pop("threads", None)
    search = d.get("search") or {}
    if search.get("cost") == "latency":
        search["latency_batch"] = (config.get("trials") or {}).get("latency_batch", TrialsConfig.latency_batch)
    for k in RACE_KEYS + (EXTENSIBLE_GRID_KEYS if search.get("strategy") in ("grid", "race") else ()):
        search.pop(k, None)
    return d


def config_fingerprint(cfg: SearchAppConfig) -> str:
    blob = json.dumps(_result_settings(dataclasses.asdict(cfg)), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def settings_diff(stored: dict, cfg: SearchAppConfig) -> list[str]:
    """The result-defining settings that differ: ['search.n_seeds: 2 there, 3 here', ...]."""
    a, b = flatten(_result_settings(stored)), flatten(_result_settings(dataclasses.asdict(cfg)))
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_state(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "search.json"
    if not path.is_file():
        return None
    try:
        state = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({str(e).splitlines()[0]}); allowed: the search.json a search "
                         "wrote (or a new hydra.run.dir)") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path} holds no search settings; allowed: the search.json a search wrote")
    return state


def find_resumable(parent: Path, cfg: SearchAppConfig) -> Path | None:
    """The run under ``parent`` to continue: the newest unfinished one with these settings, else the newest
    finished one (whose missing stages are then run)."""
    found = []
    for state_file in Path(parent).glob("*/search.json"):
        try:
            state = read_state(state_file.parent)
        except ValueError:
            continue
        if state and not settings_diff(state["config"], cfg):
            found.append((state.get("status") != "complete", state_file.parent.stat().st_mtime, state_file.parent))
    return max(found)[2] if found else None


def prepare_run_dir(cfg: SearchAppConfig, run_dir: Path) -> dict | None:
    """Check that ``run_dir`` may be written (a new run, or ``resume=true`` of the run it holds, same
    settings); returns the run's state (None for a new run)."""
    state = read_state(run_dir)
    if state is not None and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a search; allowed: resume=true to continue or extend it, or a new "
                         "hydra.run.dir")
    if state is None and cfg.resume:
        raise ValueError(f"resume=true but {run_dir} holds no search with these settings; allowed: resume=true with "
                         "the settings of an earlier run (the newest such run beside it is continued) or "
                         "hydra.run.dir=<that run>")
    if state is not None:
        diff = settings_diff(state["config"], cfg)
        if diff:
            raise ValueError(f"resume=true but {run_dir} holds a search with other settings ({'; '.join(diff[:3])}); "
                             "allowed: the same settings")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable ({e.strerror}); allowed: a writable "
                         "hydra.run.dir") from None
    return state


def stored_data(run_dir: Path, state: dict) -> dict | None:
    """The data summary a run started on: search.json's; a run from before it was stored: what its best.json
    says (fingerprint, validation images, classes), else None (nothing to check)."""
    if isinstance(state.get("data"), dict):
        return state["data"]
    best = Path(run_dir) / "best.json"
    try:
        b = read_json(best) if best.is_file() else None
    except (OSError, ValueError):
        b = None
    if not isinstance(b, dict):
        return None
    return {"fingerprint": b.get("dataset_fingerprint"), "val_images": b.get("val_images"),
            "classes": b.get("num_classes")}


def depth_rounding(cfg) -> str:
    r = cfg.model.depth_rounding
    return r if r != "auto" else ("total" if cfg.search.constraint == "measured" else "stage")


def budget_str(p, n_train: int | None = None) -> str:
    """A budget as the run's texts say it; with ``n_train``, the batch the trainings used (proxy.train_batch caps
    proxy.batch_size at the training images)."""
    size = f"{p.steps} steps" if p.steps else f"{p.epochs} epochs"
    used = train_batch(p.batch_size, n_train) if n_train else p.batch_size
    batch = (f"batch {used} (proxy.batch_size={p.batch_size}, capped at the {n_train} training images)"
             if used != p.batch_size else f"batch {p.batch_size}")
    return f"{size}, {batch}, {p.optimizer} lr {p.lr:g}"


def run_context(cfg: SearchAppConfig, data) -> dict:
    """What summary, best.json and the report say about the run's setting."""
    s = cfg.search
    n_val = len(data.val_y)
    text = (f"every candidate built at depth α^φ and width β^φ with its resolution solved so that its measured "
            f"{s.cost} is target^φ (± search.cost_tolerance={s.cost_tolerance:g}) of the baseline proxy's"
            if s.constraint == "measured" else
            "the paper's α·β²·γ² = target with the proxy at round(base·γ^φ); measured cost reported "
            "beside it")
    return {"dataset": data.name, "dataset_fingerprint": data.fingerprint, "num_classes": data.num_classes,
            "chance": 1.0 / data.num_classes, "base_resolution": data.base_resolution, "val_images": n_val,
            "val_half_width": round(accuracy_half_width(n_val), 4), "strategy": s.strategy, "constraint": s.constraint,
            "constraint_text": text, "cost": s.cost, "phi": s.phi, "budget": budget_str(cfg.proxy, len(data.train_y)),
            "seeds": [cfg.seed + k for k in range(s.n_seeds)], "depth_rounding": depth_rounding(cfg),
            "resolution_multiple": s.resolution_multiple}


# ---------------------------------------------------------------- the run's record and facts
class State:
    """search.json: the settings, the fingerprint, the status and every stage's progress (atomic)."""

    def __init__(self, run_dir: Path, cfg: SearchAppConfig, old: dict | None, data: dict):
        self.path, self.cfg = run_dir / "search.json", cfg
        self.doc = {"fingerprint": config_fingerprint(cfg), "started": time.time(), "stages": {},
                    **(old or {}), "config": dataclasses.asdict(cfg), "status": "running", "data": data}
        self.doc.pop("interrupted", None)
        self.doc.pop("error", None)
        self.lock, self.written = threading.Lock(), False  # the watch thread writes too (:meth:`interrupted`)
        # a new run is on record at once; a resume writes when its first stage starts, so that a refusal before
        # it (Ray's resources, the plan, the tables, the data) leaves a finished run's search.json as it was
        if old is None:
            self.write()

    def write(self):
        with self.lock:
            atomic_write_json(self.path, self.doc)
            if not self.written:
                tell("record", str(self.path))  # the supervisor's, should the process end before it records a stop
            self.written = True

    def stage(self, name: str, status: str, **extra):
        now = time.time()
        when = {"started": now} if status == "running" else {"finished": now}
        with self.lock:
            self.doc["stages"][name] = {**self.doc["stages"].get(name, {}), "status": status, **when, **extra}
        self.write()

    def failed(self, e: Exception):
        """The run ended on an error after it was on record (a refusal by the memory estimate, Ray, a table):
        status ``failed`` with the error's first line, never a ``running`` nobody runs (a resume sets it again)."""
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        with self.lock:
            if not self.written or self.doc.get("status") != "running":
                return
            self.doc.update(status="failed", error=line)
        self.write()

    def interrupted(self, signal_name: str):
        """A stop signal came (SIGINT, SIGTERM, SIGHUP): status ``interrupted`` (a resume sets it ``running``)."""
        with self.lock:
            if not self.written or not mark_interrupted(self.doc, signal_name):
                return  # (a resume interrupted before its first write leaves search.json as it was)
        self.write()


@dataclasses.dataclass
class SearchJob:
    """One run's fixed facts (planned before anything trains) and what its stages produce."""

    cfg: SearchAppConfig
    run_dir: Path
    space: object
    baseline: object
    data: object = None
    state: State = None
    context: dict = None
    budget: object = None
    t0: float = 0.0
    # produced by the stages
    rows: list = dataclasses.field(default_factory=list)
    infeasible: list = dataclasses.field(default_factory=list)
    ranked: list = dataclasses.field(default_factory=list)
    v_rows: list = dataclasses.field(default_factory=list)
    v_ranked: list | None = None
    fid: dict | None = None
    best: dict | None = None
    decided_by: str = "search"
    paper: str | None = None
    verdict: Verdict | None = None  # the verdict's facts (decide.verdict)
    extension: Extension | None = None  # what an undecided run can run next (report.artifacts.extend_advice)
    words: VerdictWords | None = None  # the verdict's words (report.verdict), ending with the extension
    members: list = dataclasses.field(default_factory=list)
    f_rows: list = dataclasses.field(default_factory=list)
    race: object = None  # the race's last state (search.strategy=race)
    race_rows: list = dataclasses.field(default_factory=list)  # its last look's trainings (they decide)
    race_text: str = ""
    scaler: Scaler = None  # the rule on this run's data and cost (with the device measurer once Ray is up)
    shares: ShareModel | None = None  # the model over the candidates' shares of all the run's trainings
    decision: tuple = ()  # (the deciding stage's rows, its budget): what a confirmation run is compared with
    confirmation: Confirmation | None = None  # the optimum of the model over shares, trained and decided

    def family(self, coeffs: Coefficients) -> list:
        """The family of ``coeffs`` by the search's own scaler: its constraint and its cost, a device cost
        included, so that (measured) B1 is the searched candidate by construction."""
        return self.scaler.family(coeffs, self.cfg.family.phis, timed_up_to=self.cfg.family.max_phi)
