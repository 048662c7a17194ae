"""Reliability (issue 7): searches survive faults and lose nothing. Real processes, real Ray, real
files: the driver and a worker node are SIGKILLed, trials fail and diverge for real (the test-only
``proxy.fault`` hooks), artifacts are written while their writer is killed. docs/RELIABILITY.md maps
every fault to its test here (bad input: tests/apps/test_refusals.py).

The in-process searches (failures, determinism) share one local Ray started at the end of the
module; the subprocess tests before them start and kill their own.
"""

import ast
import csv
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers import RAY_ENV, ROOT, TINY, compose_search, kill_session, ray_cluster, start_app as _start, wait_for as _wait
from scalesearch.decide.results import read_table

PACKAGE = ROOT / "scalesearch"


# ---------------------------------------------------------------- helpers
def _rows(run_dir: Path) -> list[dict]:
    return read_table(run_dir / "results.csv")


def _n_ok(run_dir):
    return lambda: sum(r["status"] == "ok" for r in _rows(run_dir))


# ---------------------------------------------------------------- 3. worker node lost
@pytest.mark.slow
def test_worker_node_lost_mid_search_trials_rescheduled(tmp_path):
    """A head + one worker node (`ray start`, 1 CPU each, on 127.0.0.1); the worker node's whole
    process tree is SIGKILLed while it trains a trial: the trial fails, is retried on the head
    (trials.max_failures=1) and the search completes with every trial ok exactly once.

    The cluster lives in its own --temp-dir, so /tmp/ray/ray_current_cluster is never pointed at
    it (no other Ray on this machine can join it or, once it is gone, hang on it), and it is
    stopped by killing its own processes (not `ray stop`, which stops every Ray here)."""
    run_dir, log = tmp_path / "run", tmp_path / "search.log"
    with ray_cluster(tmp_path) as (address, worker):
        p = _start([f"cluster.address={address}", f"cluster.storage={tmp_path / 'storage'}", "search.max_points=3", "search.n_seeds=1", "trials.max_failures=1",
                    "proxy.epochs=3", "proxy.eval_every=1", "proxy.fault.epoch_sleep=1",
                    "verbose=0", *[o for o in TINY if not o.startswith(("proxy.epochs", "search.n_seeds"))],
                    f"hydra.run.dir={run_dir}"], log, env=RAY_ENV)
        try:
            def on_both_nodes():
                running = {r["node"]: r for r in _rows(run_dir) if r["status"] == "running" and r["node"]}
                return running if len(running) == 2 else None

            running = _wait(on_both_nodes, p, log, 240, "trials running on both nodes")
            leftover = kill_session(worker.pid)
            assert not leftover, f"worker node processes still alive: {leftover}"
            assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
        finally:
            kill_session(p.pid)

    rows = _rows(run_dir)
    assert sorted(r["index"] for r in rows) == [0, 1, 2], "every trial exactly once"
    assert all(r["status"] == "ok" for r in rows), [(r["index"], r["status"], r["error"]) for r in rows]
    survivors = {r["node"] for r in rows}
    assert len(survivors) == 1, "after the loss every trial ended on the one remaining node"
    lost_node = (set(running) - survivors).pop()
    lost = next(r for r in rows if r["index"] == running[lost_node]["index"])
    assert lost["failures"] >= 1, "the trial on the lost node failed and was retried"
    assert (run_dir / "best.json").exists()


