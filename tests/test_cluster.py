"""A search against a real multi-node Ray cluster (head + worker on 127.0.0.1) via cluster.address."""

import pytest

from conftest import RAY_ENV, TINY, ray_cluster, run_cli
from scalesearch.results import read_results


@pytest.mark.slow
def test_search_runs_on_both_nodes_of_a_cluster(tmp_path):
    with ray_cluster(tmp_path) as (address, _worker):
        rc, out, err = run_cli("search_main", f"cluster.address={address}", "search.max_points=4", *TINY,
                               f"hydra.run.dir={tmp_path / 'run'}", env=RAY_ENV)
    assert rc == 0, err[-3000:]
    rows = read_results(tmp_path / "run" / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert len({r["node"] for r in rows}) == 2, "trials ran on the head and on the worker node"
