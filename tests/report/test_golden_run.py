"""The default run's facts are what they were (issue 34's golden test): a redesign may change the words of
summary.md and report.md, never what the run decided.

``tests/golden/default_run/`` holds the built-in default run as README's test shrinks it (``scalesearch`` with
doc_commands.SHRINK), made on 2026-12-07 by the code before the decision's words moved out of ``decide/`` (commit
ae2ec19): ``tables/`` its trainings (results.csv, validation.csv, family_results.csv) and run record, ``facts/``
what it wrote from them (best.json, fidelity.json, candidates.json, family.json, family_curve.json, specs/).

* The documented resume (``scalesearch resume=true hydra.run.dir=RUN``) of those tables trains nothing and writes
  the same facts: every key and number of every file, except the prose (``WORDING``) and the run's wall time.
  Accuracies come from the committed tables, so this holds on any CPU.
* The same default run made fresh (tests/docs/test_docs_search_default.py runs it) plans the same trainings:
  ``doc_commands.check_same_trainings`` compares its search and validation tables' columns that no clock, host or
  float path sets (which candidates, seeds, budgets, sizes, costs and training ids). Its family follows the
  recommendation, which the CPU's float path may change on another machine; the family's specs are compared above.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import SHARED

from helpers import doc_commands as D

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parents[1] / "golden" / "default_run"
RESUME = "scalesearch resume=true hydra.run.dir=RUN"
# best.json's prose: the words of the verdict and its notes (report/ writes them; a redesign may reword them)
WORDING = {"verdict", "headline", "methods", "method", "seeds_method", "regret_bound_method", "product_note", "gamma_note",
           "constraint_text", "sentence", "note", "budget"}
CLOCK = {"search_wall_s"}  # the resume's own wall time


def _facts(value):
    """``value`` without its prose and clock keys, at every depth."""
    if isinstance(value, dict):
        return {k: _facts(v) for k, v in value.items() if k not in WORDING | CLOCK}
    if isinstance(value, list):
        return [_facts(v) for v in value]
    return value


def test_default_run_resumed_from_its_tables_writes_the_same_facts(tmp_path):
    assert RESUME in D.documented(), f"{RESUME!r} is no longer documented: update this test's command"
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "tables", run)
    ws = D.Workspace(tmp_path, SHARED, {})
    p = D.run(RESUME, tmp_path, {"RUN": run}, ws.env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    for table in ("results.csv", "validation.csv", "family_results.csv"):  # nothing trained, nothing rewritten
        assert (run / table).read_text() == (GOLDEN / "tables" / table).read_text(), table
    golden = sorted(p.relative_to(GOLDEN / "facts") for p in (GOLDEN / "facts").rglob("*.json"))
    assert len(golden) == 13, golden
    for name in golden:
        want = json.loads((GOLDEN / "facts" / name).read_text())
        got = json.loads((run / name).read_text())
        assert _facts(got) == _facts(want), name
    assert json.loads((run / "best.json").read_text())["verdict"]  # the words are there, only not compared

