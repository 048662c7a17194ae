"""The constrained lattice, the Optuna define-by-run space, and how a space file is read."""

import math

import optuna
import pytest

from scalesearch import PAPER, Coefficients
from scalesearch.plan.space import CompoundSpace, Range, compound_spaces, load_space

GOOD = "alpha: {low: 1, high: 2}\nbeta: {low: 1, high: 1.5}\ngamma: {low: 1, high: 1.5}\n"


def test_compound_lattice_matches_the_issue():
    s = load_space("compound")
    assert (s.alpha, s.beta, s.gamma, s.step, s.target, s.tolerance) == (
        Range(1.0, 2.0), Range(1.0, 1.5), Range(1.0, 1.5), 0.05, 2.0, 0.1)
    pts = s.lattice()
    # 108 in the issue; (1.9, 1.0, 1.0) has product exactly 1.9 = target - tolerance and is kept
    # here (the boundary is inclusive; a plain float comparison loses it to rounding noise)
    assert len(pts) == 109
    assert Coefficients(1.9, 1.0, 1.0) in pts and PAPER in pts
    assert all(abs(c.product - 2.0) <= 0.1 + 1e-9 for c in pts)
    assert len(set(pts)) == len(pts)
    # an independent count of the same lattice: 21 x 11 x 11 points, |product - 2| <= 0.1
    grid = [(1 + 0.05 * i, 1 + 0.05 * j, 1 + 0.05 * k) for i in range(21) for j in range(11) for k in range(11)]
    assert sum(abs(a * b * b * g * g - 2) <= 0.1 + 1e-9 for a, b, g in grid) == 109


def test_range_values_are_inclusive_and_rounded():
    assert Range(1.0, 1.5).values(0.05) == [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5]
    assert Range(1.0, 1.0).values(0.05) == [1.0]
    assert Range(1.0, 1.12).values(0.05) == [1.0, 1.05, 1.1]


def test_grid_thinning_keeps_paper_and_spreads():
    s = load_space("compound")
    g = s.grid(max_points=6)
    assert len(g) == 6 and PAPER in g
    assert Coefficients(2.0, 1.0, 1.0) in g  # the pure-depth corner
    assert g == sorted(g, key=lambda c: (c.alpha, c.beta, c.gamma))
    assert len(s.grid(thin=4)) == 28 and PAPER in s.grid(thin=4)
    assert s.lattice()[0] in s.grid(max_points=3, include_paper=False)  # without the paper: from the first point
    assert s.grid() == s.lattice()
    with pytest.raises(ValueError, match="thin=0"):
        s.grid(thin=0)
    with pytest.raises(ValueError, match="max_points=0"):
        s.grid(max_points=0)


def test_impossible_space_rejected():
    with pytest.raises(ValueError, match="never reaches"):
        CompoundSpace(Range(1, 1.1), Range(1, 1.1), Range(1, 1.1))
    with pytest.raises(ValueError, match="alpha range"):
        CompoundSpace(Range(0.5, 1.1), Range(1, 1.5), Range(1, 1.5))
    with pytest.raises(ValueError, match="step=0"):
        CompoundSpace(Range(1, 2), Range(1, 1.5), Range(1, 1.5), step=0)
    with pytest.raises(ValueError, match="target=1"):
        CompoundSpace(Range(1, 2), Range(1, 1.5), Range(1, 1.5), target=1)
    with pytest.raises(ValueError, match="no lattice point"):
        CompoundSpace(Range(1.1, 2), Range(1, 1.5), Range(1, 1.5), step=0.5, tolerance=0.01).lattice()  # 1.1, 1.6 x ...


def test_load_space_errors(tmp_path):
    with pytest.raises(ValueError, match="search.space='nope' not found; allowed: compound"):
        load_space("nope")
    with pytest.raises(ValueError, match="search.space='blocks' is a block-level .NAS. space"):
        load_space("blocks")
    assert compound_spaces() == ["compound"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "foo: 1\n")
    with pytest.raises(ValueError, match="unknown keys \\['foo'\\]"):
        load_space(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_space(str(empty))


@pytest.mark.parametrize(
    "content, message",
    [
        ("alpha: {low: 1.0, high: [", r"is not valid YAML at line 1"),
        (b"\xff\xfe\x00alpha", r"is not valid YAML"),
        ("- 1\n- 2\n", r"is empty or not a mapping"),
        ("alpha: {low: x, high: 2}\nbeta: {low: 1, high: 1.5}\ngamma: {low: 1, high: 1.5}\n", r"need numeric low and high"),
        ("alpha: {low: 1, high: 2}\nbeta: {low: 1, high: 1.5}\n", r"need numeric low and high.*KeyError: 'gamma'"),
        (GOOD + "step: fast\n", r"must be numbers"),
        ("alpha: {low: 2, high: 1}\nbeta: {low: 1, high: 1.5}\ngamma: {low: 1, high: 1.5}\n",
         r"broken.yaml: alpha range \[2.0, 1.0\] is invalid"),
    ],
    ids=["malformed-yaml", "not-utf8", "a-list", "non-numeric", "missing-gamma", "step", "reversed-range"],
)
def test_malformed_space_file_is_a_one_line_error_naming_the_file(tmp_path, content, message):
    p = tmp_path / "broken.yaml"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message) as e:
        load_space(str(p))
    text = str(e.value)
    assert "\n" not in text and ("broken.yaml" in text or "space broken:" in text)
    assert e.value.__cause__ is None or isinstance(e.value.__cause__, ValueError)


def test_a_space_file_by_path_loads(tmp_path):
    p = tmp_path / "narrow.yaml"
    p.write_text("alpha: {low: 1.1, high: 1.3}\nbeta: {low: 1.0, high: 1.2}\ngamma: {low: 1.0, high: 1.3}\n"
                 "step: 0.1\ntarget: 2.0\ntolerance: 0.2\ndescription: small\n")
    s = load_space(str(p))
    assert s.name == "narrow" and s.step == 0.1 and s.tolerance == 0.2
    assert all(abs(c.product - 2.0) <= 0.2 + 1e-9 for c in s.lattice())


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


def test_bounds_keep_the_derived_gamma_in_range():
    s = load_space("compound")
    lo, hi = s.alpha_bounds()
    assert (lo, hi) == (1.0, 2.0)  # 2 / (1.5^2 * 1.5^2) < 1: alpha's own range binds
    for a in (lo, 1.2, 1.5, hi):
        b_lo, b_hi = s.beta_bounds(a)
        for b in (b_lo, (b_lo + b_hi) / 2, b_hi):
            g = s.derive_gamma(a, b)
            assert 1.0 - 1e-9 <= g <= 1.5 + 1e-9 and a * b * b * g * g == pytest.approx(2.0)
    assert s.derive_gamma(1.2, 1.1) == pytest.approx(math.sqrt(2 / (1.2 * 1.21)))
