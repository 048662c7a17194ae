"""The confirmation run (issue 36): when the model over shares locates an optimum that no candidate of the run is,
the optimum is trained fresh — with the seeds of the run's pick, at the budget of the stage that decided — and the
ordinary confidence set of the best decides between the two. The family is built from what that decides.

The pick's accuracies are the very ones that selected it (a winner's curse in its favour), while the optimum's are
new: the comparison leans toward the pick, so a switch to the optimum is a conservative decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .plan import SEARCH_ROW, job
from .stats import confidence_set

__all__ = ["CONFIRM_METHOD", "Confirmation", "confirmation_jobs", "confirm"]

CONFIRM_METHOD = (
    "the model's optimum trained fresh with the pick's seeds at the deciding stage's budget; the confidence set of "
    "the best over the two (paired Student-t over the shared seeds, 95 %, as the verdict's); the pick's accuracies "
    "are the ones that selected it, so the comparison leans toward the pick")


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


def confirm(candidate: dict, pick: str, pick_rows: list[dict], rows: list[dict], n_val: int | None,
            level: float = 0.95) -> Confirmation:
    """The decision between ``candidate`` (its confirmation ``rows``) and the run's ``pick`` (its deciding rows)."""
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
    return Confirmation(**base, members=members, outcome=outcome, sentence=said)
