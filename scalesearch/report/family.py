"""The family's analysis: what a scaled family's trained members measured and which one to use.

* the **family table** (the paper's Table 2 analogue, :func:`family_table`; the paper's family from its rows,
  :func:`paper_table`) with every cost and its accuracy;
* **diminishing returns** (:func:`diminishing_returns`) and each step tested against the threshold with its seed
  noise (:func:`step_noise`, :func:`step_evidence`: one-sided Bonferroni bounds, 95 %);
* the **cost-effective pick** (:func:`pick_cost_effective`): decided only when the data decide it, else the range of
  members consistent with the data and the seeds that would decide, in words by :func:`rule_statement` and
  :func:`pick_statement`;
* **curves that extrapolate** (:func:`curve_analysis`): accuracy vs MACs fitted with a saturating power law
  (:mod:`scalesearch.decide.curves`), untrained members predicted with an interval, the fit scored by holding out the
  largest trained member, and the pick continued on the predictions (never a decision).

Pure: reads nothing, writes nothing, plots nothing (report/writer.py renders it, report/plots.py draws it).
"""

from __future__ import annotations

import math

import scipy.stats as st

from ..config import ReportConfig
from ..decide.curves import fit_curve, holdout, predict
from ..decide.results import aggregate

__all__ = ["family_table", "paper_table", "family_curve", "diminishing_returns", "step_noise", "step_evidence",
           "pick_cost_effective", "rule_statement", "pooled_df", "pick_statement", "curve_analysis", "fmt_bound",
           "PICK_RULES", "LEVEL", "POWER", "SIMULATED"]

PICK_RULES = ("marginal", "knee")
LEVEL = 0.95  # family-wise level of the pick's step tests
POWER = 0.8  # power the seeds_needed plan aims at
# P(right | decided) of the marginal pick as simulated (benchmarks/family_pick_sim.py, issue 35): report text
SIMULATED = ("in simulation (threshold 0.01; four curve shapes; normal, t(3) and shared-seed noise; 1, 3 and 10 "
             "seeds; 2000 runs per setting; benchmarks/family_pick_sim.py) nothing was decided at seed sd 0.02, where "
             "the same tests without the precision gate were wrong in 403 of their 949 decided runs; at seed sd 0.002 "
             "a decided pick was the right member in ≥ 89 % of each setting's decided runs with 3 seeds and in all "
             "with 10; in between (seed sd 0.005–0.01, or 0.002 with one seed) in as few as 8 of 16, though every "
             "setting below 95 % decided in ≤ 3.4 % of its runs")


def family_table(members: list[dict], rows: list[dict], label: str = "searched") -> list[dict]:
    """family.json members with their trained accuracy (mean and 95 % interval over the ``label`` family's ok
    seeds; None where not trained) and the measured device costs of their trainings."""
    mine = [r for r in rows if r.get("family") == label]
    agg = {c["name"]: c for c in aggregate(mine, key="name")}
    status = {}
    for r in mine:
        status.setdefault(r["name"], set()).add(r["status"])
    out = []
    for m in members:
        a = agg.get(m["name"], {})
        out.append({**m, "accuracy": a.get("accuracy_mean"), "accuracy_low": a.get("accuracy_low"),
                    "accuracy_high": a.get("accuracy_high"), "n_seeds": a.get("n_seeds"),
                    "accuracies": a.get("accuracies"),
                    "latency_ms": a.get("latency_ms"), "train_step_ms": a.get("train_step_ms"),
                    "status": None if m["name"] not in status else ("ok" if status[m["name"]] == {"ok"} else
                                                                   "/".join(sorted(status[m["name"]])))})
    return out


def paper_table(rows: list[dict]) -> list[dict]:
    """The paper's family from its training rows (its members are not in family.json)."""
    mine = [r for r in rows if r.get("family") == "paper"]
    by = {}
    for r in mine:
        by.setdefault(r["name"], r)
    members = [{"name": r["name"], "phi": r["phi"], "depth_mult": r["depth_mult"], "width_mult": r["width_mult"],
                "resolution": r["resolution"], "params": r["params"], "macs": r["macs"],
                "activations": r["activations"], "macs_ratio": r["macs_ratio"]}
               for r in sorted(by.values(), key=lambda r: r["phi"])]
    return family_table(members, rows, "paper")


