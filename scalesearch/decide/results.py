"""The run's tables and their aggregation over seeds (plain Python: no Ray).

Every stage writes one CSV table with one row per training (a network × a seed): ``results.csv``
(the search), ``validation.csv``, ``family_results.csv``, ``ablation_results.csv``. Only rows with
status ``ok`` are ranked: ``stopped`` (ASHA), ``error``, ``diverged``, ``infeasible`` and unfinished
trainings never win. :func:`aggregate` gives each candidate its mean over seeds with a 95 % t
interval (:func:`scalesearch.decide.stats.mean_ci`; one seed: no interval, never "± 0").
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


__all__ = ["METRICS", "SEARCH_COLUMNS", "VALIDATION_COLUMNS", "CONFIRMATION_COLUMNS", "FAMILY_COLUMNS",
           "ABLATION_COLUMNS", "FINISHED", "TABLES", "read_table", "deciding_rows", "aggregate", "per_seed",
           "fmt_mean_ci", "md_table"]

# what every training row carries after its identity columns
METRICS = ["accuracy", "loss", "epochs", "params", "macs", "activations", "latency_ms", "train_step_ms", "device",
           "images_per_s", "wall_s", "status", "error", "failures", "node", "trial_id", "finished_at", "train_id",
           "reused_from"]
SEARCH_COLUMNS = ["index", "key", "candidate", "alpha", "beta", "gamma", "seed", "rung", "continued_from", "product",
                  "resolution", "blocks", "cost", "cost_ratio", "cost_target", "cost_flag"] + METRICS
VALIDATION_COLUMNS = ["index", "key", "candidate", "alpha", "beta", "gamma", "seed", "resolution", "cost",
                      "cost_ratio", "selected_as", "proxy_mean", "budget_epochs"] + METRICS
FAMILY_COLUMNS = ["index", "key", "family", "name", "phi", "alpha", "beta", "gamma", "depth_mult", "width_mult",
                  "resolution", "seed", "macs_ratio"] + METRICS
ABLATION_COLUMNS = ["index", "key", "method", "phi", "depth", "width", "resolution", "nominal", "seed"] + METRICS
CONFIRMATION_COLUMNS = ["index", "key", "candidate", "alpha", "beta", "gamma", "seed", "rung", "continued_from",
                        "resolution", "cost",
                        "cost_ratio", "budget_epochs"] + METRICS
TABLES = {"search": "results.csv", "validation": "validation.csv", "family": "family_results.csv",
          "ablation": "ablation_results.csv", "confirmation": "confirmation.csv"}
# statuses with a result: never trained again on resume
FINISHED = ("ok", "diverged", "stopped", "error", "infeasible")

_TEXT = {"key", "candidate", "cost", "cost_flag", "device", "status", "error", "node", "trial_id", "train_id",
         "reused_from", "selected_as", "family", "name", "method", "arch", "cost_kind", "is_b0", "pareto", "spec_json"}
_INT = {"index", "seed", "resolution", "blocks", "epochs", "budget_epochs", "params", "macs", "activations", "failures",
        "finished_at", "continued_from"}


def _parse(path: Path, line: int, row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k is None:
            raise ValueError(f"{path}: line {line} has more fields than the header; "
                             "allowed: a table written by scalesearch")
        if v in ("", None):
            out[k] = None
        elif k in _TEXT:
            out[k] = v
        else:
            try:
                out[k] = int(float(v)) if k in _INT else float(v)
            except ValueError:
                out[k] = v if k not in _INT else _bad(path, line, k, v)
    return out


def _bad(path, line, key, value):
    raise ValueError(f"{path}: line {line}: {key}={value!r} is not a number; allowed: a table written by scalesearch "
                     "(a truncated or edited file?)")


def read_table(path: str | Path) -> list[dict]:
    """Rows of a stage table with numbers parsed; [] when it does not exist; a one-line ValueError naming
    the file when it is malformed (truncated, edited)."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [_parse(path, i + 2, r) for i, r in enumerate(reader)]
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the table ({e}); allowed: a table written by scalesearch") from None
    for i, r in enumerate(rows):
        _check_row(path, i + 2, r)
    return rows


