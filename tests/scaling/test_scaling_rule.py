"""The scaling rule has one owner (:class:`scalesearch.scaling.scaler.Scaler`, issue 20), and moving it there changed no
output: the grid's candidates (measured and nominal, MACs and activations, two bases and pixel steps), the families
(formula under both constraints, two bases, three coefficient sets, below B0; the official table) and the
ablation's variants and jobs equal ``tests/golden/scaling_rule.json``, written by the code *before* the Scaler
(``Planner``, ``scaling.family`` and ``ablation_variants`` as they were at commit 168bea4). The only new fields are
a member's ``cost`` and ``cost_ratio``. Plain Python and the meta device: no training, deterministic."""

import json
from pathlib import Path

import pytest

from scalesearch.run.ablation import ablation_variants
from scalesearch.config import ProxyConfig
from scalesearch.plan.jobs import ablation_jobs, select_grid
from scalesearch.scaling.coefficients import PAPER, Coefficients
from scalesearch.scaling.scaler import Scaler
from scalesearch.plan.space import load_space
from scalesearch.scaling.spec import B0

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "scaling_rule.json").read_text())
SPACE = load_space("compound")
COEFFS = {"paper": PAPER, "found": Coefficients(1.3, 1.05, 1.15), "wide": Coefficients(1.0, 1.2, 1.15)}
NEW_MEMBER_FIELDS = ("cost", "cost_ratio")


def _plain(x):
    return json.loads(json.dumps(x, sort_keys=True, default=str))


@pytest.mark.parametrize("key", sorted(GOLDEN["grids"]))
def test_the_grid_is_what_it_was(key):
    constraint, cost, base, mult = key.split("-")
    scaler = Scaler(B0, int(base), 10, 3, constraint, cost, SPACE.target, 0.1, (SPACE.gamma.low, SPACE.gamma.high),
                    int(mult), "total")
    ok, bad = select_grid(SPACE, scaler, max_points=8)
    assert _plain({"ok": ok, "infeasible": bad}) == GOLDEN["grids"][key]


@pytest.mark.parametrize("key", sorted(GOLDEN["families"]))
def test_the_family_is_what_it_was(key):
    label, constraint, *rest = key.split("-")
    if constraint == "official":
        members = Scaler(base_resolution=224, num_classes=1000).family(COEFFS[label], range(8), mode="official")
    else:
        base, mult = map(int, rest)
        scaler = Scaler(B0, base, 10, 3, constraint, gamma_range=(1.0, 1.5), tolerance=0.1, resolution_multiple=mult,
                        depth_rounding="total" if base == 40 else "stage")
        members = scaler.family(COEFFS[label], [-1, 0, 1, 2, 3])
    got = [{k: v for k, v in m.to_dict().items() if k not in NEW_MEMBER_FIELDS} for m in members]
    assert _plain(got) == GOLDEN["families"][key]
    # the member's own cost: MACs by default, its ratio the MACs ratio
    assert all(m.cost == "macs" and m.cost_ratio == m.macs_ratio for m in members)


def test_the_ablation_is_what_it_was():
    scaler = Scaler(B0, 40, 10, 3, resolution_multiple=1, depth_rounding="total")
    v = ablation_variants(scaler, (1, 2), {"paper": PAPER})
    jobs = ablation_jobs(v, [0, 1], ProxyConfig(), "fp", scaler)
    assert _plain({"variants": v, "jobs": jobs}) == GOLDEN["ablation"]
