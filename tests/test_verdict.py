"""The verdict on known inputs: a tie says "not distinguishable" and how many seeds would separate it, a clear
winner is called one, one seed never gets an interval; the fidelity numbers of a known ranking."""

import math

import pytest

from scalesearch.results import aggregate, fmt_mean_ci
from scalesearch.stats import seeds_to_separate
from scalesearch.verdict import decide, fidelity, pooled_sd, summary_markdown, verdict


def rows(table: dict[str, list[float]], alpha=None):
    """results rows: {candidate: [accuracy per seed]}; candidate 'paper' is (1.2, 1.1, ·)."""
    out = []
    for i, (name, accs) in enumerate(table.items()):
        a, b = (1.2, 1.1) if name == "paper" else (1.0 + 0.1 * (i + 1), 1.0)
        out += [{"candidate": name, "alpha": a, "beta": b, "gamma": 1.3, "seed": s, "accuracy": acc, "status": "ok",
                 "cost_ratio": 2.0, "resolution": 40} for s, acc in enumerate(accs)]
    return out


def run_verdict(table, **kw):
    r = rows(table)
    ranked = aggregate(r)
    return verdict(ranked, r, "search", paper="paper" if "paper" in table else None, fid=None, chance=0.1,
                   budget="2 epochs", constraint="measured", **kw), ranked


def test_a_tie_is_not_distinguishable_and_says_how_many_seeds_would_tell():
    v, ranked = run_verdict({"a": [0.50, 0.47, 0.53], "b": [0.49, 0.48, 0.50], "paper": [0.45, 0.50, 0.48]})
    assert ranked[0]["candidate"] == "a"
    d = v["vs_runner_up"]
    assert d["runner_up"] == "b" and d["distinguishable"] is False and d["low"] < 0 < d["high"]
    diffs = [0.01, -0.01, 0.03]  # a − b per seed
    mean, sd = sum(diffs) / 3, math.sqrt(sum((x - sum(diffs) / 3) ** 2 for x in diffs) / 2)
    assert d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(sd)
    assert v["seeds_needed"] == seeds_to_separate(mean, sd) and v["seeds_needed"] > 3
    assert "**Not distinguishable at this budget**" in v["text"] and f"about {v['seeds_needed']} seeds" in v["text"]
    assert "not distinguishable from it" in v["text"]  # the paper's (α, β): also a tie


def test_a_clear_winner_is_called_one():
    v, _ = run_verdict({"a": [0.70, 0.72, 0.71], "b": [0.50, 0.51, 0.49], "paper": [0.40, 0.42, 0.41]})
    assert v["vs_runner_up"]["distinguishable"] is True and v["vs_paper"]["distinguishable"] is True
    assert "It is distinguishable from the runner-up" in v["text"] and "better than it at this budget" in v["text"]
    assert "Next:" not in v["text"] and "seeds_needed" not in v


def test_one_seed_has_no_interval_and_no_false_zero_spread():
    v, ranked = run_verdict({"a": [0.6], "b": [0.5]})
    assert ranked[0]["accuracy_low"] is None and fmt_mean_ci(ranked[0]) == "0.600 (1 seed, no spread)"
    assert v["vs_runner_up"]["distinguishable"] is None
    assert "over 1 seed (no spread: no interval)" in v["text"] and "run at least 2 seeds" in v["text"]
    assert "± 0.0000" not in v["text"] and "±0.000" not in v["text"]
    md = summary_markdown({"dataset": "d", "num_classes": 10, "chance": 0.1, "base_resolution": 40, "strategy": "grid",
                           "constraint": "measured", "constraint_text": "t", "budget": "b", "seeds": [0]},
                          v, ranked, rows({"a": [0.6], "b": [0.5]}), [], None, None, None)
    assert md.splitlines()[2] == v["text"] and "(1 seed, no spread)" in md and "± 0" not in md


def test_barely_above_chance_and_a_tiny_validation_split_are_said():
    v, _ = run_verdict({"a": [0.12, 0.13], "b": [0.11, 0.10]}, val_n=50, half_width=0.139)
    assert "barely above chance" in v["text"] and "50 validation images: ±0.139" in v["text"]


def test_fidelity_of_known_rankings():
    proxy = aggregate(rows({"a": [0.5, 0.5], "b": [0.4, 0.4], "c": [0.3, 0.3], "d": [0.2, 0.2]}))
    same = rows({"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "d": [0.6, 0.6]})
    f = fidelity(proxy, same, top_k=2)
    assert (f["kendall_tau"], f["spearman_rho"], f["top1_regret"], f["topk_overlap"]) == (1.0, 1.0, 0.0, 1.0)
    assert f["tau_ci"][0] is not None
    flipped = rows({"a": [0.6, 0.6], "b": [0.7, 0.7], "c": [0.8, 0.8], "d": [0.9, 0.9]})
    f = fidelity(proxy, flipped, top_k=2)
    assert (f["kendall_tau"], f["spearman_rho"], f["topk_overlap"]) == (-1.0, -1.0, 0.0)
    assert f["proxy_pick"] == "a" and f["validation_pick"] == "d" and f["top1_regret"] == pytest.approx(0.3)
    # one swap among four: tau = (5 - 1) / 6
    swapped = rows({"a": [0.9, 0.9], "b": [0.7, 0.7], "c": [0.8, 0.8], "d": [0.6, 0.6]})
    assert fidelity(proxy, swapped)["kendall_tau"] == pytest.approx(4 / 6, abs=1e-4)
    few = fidelity(proxy, rows({"a": [0.9, 0.9], "b": [0.8, 0.8]}))
    assert few["n_candidates"] == 2 and few["tau_ci"] == [None, None] and "too few" in few["note"]


def test_the_validated_ranking_decides():
    search = aggregate(rows({"a": [0.5, 0.5], "b": [0.4, 0.4]}))
    val = aggregate(rows({"a": [0.6, 0.6], "b": [0.7, 0.7]}))
    assert decide(search, val)[0]["candidate"] == "b" and decide(search, val)[1] == "validation"
    assert decide(search, None) == (search[0], "search")


def test_pooled_seed_sd():
    ranked = aggregate(rows({"a": [0.5, 0.7], "b": [0.4, 0.4, 0.4], "c": [0.3]}))
    assert pooled_sd(ranked) == pytest.approx(math.sqrt((0.02 + 0.0) / (1 + 2)))