def _check_row(path: Path, line: int, r: dict) -> None:
    """A row has a status; an ``ok`` row (the only kind ranked) a finite accuracy in [0, 1]. A diverged row holds
    accuracy 0 and loss nan as the trainer writes them; error and stopped rows may hold anything."""
    if "status" in r and r.get("status") is None:
        raise ValueError(f"{path}: line {line} has no status (a truncated file?); allowed: a table written by "
                         "scalesearch")
    acc = r.get("accuracy")
    if r.get("status") == "ok" and acc is not None and not (isinstance(acc, float) and 0 <= acc <= 1):
        raise ValueError(f"{path}: line {line}: accuracy={acc!r} in a row with status ok; allowed: a finite fraction "
                         "in [0, 1] (a failed training is status diverged or error; a truncated or edited file?)")


def deciding_rows(rows: list[dict]) -> list[dict]:
    """The rows a ranking is made of: a race's table (rows with a ``rung``) at its highest rung with an ok row (the
    rung that decided); any other table as it is."""
    rungs = [r["rung"] for r in rows if r.get("rung") is not None and r.get("status") == "ok"]
    if not rungs:
        return rows
    return [r for r in rows if r.get("rung") == max(rungs)]


def per_seed(rows: list[dict], key: str = "candidate") -> dict[str, dict[int, float]]:
    """{group: {seed: accuracy}} over the ``ok`` rows."""
    out: dict = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("accuracy") is not None:
            out.setdefault(r[key], {})[r["seed"]] = r["accuracy"]
    return out


def aggregate(rows: list[dict], key: str = "candidate", level: float = 0.95) -> list[dict]:
    """Per candidate: mean accuracy over its ``ok`` seeds with a t interval (``low``/``high``; None for one
    seed), the per-seed accuracies and its costs; best mean first (ties: the cheaper measured cost).
    Candidates without an ``ok`` row are left out."""
    from .stats import mean_ci  # scipy: not in a trial's process, which reads tables but aggregates nothing

    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("accuracy") is not None:
            groups.setdefault(r[key], []).append(r)
    out = []
    for name, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        ci = mean_ci([r["accuracy"] for r in rs], level)
        first = rs[0]
        out.append({
            key: name,
            **{k: first.get(k) for k in ("alpha", "beta", "gamma", "product", "resolution", "blocks", "cost",
                                         "cost_ratio", "cost_flag", "params", "macs", "activations")},
            "latency_ms": _mean(r.get("latency_ms") for r in rs),
            "train_step_ms": _mean(r.get("train_step_ms") for r in rs),
            "accuracy_mean": ci["mean"], "accuracy_std": ci["std"],
            # an accuracy lies in [0, 1]: the t interval is clipped to it (with 2 seeds it often reaches past)
            "accuracy_low": None if ci["low"] is None else max(0.0, ci["low"]),
            "accuracy_high": None if ci["high"] is None else min(1.0, ci["high"]), "half_width": ci["half_width"],
            "n_seeds": ci["n"],
            "seeds": [r["seed"] for r in rs], "accuracies": [r["accuracy"] for r in rs],
        })
    out.sort(key=lambda c: (-c["accuracy_mean"], c["cost_ratio"] if c.get("cost_ratio") is not None else math.inf,
                            str(c[key])))
    return out


def _mean(values) -> float | None:
    v = [x for x in values if isinstance(x, (int, float))]
    return sum(v) / len(v) if v else None


def md_table(headers: list, rows: list[list]) -> str:
    """A markdown table (the one writer of every artifact's tables)."""
    return "\n".join(["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def fmt_mean_ci(c: dict, nd: int = 3) -> str:
    """"0.452 [0.401, 0.503] (3 seeds)", or "0.452 (1 seed, no spread)"."""
    if c.get("accuracy_mean") is None:
        return "—"
    if c.get("accuracy_low") is None:
        return f"{c['accuracy_mean']:.{nd}f} (1 seed, no spread)"
    return (f"{c['accuracy_mean']:.{nd}f} [{c['accuracy_low']:.{nd}f}, {c['accuracy_high']:.{nd}f}] "
            f"({c['n_seeds']} seeds)")
