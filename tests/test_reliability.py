"""Reliability (issue 7): searches survive faults and lose nothing. Real processes, real Ray, real
files: the driver and a worker node are SIGKILLed, trials fail and diverge for real (the test-only
``proxy.fault`` hooks), artifacts are written while their writer is killed. docs/RELIABILITY.md maps
every fault to its test here (bad input: tests/test_bad_input.py).

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

from conftest import RAY_ENV, ROOT, TINY, compose_search, kill_session, ray_cluster
from scalesearch.results import read_results

SEARCH = [sys.executable, "-c", "from scalesearch.cli import search_main; search_main()"]
PACKAGE = ROOT / "scalesearch"


# ---------------------------------------------------------------- helpers
def _rows(run_dir: Path) -> list[dict]:
    try:
        return read_results(run_dir / "results.csv")
    except FileNotFoundError:
        return []


def _start(args, log: Path, env=None) -> subprocess.Popen:
    """A search CLI in its own session (so that it and everything it starts can be killed)."""
    e = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    e.update(env or {})
    with open(log, "ab") as out:
        return subprocess.Popen([*SEARCH, *args], cwd=ROOT, env=e, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait(predicate, proc: subprocess.Popen, log: Path, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the search ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()[-3000:]}")


def _n_ok(run_dir):
    return lambda: sum(r["status"] == "ok" for r in _rows(run_dir))


# ---------------------------------------------------------------- 1. driver killed
KILL_ARGS = ["search.max_points=4", "search.max_concurrent_trials=1", "proxy.fault.epoch_sleep=1", "verbose=0", *TINY]


@pytest.mark.slow
def test_driver_killed_twice_then_resumed_loses_and_reruns_nothing(tmp_path):
    """SIGKILL the driver (and every process it started) mid-search, resume in the same run dir,
    SIGKILL again, then resume from a fresh timestamped run dir beside it: the interrupted run is
    found and completed; every trial is in results.csv exactly once, and finished trials keep
    their trial_id and finished_at (they were not trained again)."""
    runs = tmp_path / "runs"
    first, fresh = runs / "2026-01-01_10-00-00", runs / "2026-01-01_11-00-00"
    log = tmp_path / "search.log"
    finished = {}
    for attempt, (run_dir, extra, kill_at) in enumerate([(first, [], 2), (first, ["resume=true"], 3)]):
        p = _start([*KILL_ARGS, f"hydra.run.dir={run_dir}", *extra], log)
        try:
            _wait(lambda: _n_ok(first)() >= kill_at, p, log, 240, f"{kill_at} finished trials (attempt {attempt})")
        finally:
            leftover = kill_session(p.pid)
            p.wait()
        assert not leftover, f"processes of the killed driver still alive: {leftover}"
        rows = _rows(first)
        ok = {r["trial_index"]: r for r in rows if r["status"] == "ok"}
        assert kill_at <= len(ok) < 4, "the driver was killed in the middle of the search"
        for i, r in finished.items():  # kept across the kill and the resume
            assert (ok[i]["trial_id"], ok[i]["finished_at"]) == (r["trial_id"], r["finished_at"])
        finished.update(ok)
        assert json.loads((first / "search.json").read_text())["status"] == "running"

    p = _start([*KILL_ARGS, f"hydra.run.dir={fresh}", "resume=true"], log)
    assert p.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert f"resuming the interrupted search in {first}" in log.read_text()
    assert not (fresh / "results.csv").exists() and not (fresh / "tune").exists()

    rows = _rows(first)
    assert sorted(r["trial_index"] for r in rows) == [0, 1, 2, 3], "every trial exactly once"
    assert len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] == "ok" for r in rows), [(r["trial_index"], r["status"], r["error"]) for r in rows]
    by_index = {r["trial_index"]: r for r in rows}
    for i, r in finished.items():
        assert (by_index[i]["trial_id"], by_index[i]["finished_at"]) == (r["trial_id"], r["finished_at"]), \
            f"trial {i} finished before a kill and was run again"
    assert json.loads((first / "search.json").read_text())["status"] == "complete"
    best = json.loads((first / "best.json").read_text())
    assert best["n_trials"] == 4 and best["n_ok"] == 4


# ---------------------------------------------------------------- 3. worker node lost
@pytest.mark.slow
def test_worker_node_lost_mid_search_trials_rescheduled(tmp_path):
    """A head + one worker node (`ray start`, 1 CPU each, on 127.0.0.1); the worker node's whole
    process tree is SIGKILLed while it trains a trial: the trial fails, is retried on the head
    (search.max_failures=1) and the search completes with every trial ok exactly once.

    The cluster lives in its own --temp-dir, so /tmp/ray/ray_current_cluster is never pointed at
    it (no other Ray on this machine can join it or, once it is gone, hang on it), and it is
    stopped by killing its own processes (not `ray stop`, which stops every Ray here)."""
    run_dir, log = tmp_path / "run", tmp_path / "search.log"
    with ray_cluster(tmp_path) as (address, worker):
        p = _start([f"cluster.address={address}", "search.max_points=3", "search.max_failures=1", "proxy.epochs=3",
                    "proxy.fault.epoch_sleep=1.5", "verbose=0", *[o for o in TINY if not o.startswith("proxy.epochs")],
                    f"hydra.run.dir={run_dir}"], log, env=RAY_ENV)
        try:
            def on_both_nodes():
                running = {r["node"]: r for r in _rows(run_dir) if r["status"] == "running" and r["node"]}
                return running if len(running) == 2 else None

            running = _wait(on_both_nodes, p, log, 240, "trials running on both nodes")
            leftover = kill_session(worker.pid)
            assert not leftover, f"worker node processes still alive: {leftover}"
            assert p.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            kill_session(p.pid)

    rows = _rows(run_dir)
    assert sorted(r["trial_index"] for r in rows) == [0, 1, 2], "every trial exactly once"
    assert all(r["status"] == "ok" for r in rows), [(r["trial_index"], r["status"], r["error"]) for r in rows]
    survivors = {r["node"] for r in rows}
    assert len(survivors) == 1, "after the loss every trial ended on the one remaining node"
    lost_node = (set(running) - survivors).pop()
    lost = next(r for r in rows if r["trial_index"] == running[lost_node]["trial_index"])
    assert lost["failures"] >= 1, "the trial on the lost node failed and was retried"
    assert (run_dir / "best.json").exists()


# ---------------------------------------------------------------- 4. atomic artifacts
def test_interrupted_atomic_write_keeps_the_old_complete_file(tmp_path, monkeypatch):
    """A write that dies midway (in the data write, or before the rename) leaves the previous
    best.json / family.json untouched and no temp file behind."""
    from scalesearch import io as sio
    from scalesearch.generate import write_family
    from scalesearch.scaling import PAPER, family

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "family.json", "family.md"]


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
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.glob("*.py"))]


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
    from scalesearch import data

    if not hasattr(data, "safe_extract"):
        pytest.skip("scalesearch.data has no safe_extract: archives (.tar/.zip dataset roots) are not supported yet")
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

    from scalesearch.search import init_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    assert init_ray(compose_search())
    assert init_ray(compose_search("cluster.include_dashboard=true"))
    off, on = calls
    assert off["include_dashboard"] is False
    assert on["include_dashboard"] is True and on["dashboard_host"] == "127.0.0.1"
    # a new local Ray, never whatever `ray start` cluster /tmp/ray/ray_current_cluster names
    assert off["address"] == on["address"] == "local"


# ---------------------------------------------------------------- resume: which run dir
def test_resume_picks_the_newest_unfinished_run_with_the_same_settings(tmp_path):
    from scalesearch.io import atomic_write_json
    from scalesearch.search import _prepare_run_dir, config_fingerprint

    cfg = compose_search("resume=true", *TINY)
    fp, other = config_fingerprint(cfg), config_fingerprint(compose_search("seed=7", *TINY))
    runs = {"a": (fp, "running"), "b": (fp, "running"), "c": (fp, "complete"), "d": (other, "running")}
    for i, (name, (f, status)) in enumerate(runs.items()):
        (tmp_path / name / "tune").mkdir(parents=True)
        atomic_write_json(tmp_path / name / "search.json", {"fingerprint": f, "status": status})
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    # newest unfinished with this config: b (c is complete, d has other settings)
    assert _prepare_run_dir(cfg, tmp_path / "fresh") == tmp_path / "b"
    assert _prepare_run_dir(cfg, tmp_path / "a") == tmp_path / "a"  # the interrupted run dir itself
    with pytest.raises(ValueError, match="different settings"):
        _prepare_run_dir(cfg, tmp_path / "d")
    with pytest.raises(ValueError, match="already holds a search"):
        _prepare_run_dir(compose_search(*TINY), tmp_path / "a")
    with pytest.raises(ValueError, match="no unfinished search"):
        _prepare_run_dir(compose_search("resume=true", "seed=3", *TINY), tmp_path / "fresh")


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
    from scalesearch.search import run_search

    cfg = compose_search("search.max_points=2", "search.n_seeds=2", "proxy.fault.diverge_trials=[2]",
                         "proxy.fault.fail_trials=[3]", "search.max_failures=2", *TINY)
    runs = []
    for name in ("one", "two"):
        run_dir = tmp_path_factory.mktemp(name)
        runs.append((run_dir, run_search(cfg, run_dir)))
    return runs


@pytest.mark.slow
def test_failing_trial_is_retried_then_recorded_and_diverged_never_best(faulty_search_twice):
    run_dir, best = faulty_search_twice[0]
    rows = {r["trial_index"]: r for r in read_results(run_dir / "results.csv")}
    assert sorted(rows) == [0, 1, 2, 3]
    failed, diverged, ok = rows[3], rows[2], [rows[0], rows[1]]
    assert failed["status"] == "error" and "injected failure in trial 3" in failed["error"]
    assert failed["failures"] == 3, "the first attempt and max_failures=2 retries all failed"
    assert diverged["status"] == "diverged" and diverged["failures"] == 0
    assert all(r["status"] == "ok" and r["failures"] == 0 for r in ok)
    # the search went on, and the best is the candidate of the ok trials, never the diverged one
    assert (best["alpha"], best["beta"], best["gamma"]) == (ok[0]["alpha"], ok[0]["beta"], ok[0]["gamma"])
    assert (best["alpha"], best["beta"], best["gamma"]) != (diverged["alpha"], diverged["beta"], diverged["gamma"])
    assert json.loads((run_dir / "best.json").read_text())["n_ok"] == 2
    summary = (run_dir / "summary.md").read_text()
    assert "injected failure in trial 3" in summary and "| diverged |" in summary and "| error |" in summary


@pytest.mark.slow
def test_same_seed_same_results(faulty_search_twice):
    """The same search twice on CPU: results.csv identical but for timing/identity columns. The two
    seeds of a candidate differ, so the comparison would see a change of seed."""
    varying = {"trial_id", "wall_s", "images_per_s", "finished_at", "node"}
    tables = []
    for run_dir, _ in faulty_search_twice:
        with open(run_dir / "results.csv", newline="") as f:
            tables.append([{k: v for k, v in r.items() if k not in varying} for r in csv.DictReader(f)])
    assert tables[0] == tables[1]
    seed0, seed1 = tables[0][:2]
    assert (seed0["seed"], seed1["seed"]) == ("0", "1") and seed0["loss"] != seed1["loss"]
    bests = [json.loads((run_dir / "best.json").read_text()) for run_dir, _ in faulty_search_twice]
    for b in bests:
        b.pop("search_wall_s")
    assert bests[0] == bests[1]
