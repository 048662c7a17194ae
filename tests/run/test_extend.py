"""Extending a finished grid run in place (issue 22, item 4): more seeds train only the new seeds, the verdict's
"Next:" prints the exact command, and an Optuna run's seeds still define it."""

import csv
import dataclasses
import json
import shlex

from helpers import TINY, compose_search, run_cli

from scalesearch.run.resume import settings_diff

BASE = [a for a in TINY if not a.startswith("search.n_seeds")] + ["search.max_points=2"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_more_seeds_on_a_finished_grid_run_train_only_the_new_seeds(tmp_path):
    run = tmp_path / "run"
    rc, out, err = run_cli("search_main", *BASE, "search.n_seeds=2", f"hydra.run.dir={run}")
    assert rc == 0, err[-3000:]
    first = {r["key"]: r["trial_id"] for r in _rows(run / "results.csv")}
    trials = sorted(p.name for p in (run / "tune" / "search").iterdir() if p.is_dir())  # issue 34: Tune's folders
    assert sorted(n.split("_", 2)[2] for n in trials) == sorted(k.replace("/", "_") for k in first), trials  # by key
    best = json.loads((run / "best.json").read_text())
    assert not best["decided"] and best["n_seeds"] == 2
    cmd = best["next_command"]
    # runnable as printed: this run's own overrides (a resume repeats them), then the extension
    assert cmd == " ".join(["scalesearch", *map(shlex.quote, BASE), f"resume=true hydra.run.dir={run} search.n_seeds=3"])
    assert f"`{cmd}`" in best["verdict"] and f"`{cmd}`" in (run / "summary.md").read_text()
    rc, out, err = run_cli("search_main", *shlex.split(cmd)[1:])  # the command as printed, nothing added
    assert rc == 0, err[-3000:]
    rows = _rows(run / "results.csv")
    assert len(rows) == 3 * len(first) // 2 and all(r["status"] == "ok" for r in rows)
    assert all({r["key"]: r["trial_id"] for r in rows}[k] == t for k, t in first.items())  # kept, not retrained
    assert sorted({int(r["seed"]) for r in rows}) == [0, 1, 2]
    best = json.loads((run / "best.json").read_text())
    assert best["n_seeds"] == 3 and json.loads((run / "search.json").read_text())["status"] == "complete"
    assert len(list(run.parent.iterdir())) == 1  # in place: no new run directory
    # the next extension is printed only when it asks for at most 4× the run's seeds (issue 35: the conservative
    # advice can ask for thousands; a command nobody would run is not a next step)
    if not best["decided"] and not best["equivalent"] and best["seeds_needed"]:
        too_many = best["seeds_needed"] > 4 * 3
        assert (best["next_command"] is None) == too_many, best["next_command"]
        assert ("No extension command is printed" in best["verdict"]) == too_many
        nxt = [x for x in (run / "summary.md").read_text().splitlines() if x.startswith("**Next:**")]
        want = "**Next:** more seeds would not decide" if too_many else f"**Next:** `{best['next_command']}`"
        assert len(nxt) == 1 and nxt[0].startswith(want), nxt  # never a seed count nobody would train


def test_an_optuna_runs_seeds_define_it_but_a_grid_runs_do_not():
    for strategy, differs in (("grid", False), ("optuna", True)):
        old = dataclasses.asdict(compose_search(f"search={strategy}", "search.n_seeds=2"))
        new = compose_search(f"search={strategy}", "search.n_seeds=4")
        assert bool(settings_diff(old, new)) is differs, (strategy, settings_diff(old, new))
    old = dataclasses.asdict(compose_search("search.n_seeds=2", "proxy.epochs=5"))
    assert settings_diff(old, compose_search("search.n_seeds=4", "proxy.epochs=3")) == ["proxy.epochs: 5 there, 3 here"]


def test_the_budget_says_the_batch_the_trainings_used():
    """Issue 34: proxy.batch_size=100000 on 40 training images trains with batches of 40, and the texts say so."""
    from scalesearch.config import ProxyConfig
    from scalesearch.run.resume import budget_str

    p = ProxyConfig(batch_size=100000)
    assert budget_str(p, 40) == (f"{p.epochs} epochs, batch 40 (proxy.batch_size=100000, capped at the 40 training "
                                 f"images), {p.optimizer} lr {p.lr:g}")
    assert budget_str(p, 200000) == budget_str(p) == f"{p.epochs} epochs, batch 100000, {p.optimizer} lr {p.lr:g}"