def family_curve(entries: list[dict]) -> list[dict]:
    """The measured accuracy-vs-MACs points of a trained family: ``{name, macs, accuracy, accuracies}`` (the mean
    and the per-seed accuracies) sorted by MACs."""
    pts = [{"name": e["name"], "macs": e["macs"], "accuracy": e["accuracy"],
            "accuracies": list(e.get("accuracies") or [])}
           for e in entries if e.get("accuracy") is not None and e.get("status") == "ok"]
    return sorted(pts, key=lambda p: p["macs"])


def diminishing_returns(points: list[dict]) -> list[dict]:
    """Between neighbouring members (sorted by MACs): the MACs ratio, the number of doublings
    log2(MACs ratio), the accuracy gain, and the gain per doubling of MACs."""
    out = []
    for a, b in zip(points, points[1:]):
        if not b["macs"] > a["macs"] > 0:
            raise ValueError(f"MACs must increase strictly between neighbours; got {a['name']}: {a['macs']}, "
                             f"{b['name']}: {b['macs']}")
        doublings = math.log2(b["macs"] / a["macs"])
        gain = b["accuracy"] - a["accuracy"]
        out.append({"from": a["name"], "to": b["name"], "macs_ratio": b["macs"] / a["macs"], "doublings": doublings,
                    "gain": gain, "gain_per_doubling": gain / doublings})
    return out


def _seeds(p: dict) -> list[float]:
    return list(p.get("accuracies") or [p["accuracy"]])


def step_noise(points: list[dict], noise_sd: float | None = None, noise_df: int | None = None) -> dict:
    """The per-seed accuracy sd the step tests use: {"sd", "df" (None: treated as known), "source"}.

    The members' own spread (pooled over members with ≥ 2 seeds, Σ(n−1) df) is pooled with ``noise_sd`` (the
    search's pooled seed sd) when its ``noise_df`` is known; with ``noise_df`` None the given sd is taken as the
    known σ (normal quantiles) — an assumption; with no ``noise_sd`` the members' own sd alone (Student t);
    neither: sd None (no test). Assumes the seed noise is the same for every member."""
    ss = sum(sum((a - sum(s) / len(s)) ** 2 for a in s) for s in map(_seeds, points))
    df_m = sum(len(_seeds(p)) - 1 for p in points)
    if noise_sd is not None and noise_df:
        df = int(noise_df) + df_m
        return {"sd": math.sqrt((noise_df * noise_sd ** 2 + ss) / df), "df": df,
                "source": f"search's pooled seed sd ({noise_df} df) pooled with the members' own ({df_m} df)"}
    if noise_sd is not None:
        return {"sd": float(noise_sd), "df": None, "source": "search's pooled seed sd, taken as known"}
    if df_m:
        return {"sd": math.sqrt(ss / df_m), "df": df_m, "source": f"members' own pooled seed sd ({df_m} df)"}
    return {"sd": None, "df": None, "source": "no noise estimate (single seeds and no noise_sd)"}


def _quantile(prob: float, df: int | None) -> float:
    return float(st.norm.ppf(prob) if df is None else st.t.ppf(prob, df))


def _sd_upper(noise: dict, level: float = LEVEL) -> float | None:
    """The seed sd's one-sided ``level`` upper confidence bound (χ² with its df); the sd itself when taken as
    known. The precision gate uses it so that a lucky low sd estimate does not open it."""
    if noise["sd"] is None or noise["df"] is None:
        return noise["sd"]
    return noise["sd"] * math.sqrt(noise["df"] / st.chi2.ppf(1.0 - level, noise["df"]))


def _precise(step: dict, threshold: float) -> bool:
    """The precision gate of "does not pay": the step's ``width`` ≤ a positive threshold (none for a threshold ≤ 0,
    where a flat step is on the paying side and a "does not pay" needs a falling curve)."""
    return threshold <= 0 or step["width"] <= threshold


