"""README's and every app's ``--help`` commands of the other apps (nas, ablate, validate, report, compare,
generate) run as written (issue 19): data and counts shrunk, placeholders filled with real runs made by
documented commands, the default proxy budgets. Not runnable here: doc_commands.NOT_RUN, with the reason."""

import json
import shlex

import pytest
from helpers import CIFAR_TAR

from helpers import doc_commands as D
from scalesearch.decide.results import read_table

pytestmark = pytest.mark.slow
OTHER = [c for c in D.runnable() if D.split(c)[1] != "scalesearch"]


def test_each_app_has_a_documented_command():
    assert {D.split(c)[1] for c in OTHER} == set(D.APPS) - {"scalesearch"}


def test_documented_multirun_command(docs_ws):
    """The documented multirun (placed here: scalesearch-compare below reads it)."""
    assert D.MULTIRUN in D.runnable("scalesearch")
    D.check_search_command(D.MULTIRUN, docs_ws, CIFAR_TAR)


@pytest.mark.parametrize("command", OTHER)
def test_documented_app_command(command, docs_ws):
    p, wrote = docs_ws.run(command)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{command}\n{out[-5000:]}"
    assert "Traceback" not in out, out[-5000:]
    docs_ws.keep(command, wrote)
    app = D.split(command)[1]
    made = [w for w in wrote if w.name == D.ARTIFACT[app]]
    assert made, f"{command} wrote no {D.ARTIFACT[app]}: {wrote}\n{out[-2000:]}"
    if app == "scalesearch-nas":
        base = json.loads(made[0].read_text())
        assert base["accuracy"] is not None and base.get("objective") is not None or "pareto" in command, base
    if app == "scalesearch-validate":  # the top 2 at least (all of them when the run has fewer than top_k)
        fid = json.loads(made[0].read_text())
        searched = {r["candidate"] for r in read_table(made[0].parent / "results.csv") if r["status"] == "ok"}
        top_k = 3 if "validate.top_k=3" in shlex.split(command) else 2
        assert fid["n_candidates"] >= min(top_k, len(searched)), fid
