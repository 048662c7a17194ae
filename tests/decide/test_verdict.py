"""The verdict on known inputs: a tie says "not distinguishable" (the confidence set holds both) and how many seeds
would separate it, a clear winner is "decided", the paper is compared inside the set, equality is said by TOST,
one or two seeds decide nothing; the fidelity numbers of a known ranking, and none over fewer than 5 candidates."""

import json
import math

import pytest

from scalesearch.decide.results import aggregate, fmt_mean_ci
from scalesearch.decide.stats import noise_sd_bound, seeds_to_decide, t_quantile
from scalesearch.decide.verdict import decide, fidelity, pooled_sd
from scalesearch.decide.verdict import verdict as verdict_facts
from scalesearch.report.summary import next_step, summary_markdown
from scalesearch.report.verdict import Extension, VerdictWords, verdict_words


def verdict(ranked, rows, *args, **kw) -> dict:
    """The verdict as best.json holds it: decide/'s facts with report/'s words ("text", "headline")."""
    v = verdict_facts(ranked, rows, *args, **kw)
    assert not any(hasattr(v, k) for k in ("text", "headline"))  # the facts carry no words
    words = verdict_words(v, ranked)
    return {**v.to_dict(), "text": words.text, "headline": words.headline, "methods": "\n".join(words.methods),
            "facts": v}


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
    kw = {"paper": "paper" if "paper" in table else None, "val_n": 400, **kw}
    return verdict(ranked, r, "search", fid=None, chance=0.1, budget="2 epochs", constraint="measured",
                   base_resolution=40, **kw), ranked


