"""A search against a real multi-node Ray cluster (head + worker on 127.0.0.1) via cluster.address."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, run_cli
from scalesearch.results import read_results

RAY = str(Path(sys.executable).parent / "ray")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """`ray start --head` + one `ray start --address` worker, 1 CPU each; stopped at the end."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_search_runs_on_both_nodes_of_a_cluster(ray_cluster, tmp_path):
    address, env = ray_cluster
    rc, out, err = run_cli("search_main", f"cluster.address={address}", "search.max_points=4", *TINY,
                           f"hydra.run.dir={tmp_path}", env={"RAY_AUTH_MODE": "token"})
    assert rc == 0, err[-3000:]
    rows = read_results(tmp_path / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert len({r["node"] for r in rows}) == 2, "trials ran on the head and on the worker node"
