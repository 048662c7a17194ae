"""What a searcher learns: :class:`FinishedOnly`, the wrapper between Ray Tune and a searcher stage's searcher
(Optuna), which tells it only finished trainings' values."""

from __future__ import annotations

import math

from ray.tune.search import Searcher

__all__ = ["FinishedOnly"]


def _told_value(result: dict | None, metric) -> bool:
    """Whether ``result`` is a finished training's value: the final row, status ok, every metric finite."""
    if not result or not result.get("final", True) or result.get("status", "ok") != "ok":
        return False
    names = metric if isinstance(metric, list) else [metric]
    return all(isinstance(result.get(m), (int, float)) and math.isfinite(result[m]) for m in names)


class FinishedOnly(Searcher):
    """A searcher wrapper (like Tune's ``ConcurrencyLimiter``): the wrapped searcher learns only from finished
    trainings. Intermediate results reach it only when they carry the metric (evaluated epochs: Optuna's
    intermediate values, for its pruners); a trial's completion carries its value only when it is the final row
    with status ok. A trial stopped early (ASHA, an interrupt) is told without a value (Optuna: PRUNED), one that
    failed, diverged or was infeasible as an error (Optuna: FAIL) — never as a made-up 0 or a partial accuracy.
    Around Tune's ``Repeater`` (seeds), the study gets one value per candidate: the mean over the seeds that
    finished ok (the Repeater's ``np.nanmean``); a candidate none of whose seeds did is a failed Optuna trial."""

    def __init__(self, searcher: Searcher):
        self.searcher = searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        names = self.metric if isinstance(self.metric, list) else [self.metric]
        if result.get("final") is False and all(
                isinstance(result.get(m), (int, float)) and math.isfinite(result[m]) for m in names):
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if _told_value(result, self.metric):
            return self.searcher.on_trial_complete(trial_id, result=result, error=error)
        failed = error or bool(result and result.get("final", True) and result.get("status", "ok") != "stopped")
        self.searcher.on_trial_complete(trial_id, result=None, error=failed)

    def get_state(self) -> dict:  # stateless; Tune saves and restores the wrapped searcher itself
        return {}

    def set_state(self, state: dict) -> None:
        pass
