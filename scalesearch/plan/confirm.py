"""The confirmation run (issue 36): when the model over shares locates an optimum that no candidate of the run is,
the optimum is trained fresh — with the seeds of the run's pick, at the budget of the stage that decided (a race:
the deciding rung's trunk and cooldown from scratch, the same training as the pick's continued trunk) — and the
ordinary confidence set of the best decides between the two. The family is built from what that decides.

The pick's accuracies are the very ones that selected it (a winner's curse in its favour), while the optimum's are
new: the comparison leans toward the pick, so a switch to the optimum is a conservative decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..decide.optimum import Interval
from .jobs import SEARCH_ROW, job
from ..decide.stats import confidence_set, paired_difference

__all__ = ["CONFIRM_METHOD", "Confirmation", "confirmation_jobs", "confirm", "measured_gain"]

CONFIRM_METHOD = (
    "the model's optimum trained fresh with the pick's seeds at the deciding stage's budget (a race's deciding rung, "
    "its trunk from scratch); the confidence set of "
    "the best over the two (paired Student-t over the shared seeds, 95 %, as the verdict's); the pick's accuracies "
    "are the ones that selected it, so the comparison leans toward the pick; the measured gain over the paper's "
    "point (when it was trained at that budget, the pick or not): a paired Student-t 95 % interval over the "
    "shared seeds of the optimum's fresh accuracies less the paper's (sd floored at 1/n_val, as the verdict's)")


@dataclass(frozen=True)
class Confirmation:
    """``outcome``: "optimum" (the set holds only the optimum: the family is built from it), "pick" (only the
    pick), "not_distinguishable" (both: the pick stays), "failed" (the optimum's trainings did not finish)."""

    candidate: str
    alpha: float
    beta: float
    gamma: float
    pick: str
    seeds: tuple[int, ...]
    mean: float | None
    pick_mean: float | None
    members: tuple[str, ...]
    outcome: str
    sentence: str
    method: str = CONFIRM_METHOD
    gain_over_paper: Interval | None = None  # measured: the optimum's fresh trainings less the paper's (paired t)

    def to_dict(self) -> dict:
        return asdict(self)


def confirmation_jobs(candidate: dict, seeds: list[int], budget, fingerprint: str) -> list[dict]:
    """``candidate`` (a Scaler.candidate row) trained once per seed at ``budget``."""
    ident = {k: candidate[k] for k in SEARCH_ROW} | {"budget_epochs": budget.epochs}
    return [job(f"{candidate['candidate']}/s{s}", i, candidate["spec"], candidate["resolution"], s, ident, budget,
                fingerprint) for i, s in enumerate(seeds)]


def _accuracies(rows: list[dict], name: str) -> dict[int, float]:
    return {int(r["seed"]): float(r["accuracy"]) for r in rows
            if r.get("candidate") == name and r.get("status") == "ok" and r.get("accuracy") is not None}


def measured_gain(mine: dict[int, float], theirs: dict[int, float], level: float = 0.95,
                  n_val: int | None = None) -> Interval | None:
    """``mine − theirs`` over their shared seeds with its paired Student-t interval (:func:`stats.paired_difference`,
    the verdict's own); None below 2 shared seeds."""
    d = paired_difference(mine, theirs, level, n_val)
    return None if d["low"] is None else Interval(round(d["mean"], 6), round(d["low"], 6), round(d["high"], 6))


def confirm(candidate: dict, pick: str, pick_rows: list[dict], rows: list[dict], n_val: int | None,
            level: float = 0.95, paper: str | None = None) -> Confirmation:
    """The decision between ``candidate`` (its confirmation ``rows``) and the run's ``pick`` (its deciding rows,
    ``pick_rows``, which hold the ``paper``'s candidate's too when it was trained at that budget)."""
    name = candidate["candidate"]
    mine, theirs = _accuracies(rows, name), _accuracies(pick_rows, pick)
    mean = lambda d: round(sum(d.values()) / len(d), 6) if d else None  # noqa: E731
    base = dict(candidate=name, alpha=candidate["alpha"], beta=candidate["beta"], gamma=candidate["gamma"], pick=pick,
                seeds=tuple(sorted(mine)), mean=mean(mine), pick_mean=mean(theirs))
    coeffs = f"α={candidate['alpha']:g}, β={candidate['beta']:g}, γ={candidate['gamma']:g}"
    if len(mine) < len(theirs) or not mine:
        return Confirmation(**base, members=(), outcome="failed",
                            sentence=f"The optimum ({coeffs}) was trained for confirmation, but only {len(mine)} of "
                                     f"{len(theirs)} seeds finished: the pick {pick} stays.")
    s = confidence_set({name: mine, pick: theirs}, n_val=n_val, level=level)
    members = tuple(s["members"])
    # measured whether or not the paper's point is the pick: leaving out the runs where it won would truncate its
    # accuracies from above; taken always, its trainings are an unselected sample
    gain = measured_gain(mine, _accuracies(pick_rows, paper), level, n_val) if paper not in (None, name) else None
    told = f"{base['mean']:.4f} against the pick's {base['pick_mean']:.4f} over {len(mine)} seeds"
    if members == (name,):
        outcome, said = "optimum", (f"The optimum ({coeffs}), trained for confirmation, beats the pick {pick}: "
                                    f"{told}; the family is built from it.")
    elif members == (pick,):
        outcome, said = "pick", (f"The optimum ({coeffs}), trained for confirmation, is worse than the pick {pick}: "
                                 f"{told}; the pick stays.")
    else:
        outcome, said = "not_distinguishable", (f"The optimum ({coeffs}), trained for confirmation, is not "
                                                f"distinguishable from the pick {pick} ({told}); the pick stays.")
    if gain is not None:
        said += (f" Its gain over the paper's point, measured: {gain.estimate:+.4f} [{gain.low:+.4f}, "
                 f"{gain.high:+.4f}].")
    return Confirmation(**base, members=members, outcome=outcome, sentence=said, gain_over_paper=gain)