def test_a_tie_is_not_distinguishable_and_says_how_many_seeds_would_tell():
    v, ranked = run_verdict({"a": [0.50, 0.47, 0.53], "b": [0.49, 0.48, 0.50], "paper": [0.45, 0.50, 0.48]})
    assert ranked[0]["candidate"] == "a"
    assert v["decided"] is False and sorted(v["confidence_set"]) == ["a", "b", "paper"]
    assert "p_best" not in v and "P(best)" not in v["text"] and "Bonferroni" in v["method"]
    d = v["vs_runner_up"]
    assert d["runner_up"] == "b" and d["distinguishable"] is False and d["in_set"] and d["low"] < 0 < d["high"]
    diffs = [0.01, -0.01, 0.03]  # a − b per seed
    mean, sd = sum(diffs) / 3, math.sqrt(sum((x - sum(diffs) / 3) ** 2 for x in diffs) / 2)
    assert d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(sd)
    # the interval is Bonferroni's: two-sided at 1 − 0.05/(k − 1) = 0.975 for k = 3
    half = t_quantile(2, 0.975) * sd / math.sqrt(3)
    assert (d["low"], d["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # the advice plans a lead of the margin over both rivals at the set's α per test, with the 90 % noise bound
    per_seed = {c: dict(enumerate(x)) for c, x in {"a": [0.50, 0.47, 0.53], "b": [0.49, 0.48, 0.50],
                                                    "paper": [0.45, 0.50, 0.48]}.items()}
    nb = noise_sd_bound(per_seed)
    assert v["noise_sd_upper"] == pytest.approx(nb["bound"], abs=1e-6) and nb["bound"] > nb["sd"]
    assert v["seeds_needed"] == seeds_to_decide(3, 0.01, math.sqrt(2) * nb["bound"], 0.025) and v["seeds_needed"] > 3
    assert v["equivalent"] is False and "Student t with 3 df" in v["seeds_method"]
    assert "**Not distinguishable at this budget**" in v["text"]
    assert f"about {v['seeds_needed']} seeds per candidate would decide" in v["text"]
    assert v["seeds_method"] in v["methods"] and "in simulation" in v["methods"]  # the plan's noise bound, checked
    # the paragraph states results; each method is stated once, apart (summary.md's "How this was computed")
    assert "Bonferroni" not in v["text"] and "paired t" not in v["text"] and "Bonferroni α/(k−1)" in v["methods"]
    assert "not distinguishable from it" in v["text"]  # the paper's (α, β): also a tie
    assert "largest of 3 means" in v["methods"] and "specific to this base resolution of 40 px" in v["text"]
    assert v["text"].count("cost 2.00× baseline") >= 3  # the winner, the runner-up and the paper


def test_a_clear_winner_is_called_one():
    v, _ = run_verdict({"a": [0.70, 0.72, 0.71], "b": [0.50, 0.51, 0.49], "paper": [0.40, 0.42, 0.41]})
    assert v["decided"] is True and v["confidence_set"] == ["a"]
    assert v["vs_runner_up"]["distinguishable"] is True and v["vs_paper"]["in_set"] is False
    assert "**Decided at 95 % family-wise**" in v["text"]
    assert "the paper's point is outside the 95 % confidence set of the best (excluded by the recommendation)" \
        in v["text"] and "worse" not in v["text"]
    assert "Next:" not in v["text"] and v["seeds_needed"] is None and v["equivalent"] is None
    assert json.loads(json.dumps(v["facts"].to_dict()))["confidence_set"] == ["a"]  # best.json stores it


def test_the_paper_outside_the_set_because_of_another_candidate():
    # b is the best; the paper is beaten clearly by a (on every seed) but not by b (b is noisy)
    v, _ = run_verdict({"b": [0.80, 0.60, 0.70], "a": [0.66, 0.67, 0.65], "paper": [0.56, 0.57, 0.55]})
    assert v["best"] == "b" and v["vs_paper"]["excluded_by"] == "a" and not v["vs_paper"]["in_set"]
    assert "the paper's point is outside the 95 % confidence set of the best (excluded by α=" in v["text"]
    assert "worse" not in v["text"]


def test_equal_at_this_budget_is_said_with_tost():
    a = [0.5 + 0.01 * i for i in range(8)]
    v, _ = run_verdict({"a": [x + 0.0025 * (i % 2) for i, x in enumerate(a)], "b": a})
    assert v["equivalent"] is True and v["seeds_needed"] is None and not v["decided"]
    assert "probably equal at this budget, within 0.01 (p = " in v["text"] and "seeds if" not in v["text"]
    assert "(TOST) of the top two at margin 0.01, 95 %" in v["methods"]


def test_a_zero_spread_difference_is_not_decided_by_quantisation():
    # a − b is exactly one quantum (1/400) on every seed: sd 0 would give an interval of zero width
    b = [0.50, 0.60, 0.40]
    v, _ = run_verdict({"a": [x + 0.0025 for x in b], "b": b})
    d = v["vs_runner_up"]
    assert d["sd_used"] == 0.0025 and d["high"] - d["low"] > 0.01 and v["decided"] is False


def test_one_or_two_seeds_decide_nothing():
    v, ranked = run_verdict({"a": [0.6], "b": [0.5]})
    assert ranked[0]["accuracy_low"] is None and fmt_mean_ci(ranked[0]) == "0.600 (1 seed, no spread)"
    assert v["vs_runner_up"]["distinguishable"] is None and v["decided"] is False
    assert "over 1 seed (no spread: no interval)" in v["text"] and "run at least 3 seeds" in v["text"]
    assert "± 0.0000" not in v["text"] and "±0.000" not in v["text"]
    md = summary_markdown({"dataset": "d", "num_classes": 10, "chance": 0.1, "base_resolution": 40, "strategy": "grid",
                           "constraint": "measured", "constraint_text": "t", "budget": "b", "seeds": [0]},
                          v["facts"], None, VerdictWords(v["text"], v["headline"], v["methods"].split("\n")), ranked,
                          rows({"a": [0.6], "b": [0.5]}), [], None, None, None)
    assert md.splitlines()[2] == v["headline"][0] and v["text"] in md and "(1 seed, no spread)" in md
    assert "**Next:** run at least 3 seeds" in md and "± 0" not in md
    v, _ = run_verdict({"a": [0.9, 0.91], "b": [0.1, 0.11]})  # a huge gap, but 2 seeds
    assert v["decided"] is False and v["confidence_set"] == ["a", "b"] and "decisions need ≥ 3" in v["text"]


def test_the_next_step_never_quotes_a_seed_count_nobody_would_train():
    # issue 34: the conservative plan can ask for thousands of seeds; the summary's one next step then says what a
    # person would do (the pipeline marks the plan out of reach past 4x the run's seeds)
    v, _ = run_verdict({"a": [0.50, 0.62, 0.41], "b": [0.49, 0.60, 0.43], "c": [0.30, 0.52, 0.45]})
    assert not v["decided"] and v["seeds_needed"], v
    assert str(v["seeds_needed"]) in next_step(v["facts"])  # within reach: the count is the advice
    far = next_step(v["facts"], Extension(out_of_reach={"seeds": v["seeds_needed"], "most": 12, "times": 4}))
    assert far.startswith("**Next:** more seeds would not decide at this budget (over 4× this run's)"), far
    assert str(v["seeds_needed"]) not in far and "proxy.epochs" in far


def test_the_paper_not_in_the_deciding_stage_is_said_truthfully():
    table = {"a": [0.5, 0.51, 0.52], "b": [0.4, 0.41, 0.42]}
    searched = aggregate(rows({"x": [0.3], "paper": [0.45, 0.46]}))[0]
    r = rows(table)
    v = verdict(aggregate(r), r, "validation", paper=None, paper_searched=searched, fid=None, chance=0.1,
                budget="4 epochs", proxy_budget="2 epochs", val_n=400)
    assert v["vs_paper"] is None and "was searched (proxy accuracy 0.455" in v["text"] and "but not validated" in v["text"]
    v = verdict(aggregate(r), r, "search", paper=None, paper_searched=None, fid=None, chance=0.1, budget="2 epochs")
    assert "was not evaluated (infeasible at this base resolution, or not in the grid)" in v["text"]


def test_barely_above_chance_and_a_tiny_validation_split_are_said():
    v, _ = run_verdict({"a": [0.12, 0.13], "b": [0.11, 0.10]}, val_n=50, half_width=0.139)
    assert "barely above chance" in v["text"] and "50 validation images: ±0.139" in v["text"]


def test_fidelity_of_known_rankings():
    names = "abcde"
    proxy = aggregate(rows({c: [0.5 - 0.1 * i, 0.51 - 0.1 * i] for i, c in enumerate(names)}))
    same = rows({c: [0.9 - 0.1 * i, 0.91 - 0.1 * i] for i, c in enumerate(names)})
    f = fidelity(proxy, same, top_k=2)
    assert (f["kendall_tau"], f["spearman_rho"], f["top1_regret"], f["topk_overlap"]) == (1.0, 1.0, 0.0, 1.0)
    assert f["tau_p"] == pytest.approx(2 / 120, abs=1e-4) and f["note"] == "" and "no interval" in f["method"]
    flipped = rows({c: [0.5 + 0.1 * i, 0.51 + 0.1 * i] for i, c in enumerate(names)})
    f = fidelity(proxy, flipped, top_k=2)
    assert (f["kendall_tau"], f["spearman_rho"], f["topk_overlap"]) == (-1.0, -1.0, 0.0)
    assert f["proxy_pick"] == "a" and f["validation_pick"] == "e" and f["top1_regret"] == pytest.approx(0.4)
    # one swap among five: tau = (9 - 1) / 10
    swapped = rows({"a": [0.9, 0.7], "b": [0.8, 0.82], "c": [0.7, 0.72], "d": [0.6, 0.62], "e": [0.5, 0.52]})
    f = fidelity(proxy, swapped)
    assert f["kendall_tau"] == pytest.approx(0.8, abs=1e-4) and "scipy p-values" in f["method"]


def test_fidelity_over_fewer_than_five_candidates_is_not_measured():
    proxy = aggregate(rows({"a": [0.5, 0.5], "b": [0.4, 0.4], "c": [0.3, 0.3], "d": [0.2, 0.2]}))
    for val in ({"a": [0.9, 0.9], "b": [0.8, 0.8]}, {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "d": [0.6, 0.6]}):
        f = fidelity(proxy, rows(val))
        assert f["kendall_tau"] is None and f["spearman_rho"] is None and f["tau_p"] is None
        assert f["note"] == f"fidelity not measurable over {len(val)} candidates: needs ≥ 5 (validate.top_k + " \
            "validate.random_k ≥ 5)"
        assert f["proxy_pick"] == "a" and f["top1_regret"] == 0.0 and f["n_candidates"] == len(val)
    r = rows({"a": [0.5, 0.51, 0.52], "b": [0.4, 0.41, 0.42]})
    v = verdict(aggregate(r), r, "validation", paper=None, fid=f, chance=0.1, budget="b", proxy_budget="p")
    assert "Fidelity not measurable over 4 candidates: needs ≥ 5" in v["text"] and "τ =" not in v["text"]


def test_the_validated_ranking_decides():
    search = aggregate(rows({"a": [0.5, 0.5], "b": [0.4, 0.4]}))
    val = aggregate(rows({"a": [0.6, 0.6], "b": [0.7, 0.7]}))
    assert decide(search, val)[0]["candidate"] == "b" and decide(search, val)[1] == "validation"
    assert decide(search, None) == (search[0], "search")


def test_pooled_seed_sd():
    ranked = aggregate(rows({"a": [0.5, 0.7], "b": [0.4, 0.4, 0.4], "c": [0.3]}))
    assert pooled_sd(ranked) == pytest.approx(math.sqrt((0.02 + 0.0) / (1 + 2)))