@pytest.mark.slow
def test_a_node_then_the_driver_killed_mid_race_resumed_against_the_same_cluster(tmp_path):
    """A race (2 candidates × 3 seeds, rungs 1 and 2) on a head + one worker node: the worker node's process tree
    is SIGKILLed once each node has finished a rung-1 training (rung 1 still going on), then the driver's whole session once a rung-2 training has
    finished; the same command with resume=true against the same cluster (the head alone now) finishes the race.
    Nothing lost, nothing trained twice (every training finished before the driver's kill keeps its trial id),
    and every rung-2 training continues its trunk — those the lost node saved too (they live with the driver)."""
    run_dir, log = tmp_path / "run", tmp_path / "race.log"
    with ray_cluster(tmp_path) as (address, worker):
        args = [f"cluster.address={address}", f"cluster.storage={tmp_path / 'storage'}", "search=race",
                "search.rungs=[1,2]", "search.max_seeds=3", "search.max_points=2", "proxy.fault.epoch_sleep=1",
                # a retry Ray places before it has marked the killed node dead fails there again (seen once in a
                # loaded CI run: the row ended `error`); the subject here is what is kept, not Ray's detection time
                "trials.max_failures=2", "verbose=0", *[o for o in TINY if not o.startswith("search.n_seeds")], f"hydra.run.dir={run_dir}"]
        p = _start(args, log, env=RAY_ENV)
        try:
            def both_nodes_done_one_and_rung_1_goes_on():
                done = [r["node"] for r in _rows(run_dir) if r["status"] == "ok"]
                return set(done) if len(set(done)) == 2 and len(done) < 6 else None

            running = _wait(both_nodes_done_one_and_rung_1_goes_on, p, log, 240,
                            "a rung-1 training finished on each node, rung 1 not yet over")
            assert not kill_session(worker.pid), "worker node processes still alive"
            _wait(lambda: any(r["status"] == "ok" and float(r["rung"]) == 2 for r in _rows(run_dir)), p, log, 400,
                  "a finished rung-2 training")
        finally:
            assert not kill_session(p.pid), "driver processes still alive"
            p.wait()
        before = {r["key"]: r["trial_id"] for r in _rows(run_dir) if r["status"] == "ok"}
        resumed = _start([*args, "resume=true"], log, env=RAY_ENV)
        try:
            assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
        finally:
            kill_session(resumed.pid)
    rows = _rows(run_dir)
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows), \
        [(r["key"], r["status"], r["failures"], r["error"][:300]) for r in rows if r["status"] != "ok"]
    assert all(before[r["key"]] == r["trial_id"] for r in rows if r["key"] in before), "trained twice"
    assert len(before) < 12, "the driver was killed before the race ended"
    trained_on = {(r["candidate"], r["seed"]): r["node"] for r in rows if float(r["rung"]) == 1}
    top = [r for r in rows if float(r["rung"]) == 2]
    assert all(int(r["continued_from"]) > 0 for r in top), [(r["key"], r["continued_from"]) for r in top]
    lost = set(running) - {r["node"] for r in rows if r["key"] not in before}
    assert any(trained_on[(r["candidate"], r["seed"])] in lost for r in top), "no trunk of the lost node continued"
    assert json.loads((run_dir / "best.json").read_text())["race"]["spent"] > 0