def _seeds_for(step: dict, sd: float, q: float, threshold: float, df: int | None = None, members: int = 2,
               power: float = POWER) -> int | None:
    """Seeds per member (both ends) for the step's interval to exclude the threshold with probability
    ``power`` if the true gain is the measured one (normal approximation, known sd): n = 2 (z + z_power)² sd² /
    (doublings · (gain − threshold))²; for a gain below the threshold at least the n that measures the step to
    ± the threshold, which "does not pay" needs (:func:`step_evidence`): 2 (z sd⁺ / (doublings · threshold))², sd⁺
    the sd's upper bound at the df those seeds would give (``df`` + ``members`` · (n − 1); sd taken as known:
    ``df`` None, sd⁺ = sd). None when the measured gain equals the threshold."""
    gap = abs(step["gain_per_doubling"] - threshold) * step["doublings"]
    if gap == 0:
        return None
    n = 2.0 * ((q + st.norm.ppf(power)) * sd / gap) ** 2
    if 0 < threshold and step["gain_per_doubling"] < threshold:
        gate = 2.0 * (q * sd / (threshold * step["doublings"])) ** 2
        if df is not None:
            later = df + members * (gate - 1.0)
            gate *= later / st.chi2.ppf(1.0 - LEVEL, later)
        n = max(n, gate)
    return max(2, math.ceil(n))


def step_evidence(points: list[dict], threshold: float, noise_sd: float | None = None, noise_df: int | None = None,
                  level: float = LEVEL) -> dict:
    """Each step's gain per doubling tested against ``threshold`` with its seed noise.

    Bounds per step: gain/doublings ∓ q · sd · √(1/n_a + 1/n_b) / doublings, q the Student-t (or normal, sd
    known) quantile at 1 − (1 − level)/K: each bound is a one-sided 1 − (1 − level)/K confidence bound
    (Bonferroni over the K steps). A step "pays" (lower bound ≥ threshold), "does not pay" (upper bound <
    threshold *and* ``width`` ≤ threshold) or is "open". ``width``: the half-width with the seed sd's one-sided
    ``level`` upper bound (:func:`_sd_upper`) — the precision gate. Without it a step measured to ± more than the
    threshold could say "does not pay" only from a measured loss, which a flat or growing curve gives only in an
    extreme draw: the wrong verdict then came as often as the right one (issue 35). For each step only one of the
    two verdicts can be wrong, with probability ≤ (1 − level)/K, so all K verdicts are right together with
    probability ≥ ``level`` — unconditionally, not the chance that a decided pick is right (see
    :func:`pick_cost_effective`). Open steps get ``seeds_needed`` (:func:`_seeds_for`). Returns {"steps", "sd",
    "df", "source", "sd_upper", "level", "method"}."""
    pts = sorted(points, key=lambda p: p["macs"])
    steps, noise = diminishing_returns(pts), step_noise(pts, noise_sd, noise_df)
    k, sd, up = max(len(steps), 1), noise["sd"], _sd_upper(noise, level)
    q = _quantile(1.0 - (1.0 - level) / k, noise["df"])
    for s, a, b in zip(steps, pts, pts[1:]):
        se = math.sqrt(1 / len(_seeds(a)) + 1 / len(_seeds(b))) / s["doublings"]
        half, s["width"] = (None, None) if sd is None else (q * sd * se, q * up * se)
        s["low"], s["high"] = ((None, None) if half is None
                               else (s["gain_per_doubling"] - half, s["gain_per_doubling"] + half))
        s["verdict"] = ("open" if half is None else "pays" if s["low"] >= threshold else
                        "does not pay" if s["high"] < threshold and _precise(s, threshold) else "open")
        s["seeds_needed"] = (_seeds_for(s, sd, q, threshold, noise["df"], len(pts))
                             if s["verdict"] == "open" and sd is not None else None)
    dist = "normal (sd taken as known)" if noise["df"] is None else f"Student t ({noise['df']} df)"
    method = (f"one-sided {dist} confidence bounds on each step's gain per doubling at "
              f"{100 * (1 - (1 - level) / k):.2f} % (Bonferroni over {len(steps)} step(s)): all the steps' verdicts "
              f"are right together with probability ≥ {100 * level:g} % (unconditionally: not the chance that a "
              "decided pick is right, which simulation at threshold 0.01 put at ≥ 89 % per setting at seed sd 0.002 "
              "with ≥ 3 seeds and as low as 50 % with coarser steps); \"does not pay\" also needs the step measured "
              f"to ± the threshold ({threshold:.4f}) or better at the seed sd's {100 * level:g} % upper bound; "
              "per-seed sd " + ("none" if sd is None else f"{sd:.4f} (upper bound {up:.4f})")
              + f" from the {noise['source']}")
    return {"steps": steps, **noise, "sd_upper": up, "level": level, "method": method}


