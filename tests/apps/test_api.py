"""Python's front door, ``scalesearch.search(*overrides, run_dir=None)`` (issue 34): the run the ``scalesearch``
command makes from the same overrides — the same composed config, checks, stages and artifacts — returned as a
typed ``SearchResult``; bad input raises the command's one line before anything is written; a second call with
``resume=true`` on the same directory trains nothing again."""

import json
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT

import scalesearch
from scalesearch.apps.cli import UserError

SMALL = ["dataset.train_size=40", "dataset.val_size=20", "dataset.train_per_class=6", "dataset.val_per_class=3",
         "search.max_points=2", "validate.enabled=false", "family.max_phi=1"]


@pytest.mark.parametrize("overrides, message", [
    (["search.max_points=-3"], "search.max_points=-3; allowed: >= 1 or null"),
    (["search.nope=1"], "Could not override 'search.nope'"),
    (["search.cpus_per_trial=2"], "search.cpus_per_trial moved to trials.cpus_per_trial"),
    (["search.delta=2"], "search.delta=2.0; allowed: in [0, 1)"),
])
def test_bad_input_raises_the_commands_one_line_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(ValueError) as e:
        scalesearch.search(*overrides, run_dir=tmp_path / "run")
    assert isinstance(e.value, UserError) and message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_search_from_python_is_the_commands_run_and_resumes(tmp_path):
    """A real run (Ray, Tune trials, real Hydra composition) in a fresh interpreter, as a notebook would call it;
    then the same call with resume=true: the result is read again and nothing trains twice."""
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import json, pathlib
        import scalesearch
        overrides, run = {SMALL!r}, pathlib.Path({str(run)!r})
        r = scalesearch.search(*overrides, run_dir=run)
        first = (run / "results.csv").read_text()  # a training run again has another trial id and finish time
        again = scalesearch.search(*overrides, "resume=true", run_dir=run)
        c, c2 = r.coefficients, again.coefficients
        print(json.dumps({{"type": type(r).__name__, "coefficients": [c.alpha, c.beta, c.gamma],
                           "again": [c2.alpha, c2.beta, c2.gamma], "decided": r.decided, "headline": r.headline,
                           "summary": r.summary.read_text().splitlines()[0], "run_dir": str(r.run_dir),
                           "shares": r.shares is not None, "retrained": (run / "results.csv").read_text() != first,
                           "rows": len(first.splitlines()) - 1}}))
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-4000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    best = json.loads((run / "best.json").read_text())
    assert out["type"] == "SearchResult" and out["run_dir"] == str(run)
    assert out["coefficients"] == [best["alpha"], best["beta"], best["gamma"]] == out["again"]
    assert out["decided"] == best["decided"] and out["headline"] == best["headline"] and out["shares"]
    assert out["summary"] == (run / "summary.md").read_text().splitlines()[0]
    # progress on stderr (no logging was set up), and the resume trained nothing
    assert "run directory: " in p.stderr and "(resumed)" in p.stderr
    assert not out["retrained"] and out["rows"] == 2 * 3  # 2 candidates × 3 seeds, each trained once


def test_the_builders_check_their_input_alike_and_build_the_same_network():
    """Issue 34: every builder (ModelSpec/StageSpec themselves, so build_model, EfficientNet, to_torchvision and the
    dict form) refuses the same bad input with one line naming the value, and what one builds the other builds."""
    import torch

    from scalesearch import B0, ModelSpec, StageSpec, build_model, count_params, to_torchvision

    for make, line in [(lambda: ModelSpec(stages=()), r"^stages=\(\); allowed: a non-empty tuple of StageSpec"),
                       (lambda: StageSpec(1, 3, 1, 16, 0), r"^repeats=0; allowed: an integer >= 1"),
                       (lambda: StageSpec(1, 3, 1, 16, 1, se_ratio=-1), r"^se_ratio=-1; allowed: a number >= 0"),
                       (lambda: ModelSpec(stages=B0.stages, dropout=1.5), r"^dropout=1.5; allowed: a number in "),
                       (lambda: build_model("b0", num_classes=0), r"^EfficientNet: num_classes=0; allowed: an integer"),
                       (lambda: to_torchvision(B0, num_classes=0), r"^to_torchvision: num_classes=0; allowed"),
                       (lambda: build_model(spec={"stages": []}), r"'stages' is missing or empty")]:
        with pytest.raises(ValueError, match=line):
            make()
    small = ModelSpec(stages=(StageSpec(1, 3, 1, 16, 1), StageSpec(6, 3, 2, 24, 2)), head_channels=64)
    ours, theirs = build_model(spec=small, num_classes=10), to_torchvision(small.to_dict(), num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert ours.eval()(x).shape == theirs.eval()(x).shape == (2, 10)
    assert count_params(ours) == sum(p.numel() for p in theirs.parameters())
    assert StageSpec(1, 3, 1, 16.0, 1).out_channels == 16 and isinstance(StageSpec(1, 3, 1, 16.0, 1).out_channels, int)
