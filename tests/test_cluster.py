"""Every stage on a real multi-node Ray cluster (head + worker on 127.0.0.1), joined through $RAY_ADDRESS with
cluster.address unset (as a run inside a Ray job, or beside `ray start`, joins it); cluster.address itself:
tests/test_reliability.py."""

import pytest

from conftest import RAY_ENV, TINY, ray_cluster, run_cli
from scalesearch.results import read_table


@pytest.mark.slow
def test_every_stage_runs_on_both_nodes_of_a_cluster(tmp_path):
    """The search, the validation, the family and the ablation all go through the runner: their trainings land on
    the head and on the worker node."""
    run = tmp_path / "run"
    with ray_cluster(tmp_path) as (address, _worker):
        rc, out, err = run_cli("search_main", *TINY, "search.max_points=2",
                               "search.n_seeds=1", "validate.enabled=true", "validate.epochs_mult=1",
                               "family.train=true", "family.max_phi=2", "family.ablation=true", "family.ablation_phis=[1]",
                               f"hydra.run.dir={run}", env={**RAY_ENV, "RAY_ADDRESS": address})
    assert rc == 0, err[-3000:]
    assert f"Ray: joining {address} (RAY_ADDRESS (cluster.address unset))" in out + err
    for table, trained in (("results.csv", 2), ("validation.csv", 2), ("family_results.csv", 2),
                           ("ablation_results.csv", 3)):
        rows = [r for r in read_table(run / table) if not r.get("reused_from")]
        assert len(rows) >= trained and all(r["status"] == "ok" for r in rows), (table, rows)
        assert len({r["node"] for r in rows}) == 2, f"{table}: trainings ran on the head and on the worker node"


def test_an_unreachable_ray_address_in_the_environment_is_one_line_before_anything(tmp_path):
    """$RAY_ADDRESS naming a closed local port, cluster.address unset: one line naming the variable and what is
    allowed, a non-zero exit, no traceback, no search started."""
    run = tmp_path / "run"
    rc, out, err = run_cli("search_main", *TINY, f"hydra.run.dir={run}", env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert rc != 0 and "Traceback" not in out + err, err[-3000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalesearch: error: RAY_ADDRESS='127.0.0.1:1' is unreachable"), err
    assert "allowed:" in lines[0] and "unset RAY_ADDRESS" in lines[0] and not (run / "search.json").exists()