def _marginal(pts: list[dict], threshold: float, ev: dict) -> dict:
    """The noise-respecting walk (see :func:`pick_cost_effective`)."""
    steps = ev["steps"]
    index = next((i for i, s in enumerate(steps) if s["gain_per_doubling"] < threshold), len(steps))
    lo = next((i for i, s in enumerate(steps) if s["verdict"] != "pays"), len(steps))
    hi = next((i for i, s in enumerate(steps) if s["verdict"] == "does not pay"), len(steps))
    name = lambda i: pts[i]["name"]  # noqa: E731
    need = [s["seeds_needed"] for s in steps[lo:min(index, hi) + 1] if s["verdict"] == "open"]
    out = {"index": index, "decided": lo == hi, "range": [name(lo), name(hi)],
           "seeds_needed": None if lo == hi or None in need or not need else max(need)}
    if not steps:
        return {**out, "reason": "the only member"}
    if lo == hi:
        s = steps[lo] if lo < len(steps) else None
        stop = "" if s is None else (f"the next ({s['from']} → {s['to']}) clearly does not pay (upper bound "
                                     f"{s['high']:+.4f} < {threshold:.4f}, measured to ±{s['width']:.4f})")
        if lo == 0:
            return {**out, "reason": "already " + stop.replace("the next", "the first step")}
        return {**out, "reason": f"every step up to it clearly pays (lower bound ≥ {threshold:.4f} per doubling); "
                                 + (stop or "it is the largest one")}
    return {**out, "reason": _open_reason(pts, threshold, steps, lo, hi, index, out["seeds_needed"])}


def _open_reason(pts: list[dict], threshold: float, steps: list[dict], lo: int, hi: int, index: int,
                 seeds: int | None) -> str:
    """Why the walk is not decided: the consistent members, the open steps, and — where the steps are measured
    to ± more than the threshold — that they are too coarse to say "does not pay"; the seeds that would decide."""
    opened = [s for s in steps[lo:hi] if s["verdict"] == "open"]
    listed = ", ".join(f"{s['from']} → {s['to']} {s['gain_per_doubling']:+.4f} "
                       f"[{fmt_bound(s['low'])}, {fmt_bound(s['high'])}]" for s in opened)
    wide = max((s["width"] for s in opened if s["width"] is not None), default=0.0)
    coarse = ("" if not 0 < threshold < wide else
              f"; the steps are measured to ±{wide:.4f} per doubling (at the seed sd's upper bound), wider than the "
              f"threshold {threshold:.4f}: a step that coarse says \"does not pay\" only from an extreme draw, so it "
              "stays open")
    more = ("" if seeds is None else
            f"; about family.seeds={seeds} seeds per member would let it decide ({100 * POWER:g} % power, every step "
            "measured to ± the threshold), assuming the true gains are the measured ones and the seed sd is as "
            "measured (normal approximation; optimistic for a gain close to the threshold)")
    return (f"noise leaves the pick open: members {pts[lo]['name']}–{pts[hi]['name']} are consistent with the data; "
            f"open steps: {listed}{coarse}; the walk on the means stops at {pts[index]['name']}, a best guess{more}")


def fmt_bound(v) -> str:
    """A step bound for the report: signed to four places, an em dash when there is none."""
    return "—" if v is None else f"{v:+.4f}"


def _knee(pts: list[dict]) -> tuple[int, str]:
    """The knee of the measured means (descriptive)."""
    front = [0]
    for i in range(1, len(pts)):
        if pts[i]["accuracy"] > pts[front[-1]]["accuracy"]:
            front.append(i)
    if len(front) == 1:
        return 0, "no larger member is more accurate (flat or falling curve)"
    x = [math.log2(pts[i]["macs"]) for i in front]
    y = [pts[i]["accuracy"] for i in front]
    span = y[-1] - y[0]
    above = [(y[k] - (y[0] + span * (x[k] - x[0]) / (x[-1] - x[0]))) / span for k in range(len(front))]
    k = max(range(len(front)), key=lambda k: above[k])
    if above[k] <= 1e-9:
        return front[-1], (f"no member lies above the chord from {pts[front[0]]['name']} to {pts[front[-1]]['name']}: "
                           "returns do not diminish up to it"
                           + ("; no larger member is more accurate" if front[-1] < len(pts) - 1 else ""))
    return front[k], (f"farthest above the chord from {pts[front[0]]['name']} to {pts[front[-1]]['name']} "
                      f"({above[k]:.2f} of the accuracy range)")


