"""Every stage on a real multi-node Ray cluster (head + worker on 127.0.0.1) via cluster.address."""

import pytest

from conftest import RAY_ENV, TINY, ray_cluster, run_cli
from scalesearch.results import read_table


@pytest.mark.slow
def test_every_stage_runs_on_both_nodes_of_a_cluster(tmp_path):
    """The search, the validation, the family and the ablation all go through the runner: their trainings land on
    the head and on the worker node."""
    run = tmp_path / "run"
    with ray_cluster(tmp_path) as (address, _worker):
        rc, out, err = run_cli("search_main", f"cluster.address={address}", *TINY, "search.max_points=2",
                               "search.n_seeds=1", "validate.enabled=true", "validate.epochs_mult=1",
                               "family.train=true", "family.max_phi=2", "family.ablation=true", "family.ablation_phis=[1]",
                               f"hydra.run.dir={run}", env=RAY_ENV)
    assert rc == 0, err[-3000:]
    for table, trained in (("results.csv", 2), ("validation.csv", 2), ("family_results.csv", 2),
                           ("ablation_results.csv", 3)):
        rows = [r for r in read_table(run / table) if not r.get("reused_from")]
        assert len(rows) >= trained and all(r["status"] == "ok" for r in rows), (table, rows)
        assert len({r["node"] for r in rows}) == 2, f"{table}: trainings ran on the head and on the worker node"