# ---------------------------------------------------------------- 4. atomic artifacts
def test_interrupted_atomic_write_keeps_the_old_complete_file(tmp_path, monkeypatch):
    """A write that dies midway (in the data write, or before the rename) leaves the previous
    best.json / family.json untouched and no temp file behind."""
    from scalesearch import io as sio
    from scalesearch.apps.generate import write_family
    from scalesearch.scaling.coefficients import PAPER
    from scalesearch.scaling.scaler import family

    best = tmp_path / "best.json"
    sio.atomic_write_json(best, {"alpha": 1.2, "note": "old"})
    members = family(PAPER, base_resolution=32, phis=[0, 1], num_classes=10)
    write_family(members, tmp_path, "old family")
    old_best, old_family = best.read_bytes(), (tmp_path / "family.json").read_bytes()

    real_fdopen = os.fdopen

    class Crashing:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            self.f.write(data[: len(data) // 2])  # half of the bytes reach the disk, then the "crash"
            self.f.flush()
            raise OSError("disk died mid-write")

    monkeypatch.setattr(sio.os, "fdopen", lambda fd, mode: Crashing(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="mid-write"):
        sio.atomic_write_json(best, {"alpha": 1.3, "note": "new " * 1000})
    with pytest.raises(OSError, match="mid-write"):
        write_family(members[:1], tmp_path, "new family")
    monkeypatch.setattr(sio.os, "fdopen", real_fdopen)

    class Killed(BaseException):
        pass

    def no_rename(src, dst):
        raise Killed("killed before the rename")

    monkeypatch.setattr(sio.os, "replace", no_rename)
    with pytest.raises(Killed):
        sio.atomic_write_json(best, {"alpha": 1.4})
    assert best.read_bytes() == old_best and json.loads(best.read_text())["note"] == "old"
    assert (tmp_path / "family.json").read_bytes() == old_family
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "family.json", "family.md", "specs"]
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == ["b0.json", "b1.json"]


WRITER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sio", sys.argv[1])
sio = importlib.util.module_from_spec(spec); spec.loader.exec_module(sio)
big = [{"name": f"b{i}", "depth": i * 1.2, "layers": list(range(200))} for i in range(2000)]
n = 0
while True:
    n += 1
    for name in ("best.json", "family.json"):
        sio.atomic_write_json(f"{sys.argv[2]}/{name}", {"version": n, "entries": big[: 1000 + n % 1000]})
    if n == 2:
        print("written", flush=True)
"""


def test_killed_writer_never_leaves_a_truncated_artifact(tmp_path):
    """A process rewriting ~2 MB best.json / family.json in a loop is SIGKILLed at random moments:
    each file is always a complete JSON document (the one of the last finished write)."""
    import random

    rng = random.Random(0)
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(PACKAGE / "io.py"), str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "written"
        time.sleep(rng.uniform(0.05, 0.5))
        p.kill()
        p.wait()
        for name in ("best.json", "family.json"):
            doc = json.loads((tmp_path / name).read_text())  # raises on a truncated file
            assert len(doc["entries"]) == 1000 + doc["version"] % 1000


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield node, (f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")


def _modules():
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def test_artifacts_are_only_written_through_scalesearch_io():
    """No module but io.py writes a file itself: no open(..., "w"), write_text/bytes, json.dump,
    to_csv, or savefig/torch.save to a path (to an in-memory buffer is fine: io writes it)."""
    offenders = []
    for path, tree in _modules():
        if path.name == "io.py":
            continue
        buffers = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                   and (getattr(n.value.func, "attr", None) or getattr(n.value.func, "id", None)) == "BytesIO"
                   for t in n.targets if isinstance(t, ast.Name)}
        for node, name in _calls(tree):
            where = f"{path.name}:{node.lineno}"
            if name == "open":
                mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
                if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                    offenders.append(f"{where} open(..., {mode.value!r})")
            elif name in ("write_text", "write_bytes", "dump", "to_csv", "savetxt"):
                offenders.append(f"{where} {name}(...)")
            elif name in ("savefig", "save") and node.args:
                # fig.savefig(f), im.save(f), np.save(f, a); torch.save(obj, f)
                torch_save = getattr(getattr(node.func, "value", None), "id", None) == "torch"
                target = node.args[1] if torch_save and len(node.args) > 1 else node.args[0]
                if not (isinstance(target, ast.Name) and target.id in buffers):
                    offenders.append(f"{where} {name}(...) to a path")
    assert not offenders, "artifacts written around scalesearch.io (not atomic): " + ", ".join(offenders)


# ---------------------------------------------------------------- 6. safety
def test_every_torch_load_uses_weights_only():
    loads = [(p.name, n.lineno, n) for p, tree in _modules() for n, name in _calls(tree)
             if name == "load" and getattr(getattr(n.func, "value", None), "id", None) == "torch"]
    bad = [f"{f}:{line}" for f, line, n in loads
           if not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                      for k in n.keywords)]
    assert not bad, f"torch.load without weights_only=True (unpickles arbitrary code): {bad}"


def test_archive_extraction_refuses_path_traversal(tmp_path):
    from scalesearch.train import archives as data

    if not hasattr(data, "safe_extract"):
        pytest.skip("scalesearch.train.archives has no safe_extract: archives (.tar/.zip dataset roots) are not supported yet")
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("owned\n")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="train/a/ok.txt")
        tar.add(payload, arcname="../evil.txt")
    dest = tmp_path / "out" / "dataset"
    dest.mkdir(parents=True)
    with pytest.raises(ValueError, match="evil.txt"):
        data.safe_extract(evil, dest)
    assert not (tmp_path / "out" / "evil.txt").exists()


def test_dashboard_off_by_default_and_bound_to_localhost(monkeypatch):
    """init_ray's real kwargs to ray.init (the call itself is captured: no Ray starts)."""
    import ray

    from scalesearch.run.session import init_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    assert init_ray(compose_search().cluster)
    assert init_ray(compose_search("cluster.include_dashboard=true").cluster)
    off, on = calls
    assert off["include_dashboard"] is False
    assert on["include_dashboard"] is True and on["dashboard_host"] == "127.0.0.1"
    # a new local Ray, never whatever `ray start` cluster /tmp/ray/ray_current_cluster names
    assert off["address"] == on["address"] == "local"


# ---------------------------------------------------------------- resume: which run dir
def test_resume_finds_the_newest_run_with_the_same_settings(tmp_path):
    """resume=true without hydra.run.dir continues the newest unfinished run with these settings, else the newest
    finished one (whose missing stages then run); a run dir with other settings or none is refused, naming the
    setting that differs."""
    import dataclasses

    from scalesearch.io import atomic_write_json
    from scalesearch.run.resume import find_resumable, prepare_run_dir

    cfg = compose_search("resume=true", *TINY)
    other = compose_search("resume=true", "seed=7", *TINY)
    runs = {"a": (cfg, "running"), "b": (cfg, "running"), "c": (cfg, "complete"), "d": (other, "running")}
    for i, (name, (c, status)) in enumerate(runs.items()):
        (tmp_path / name).mkdir()
        atomic_write_json(tmp_path / name / "search.json", {"status": status, "config": dataclasses.asdict(c)})
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert find_resumable(tmp_path, cfg) == tmp_path / "b"  # newest unfinished with this config (c is complete)
    # a different resource setting is not a different search; a different validation stage is a later stage
    assert find_resumable(tmp_path, compose_search("resume=true", "trials.cpus_per_trial=2", "validate.top_k=3",
                                                   *TINY)) == tmp_path / "b"
    for name in ("a", "b"):
        json.loads((tmp_path / name / "search.json").read_text())
        atomic_write_json(tmp_path / name / "search.json", {"status": "complete", "config": dataclasses.asdict(cfg)})
    assert find_resumable(tmp_path, cfg) == tmp_path / "b"  # all finished: the newest finished one
    assert find_resumable(tmp_path, compose_search("resume=true", "seed=3", *TINY)) is None
    assert prepare_run_dir(cfg, tmp_path / "a")["status"] == "complete"
    with pytest.raises(ValueError, match=r"other settings \(seed: 7 there, 0 here\)"):
        prepare_run_dir(cfg, tmp_path / "d")
    with pytest.raises(ValueError, match="already holds a search; allowed: resume=true"):
        prepare_run_dir(compose_search(*TINY), tmp_path / "a")
    with pytest.raises(ValueError, match="holds no search with these settings"):
        prepare_run_dir(cfg, tmp_path / "fresh")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "search.json").write_text('{"status": "runn')  # truncated
    with pytest.raises(ValueError, match=r"e/search.json is not readable JSON"):
        prepare_run_dir(cfg, tmp_path / "e")


# ---------------------------------------------------------------- in-process searches (one local Ray)
@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def faulty_search_twice(local_ray, tmp_path_factory):
    """The same search, run twice: candidates A (trials 0, 1: seeds 0, 1) and B (trials 2, 3);
    trial 2 diverges, trial 3 raises on every attempt (max_failures=2)."""
    from scalesearch.pipeline import run_search

    cfg = compose_search("search.max_points=2", "search.n_seeds=2", "proxy.fault.diverge_trials=[2]",
                         "proxy.fault.fail_trials=[3]", "trials.max_failures=2", *TINY)
    runs = []
    for name in ("one", "two"):
        run_dir = tmp_path_factory.mktemp(name)
        runs.append((run_dir, run_search(cfg, run_dir)))
    return runs


@pytest.mark.slow
def test_failing_trial_is_retried_then_recorded_and_diverged_never_best(faulty_search_twice):
    run_dir, best = faulty_search_twice[0]
    rows = {r["index"]: r for r in read_table(run_dir / "results.csv")}
    assert sorted(rows) == [0, 1, 2, 3]
    failed, diverged, ok = rows[3], rows[2], [rows[0], rows[1]]
    assert failed["status"] == "error" and "injected failure in trial 3" in failed["error"]
    assert failed["failures"] == 3, "the first attempt and max_failures=2 retries all failed"
    assert diverged["status"] == "diverged" and diverged["failures"] == 0
    assert all(r["status"] == "ok" and r["failures"] == 0 for r in ok)
    # the search went on, and the best is the candidate of the ok trials, never the diverged one
    assert best["candidate"] == ok[0]["candidate"] != diverged["candidate"]
    assert json.loads((run_dir / "best.json").read_text())["n_ok"] == 2
    summary = (run_dir / "summary.md").read_text()
    assert "injected failure in trial 3" in summary and "| diverged |" in summary and "| error |" in summary


@pytest.mark.slow
def test_same_seed_same_results(faulty_search_twice):
    """The same search twice on CPU: results.csv identical but for timing/identity columns. The two
    seeds of a candidate differ, so the comparison would see a change of seed."""
    varying = {"trial_id", "wall_s", "images_per_s", "finished_at", "node", "latency_ms", "train_step_ms"}
    tables = []
    for run_dir, _ in faulty_search_twice:
        with open(run_dir / "results.csv", newline="") as f:
            tables.append([{k: v for k, v in r.items() if k not in varying} for r in csv.DictReader(f)])
    assert tables[0] == tables[1]
    seed0, seed1 = tables[0][:2]
    assert (seed0["seed"], seed1["seed"]) == ("0", "1") and seed0["loss"] != seed1["loss"]
    # the same but for the wall time and the run directory named in the command that extends the run
    bests = [json.loads((run_dir / "best.json").read_text().replace(str(run_dir), "RUN"))
             for run_dir, _ in faulty_search_twice]
    for b in bests:
        b.pop("search_wall_s")
    assert bests[0] == bests[1]