def pick_cost_effective(points: list[dict], rule: str = "marginal", threshold: float = 0.01,
                        noise_sd: float | None = None, noise_df: int | None = None, level: float = LEVEL) -> dict:
    """The cost-effective member of an accuracy-vs-MACs curve (``points``: ``{name, macs, accuracy}`` and, for the
    noise, ``accuracies`` — the per-seed values; without them a point counts as one seed).

    * ``marginal`` — a decision that respects noise: every step's gain per doubling is tested against ``threshold``
      by :func:`step_evidence` (one-sided Bonferroni bounds, seed sd from :func:`step_noise`; a step "does not pay"
      only when it is also measured to ± the threshold or better — the precision gate). The pick is *decided* only
      when the walk up the family reaches member m through steps that clearly pay and the next step clearly does
      not (or m is the largest). What holds: all the step verdicts are right together with probability ≥
      ``level``, so P(decided and wrong) ≤ 1 − ``level``. That is unconditional, not P(right | decided), which
      depends on the curve and the noise (:data:`SIMULATED`): in simulation nothing was decided at seed sd 0.02,
      where the tests without the gate were wrong in 403 of their 949 decided runs; at sd 0.002 a decided pick was
      the right member in ≥ 89 % of each setting's decided runs with 3 seeds and all with 10; in between, in as few
      as 8 of 16. Otherwise ``range`` holds the first and last members consistent with the data (the walk could
      stop anywhere from the first step that does not clearly pay to the first that clearly does not), and
      ``seeds_needed`` the seeds per member that would decide (power and the precision gate). ``index``/``name``
      are always the walk on the means (stop at the first step below the threshold): a point estimate inside
      ``range``, not a decision.
    * ``knee`` — descriptive only, never a decision (``decided`` False, no noise test): on the members that beat
      every cheaper member, the one farthest above the chord from the cheapest to the most accurate one on
      accuracy vs log2(MACs); none above it: the most accurate; a flat or falling curve: the cheapest.

    Returns ``{index, name, rule, threshold, reason, decided, range, method, level, seeds_needed, steps}``
    (``index`` into the points sorted by MACs; ``steps`` the per-step tests; ``range``/``steps`` None for knee).
    """
    if rule not in PICK_RULES:
        raise ValueError(f"report.pick_rule={rule!r} is unknown; allowed: {', '.join(PICK_RULES)}")
    if not points:
        raise ValueError("no trained family member to pick from; allowed: at least one member with an accuracy")
    pts = sorted(points, key=lambda p: p["macs"])
    ev = step_evidence(pts, threshold, noise_sd, noise_df, level)
    if rule == "marginal":
        out = {**_marginal(pts, threshold, ev), "method": ev["method"], "steps": ev["steps"]}
    else:
        index, reason = _knee(pts)
        out = {"index": index, "reason": reason,
               "decided": False, "range": None, "seeds_needed": None, "steps": None,
               "method": "descriptive: the knee of the measured means; no noise test"}
    return {**out, "name": pts[out["index"]]["name"], "rule": rule,
            "threshold": threshold if rule == "marginal" else None, "level": level}


def rule_statement(rule: str, threshold: float, level: float = LEVEL) -> str:
    """The pick rule in one paragraph, for the report: what is tested, what holds, and what simulation measured."""
    if rule == "marginal":
        return (f"`marginal`: walk up the family while each step gains at least {threshold:.4f} accuracy "
                f"({100 * threshold:.2f} percentage points) per doubling of MACs (report.min_gain_per_doubling), "
                "each step tested with its seed noise (one-sided Bonferroni bounds; \"does not pay\" also needs the "
                "step measured to ± the threshold or better); the pick is decided only when the walk reaches a member "
                "through steps that clearly pay and the next step clearly does not (or it is the largest), else the "
                f"members consistent with the data are named. All the step verdicts are right together with "
                f"probability ≥ {100 * level:g} %: a wrong decided pick in at most {100 * (1 - level):g} % of runs. "
                f"That is not the chance that a decided pick is right: {SIMULATED}.")
    return ("`knee` (descriptive, not a decision): among members more accurate than every cheaper one, the one "
            "farthest above the chord from the cheapest to the most accurate member on accuracy vs log2(MACs); with "
            "no member above the chord (no diminishing returns) the most accurate, with a flat or falling curve the "
            "cheapest. It tests no noise: use `marginal` to decide.")


