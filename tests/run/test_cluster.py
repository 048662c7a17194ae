"""Every stage on a real multi-node Ray cluster (head + worker on 127.0.0.1), joined through $RAY_ADDRESS with
cluster.address unset (as a run inside a Ray job, or beside `ray start`, joins it); cluster.address itself:
tests/run/test_reliability.py."""

import subprocess
from pathlib import Path

import pytest

from helpers import RAY_ENV, TINY, ray_cluster, run_cli
from scalesearch.decide.results import read_table


@pytest.mark.slow
def test_every_stage_runs_on_both_nodes_of_a_cluster(tmp_path):
    """The search, the validation, the family and the ablation all go through the runner: their trainings land on
    the head and on the worker node, Ray Tune's experiments in the declared ``cluster.storage`` (a folder of the
    run's own), nothing of Tune in the run directory. Without the storage, the same run on two nodes is refused
    in one line naming the setting before anything trains."""
    run, storage = tmp_path / "run", tmp_path / "storage"
    args = [*TINY, "search.max_points=2", "search.n_seeds=1", "validate.enabled=true", "validate.epochs_mult=1",
            "family.train=true", "family.max_phi=2", "family.ablation=true", "family.ablation_phis=[1]"]
    with ray_cluster(tmp_path) as (address, _worker):
        refused = tmp_path / "refused"
        rc, out, err = run_cli("search_main", *args, f"hydra.run.dir={refused}", env={**RAY_ENV, "RAY_ADDRESS": address})
        lines = [x for x in err.splitlines() if x.startswith("scalesearch:")]
        assert rc == 2 and len(lines) == 1 and lines[0].startswith(
            "scalesearch: error: cluster.storage=null but the Ray cluster has 2 nodes"), err[-3000:]
        assert not (refused / "results.csv").exists() and not (refused / "tune").exists()
        rc, out, err = run_cli("search_main", *args, f"hydra.run.dir={run}", f"cluster.storage={storage}",
                               env={**RAY_ENV, "RAY_ADDRESS": address})
    assert rc == 0, err[-3000:]
    assert f"Ray: joining {address} (RAY_ADDRESS (cluster.address unset))" in out + err
    assert not (run / "tune").exists(), "Tune's experiments went to the run directory"
    [own] = storage.iterdir()
    assert own.name.startswith("run-") and {"search", "validation", "family"} <= {d.name for d in own.iterdir()}
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


def _namespaces_work(tmp: Path) -> str | None:
    """Why this machine cannot give a process its own view of a directory (a user + mount namespace), or None."""
    probe = tmp / "probe"
    probe.mkdir()
    try:
        p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs tmpfs {probe} && touch {probe}/x"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed: {e}"
    return None if p.returncode == 0 and not (probe / "x").exists() else f"unshare: {p.stderr.strip()[:200]}"


@pytest.mark.slow
def test_a_race_continues_its_trunks_on_nodes_that_cannot_see_the_run_directory(tmp_path):
    """Two worker nodes, each in its own mount namespace where the driver's run directory lies under an empty
    tmpfs (nodes without a shared filesystem), and a head without CPUs (every training on a worker node): every
    rung-2 training continues its trunk, whichever node trained rung 1, and the trunks lie in the driver's run
    directory — a trial reads and writes them only through the run's TrunkStore on the driver's node."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    if why := _namespaces_work(tmp_path):
        pytest.skip(f"needs a user + mount namespace to hide the run directory from a node ({why})")
    run = hidden / "run"
    hide = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", f'mount -t tmpfs tmpfs {hidden} && exec "$@"',
            "sh"]
    with ray_cluster(tmp_path, head_cpus=0, workers=2, worker_prefix=hide) as (address, _workers):
        rc, out, err = run_cli("search_main", "search=race", "proxy.epochs=1", "dataset.train_size=200",
                               "dataset.val_size=100", "proxy.batch_size=50", "dataset.image_size=32",
                               "family.train=false", "validate.enabled=false", "report.enabled=false",
                               "trials.measure_device_costs=false", "search.max_points=2", "search.rungs=[1,2]",
                               "search.max_seeds=3", f"hydra.run.dir={run}", f"cluster.storage={tmp_path / 'storage'}",
                               env={**RAY_ENV, "RAY_ADDRESS": address})
    assert rc == 0, err[-3000:]
    rows = read_table(run / "results.csv")
    top = [r for r in rows if r["rung"] == 2]
    assert top and all(r["status"] == "ok" for r in rows), rows
    assert len({r["node"] for r in rows}) == 2, "the trainings ran on both worker nodes"
    assert all(r["continued_from"] > 0 for r in top), [(r["key"], r["node"], r["continued_from"]) for r in top]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")), "the trunks lie in the driver's run directory"
