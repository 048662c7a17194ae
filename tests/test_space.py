"""The constrained lattice and the Optuna define-by-run space."""

import optuna
import pytest

from scalesearch import PAPER, Coefficients
from scalesearch.space import CompoundSpace, Range, load_space


def test_compound_lattice_matches_the_issue():
    s = load_space("compound")
    pts = s.lattice()
    # 108 in the issue; (1.9, 1.0, 1.0) has product exactly 1.9 = target - tolerance and is kept
    # here (the boundary is inclusive; a plain float comparison loses it to rounding noise)
    assert len(pts) == 109
    assert Coefficients(1.9, 1.0, 1.0) in pts and PAPER in pts
    assert all(abs(c.product - 2.0) <= 0.1 + 1e-9 for c in pts)
    assert len(set(pts)) == len(pts)


def test_grid_thinning_keeps_paper_and_spreads():
    s = load_space("compound")
    g = s.grid(max_points=6)
    assert len(g) == 6 and PAPER in g
    assert Coefficients(2.0, 1.0, 1.0) in g  # the pure-depth corner
    assert len(s.grid(thin=4)) == 28 and PAPER in s.grid(thin=4)
    with pytest.raises(ValueError, match="thin=0"):
        s.grid(thin=0)


def test_impossible_space_rejected():
    with pytest.raises(ValueError, match="never reaches"):
        CompoundSpace(Range(1, 1.1), Range(1, 1.1), Range(1, 1.1))
    with pytest.raises(ValueError, match="alpha range"):
        CompoundSpace(Range(0.5, 1.1), Range(1, 1.5), Range(1, 1.5))


def test_load_space_errors(tmp_path):
    with pytest.raises(ValueError, match="search.space='nope' not found; allowed: compound"):
        load_space("nope")
    with pytest.raises(ValueError, match="search.space='blocks' is a block-level .NAS. space"):
        load_space("blocks")
    bad = tmp_path / "bad.yaml"
    bad.write_text("alpha: {low: 1, high: 2}\nbeta: {low: 1, high: 1.5}\ngamma: {low: 1, high: 1.5}\nfoo: 1\n")
    with pytest.raises(ValueError, match="unknown keys \\['foo'\\]"):
        load_space(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_space(str(empty))


def test_define_by_run_stays_on_the_surface_and_in_range():
    s = load_space("compound")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        p = s.define_by_run(trial)
        c = Coefficients(p["alpha"], p["beta"], p["gamma"])
        assert 1.0 <= p["alpha"] <= 2.0 and 1.0 <= p["beta"] <= 1.5 and 1.0 <= p["gamma"] <= 1.5
        assert c.product == pytest.approx(2.0, abs=2e-3)
        study.tell(trial, p["alpha"])