def pooled_df(ranked: list[dict]) -> int | None:
    """Degrees of freedom of the search's pooled seed sd (Σ (n − 1) over candidates with ≥ 2 seeds; None if none),
    the ``noise_df`` that goes with best.json's ``noise_sd``."""
    df = sum(len(c["accuracies"]) - 1 for c in ranked if len(c.get("accuracies") or []) >= 2)
    return df or None


def pick_statement(pick: dict, basis: str = "measured") -> str:
    """The pick in one markdown line: bold only when decided."""
    if pick["decided"]:
        return (f"**Cost-effective pick: {pick['name']}** ({pick['reason']}) — it rests on **{basis}** points; "
                f"{pick['method']}.")
    if basis == "predicted":
        return (f"Cost-effective pick on the curve's prediction, not a decision: {pick['name']} ({pick['reason']}).")
    if pick["rule"] == "knee":
        return f"Descriptive knee, not a decision: {pick['name']} ({pick['reason']}); {pick['method']}."
    return f"Cost-effective pick: not decided — {pick['reason']}. Method: {pick['method']}."


def _extend(pick: dict, measured: list[dict], beyond: list[dict], report_cfg: ReportConfig) -> dict | None:
    """The walk continued on the curve's predictions past the largest trained member (no noise test: never
    decided); None when it stops there."""
    pts = measured + [{"name": p["name"], "macs": p["macs"], "accuracy": p["accuracy"]} for p in beyond]
    ext = pick_cost_effective(pts, report_cfg.pick_rule, report_cfg.min_gain_per_doubling)
    if ext["name"] == pick["name"]:
        return None
    last = measured[-1]["name"]
    steps = (pick["steps"] or []) + [{**s, "verdict": "predicted"} for s in (ext["steps"] or [])[len(measured) - 1:]]
    return {**ext, "decided": False, "range": [last, ext["name"]] if ext["range"] else None, "seeds_needed": None,
            "steps": steps if ext["steps"] else None, "method": pick["method"],
            "reason": f"measured: {pick['reason']}; on the curve's predictions beyond {last} (no noise test) the rule "
                      f"reaches {ext['name']}: train it to confirm"}


def curve_analysis(table: list[dict], noise_sd: float | None, report_cfg: ReportConfig, seed: int = 0,
                   noise_df: int | None = None) -> dict | None:
    """Fit accuracy vs MACs over the trained members, predict the untrained ones (95 % interval), hold out the
    largest trained member (only with ≥ 5 trained, see :func:`scalesearch.decide.curves.holdout`), and pick the
    cost-effective member on measured points with their noise (``noise_sd``/``noise_df``: the search's pooled seed
    sd and its df, see :func:`step_noise`) — and, when the pick is the largest trained member (decided, for
    ``marginal``) and the curve says the next one still pays, on predicted ones (never a decision).
    ``statement``: the pick's markdown line (:func:`pick_statement`)."""
    trained = [e for e in table if e.get("accuracies") and e.get("status") == "ok"]
    if len(trained) < 2:
        return None
    points = [{"name": e["name"], "cost": e["macs"], "accuracies": e["accuracies"]} for e in trained]
    fit = fit_curve(points, noise_sd=noise_sd, seed=seed)
    untrained = [e for e in table if e not in trained and e["macs"] > 0]
    preds = predict(fit, [e["macs"] for e in untrained]) if untrained else []
    predictions = [{"name": e["name"], "phi": e["phi"], "macs": e["macs"], **p} for e, p in zip(untrained, preds)]
    measured = family_curve(trained)
    pick = pick_cost_effective(measured, report_cfg.pick_rule, report_cfg.min_gain_per_doubling, noise_sd, noise_df)
    beyond = sorted((p for p in predictions if p["macs"] > measured[-1]["macs"]), key=lambda p: p["macs"])
    ext = None
    if beyond and pick["name"] == measured[-1]["name"] and (pick["decided"] or pick["rule"] == "knee"):
        ext = _extend(pick, measured, beyond, report_cfg)
    pick, basis = (ext, "predicted") if ext else (pick, "measured")
    return {"fit": {k: v for k, v in fit.items() if not k.startswith("_")}, "predictions": predictions,
            "holdout": holdout(points, noise_sd=noise_sd, seed=seed, n_boot=500), "pick": pick, "pick_basis": basis,
            "statement": pick_statement(pick, basis), "_fit": fit}
