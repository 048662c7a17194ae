"""Faults of the node and of the user (issue 23): a trial killed by Ray's memory monitor, a Tune run that
cannot go on, trainings too large for a trial's memory, signals at every moment of start-up, tables with
conflicting or unplanned rows. Real processes, real Ray, real signals."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, TINY, kill_session, session_pids, start_app, wait_for

APP = str(Path(sys.executable).parent / "scalesearch")  # the console script users run
SMALL = [*TINY, "search.max_points=2"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _used_fraction_plus(gib: float) -> float:
    """The node's used memory (as Ray's monitor reads it: total - available) plus ``gib``, as a fraction."""
    info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()}
    total = info["MemTotal"]
    return (total - info["MemAvailable"] + gib * 2**30) / total


def _available_gib() -> float:
    info = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
    return info["MemAvailable"] / 2**20


def _run(args, tmp_path, env=None, timeout=600):  # a hang's net: runs take 2-3x longer beside another worker
    e = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    e.update(env or {})
    p = subprocess.run([APP, *args], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="needs /proc/meminfo to set Ray's memory threshold")
def test_trial_killed_by_rays_memory_monitor_is_a_failed_row_retried_then_the_run_goes_on(tmp_path):
    """Ray's memory monitor (its real one: threshold set 9 GiB above the node's use now, so that the other test
    worker's processes and this run's own Ray workers stay below it) kills the trial that holds 14 GiB, mid-task;
    before, Tune's actor manager then ended the whole app ("Caught unexpected exception"). Now: one line per
    failed attempt, a retry (trials.max_failures=1), an error row with the reason, and the other trainings
    finish."""
    if _available_gib() < 18:
        pytest.skip(f"needs 18 GiB of available memory for a 14 GiB hog below the OOM killer, has {_available_gib():.1f}")
    run = tmp_path / "run"
    env = {"RAY_memory_usage_threshold": f"{_used_fraction_plus(9.0):.4f}", "RAY_memory_monitor_refresh_ms": "100"}
    rc, out = _run([*SMALL, f"hydra.run.dir={run}", "proxy.fault.hog_trials=[0]", "proxy.fault.hog_gb=14",
                    "trials.max_concurrent_trials=1", "trials.max_failures=1"], tmp_path, env)
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out and "Caught unexpected exception" not in out, out[-3000:]
    rows = {int(r["index"]): r for r in _rows(run / "results.csv")}
    hog = rows[0]
    assert hog["status"] == "error" and hog["failures"] == "2", hog
    assert hog["error"].startswith("killed for memory by Ray's memory monitor on node"), hog["error"]
    assert "estimated at" in hog["error"], hog["error"]
    others = {i: (r["status"], r["error"]) for i, r in rows.items() if i != 0}
    assert all(status == "ok" for status, _ in others.values()), others
    assert out.count("attempt 1 failed (killed for memory") == 1, out[-3000:]
    assert "Ray killed 1 worker(s)" not in out  # Ray's memory report stays in Ray's logs


def test_tune_that_cannot_go_on_is_one_line_exit_3_and_the_resume_loses_nothing(tmp_path):
    """The table's path stops accepting writes after the first training (here: a directory takes its place; a
    full disk or a lost mount fails the same write): Tune cannot go on. One line naming the file, the resume
    command, exit 3, no traceback; once the path is writable again, the resume trains only the rest."""
    run, log = tmp_path / "run", tmp_path / "log"
    table, saved = run / "results.csv", tmp_path / "saved.csv"
    args = [*SMALL, f"hydra.run.dir={run}", "proxy.fault.epoch_sleep=3", "trials.max_concurrent_trials=1"]
    proc = start_app(args, log)
    try:
        wait_for(lambda: table.is_file() and any(r["status"] == "ok" for r in _rows(table)), proc, log, 180,
                 "a finished training")
        table.replace(saved)
        table.mkdir()
        proc.wait(timeout=120)
    finally:
        kill_session(proc.pid)
    out = log.read_text()
    err = [ln for ln in out.splitlines() if ln.startswith("scalesearch: error:")]
    assert proc.returncode == 3, out[-3000:]
    assert len(err) == 1 and "Is a directory" in err[0] and str(table) in err[0], out[-3000:]
    assert f"resume with: scalesearch resume=true hydra.run.dir={run}" in err[0], err
    assert "Traceback" not in out, out[-3000:]
    table.rmdir()
    saved.replace(table)
    kept = {r["key"]: r for r in _rows(table) if r["status"] == "ok"}
    assert kept
    rc, out2 = _run([*args, "resume=true"], tmp_path)
    assert rc == 0, out2[-3000:]
    after = {r["key"]: r for r in _rows(table)}
    assert all(after[k]["trial_id"] == r["trial_id"] for k, r in kept.items())  # not trained again
    assert all(r["status"] == "ok" for r in after.values()) and len(after) == 4


def test_a_training_too_large_for_a_trials_memory_is_refused_before_anything_trains(tmp_path):
    """search.phi=10 (a candidate of ~10^9 parameters), a 4096-px base resolution and an ablation at φ = 6:
    refused with one line naming the training, its estimate and the trial's share, before any trial starts."""
    for extra, what in ((["search.phi=10"], "M parameters"),
                        (["dataset.base_resolution=4096", "family.phis=[0]"], " px)"),
                        (["family.ablation=true", "family.ablation_phis=[1,6]"], "ablation (checked before the search")):
        run = tmp_path / f"run-{extra[0].split('=')[0]}"
        rc, out = _run([*SMALL, f"hydra.run.dir={run}", *extra], tmp_path, timeout=480)
        err = [ln for ln in out.splitlines() if ln.startswith("scalesearch: error:")]
        assert rc == 2 and len(err) == 1, out[-3000:]
        assert "needs about" in err[0] and "a training can get at most about" in err[0] and what in err[0], err
        assert "Traceback" not in out
        assert not any(r["status"] for r in _rows(run / "results.csv")) if (run / "results.csv").exists() else True
        state = json.loads((run / "search.json").read_text())  # issue 34: not a "running" that nothing runs
        assert state["status"] == "failed" and state["error"] in err[0], state.get("status")


def test_a_family_too_large_for_a_trials_memory_is_refused_before_the_search_trains(tmp_path):
    """family.max_phi=7: every candidate fits a trial, but the B7 the family stage would train for some candidate
    the search may pick does not (estimated tens of GiB). Refused before the search trains, in one line naming that
    member and the family.max_phi at which every candidate's family fits; before, the search trained and only the
    family stage refused."""
    import re

    run = tmp_path / "run"
    rc, out = _run([*SMALL, f"hydra.run.dir={run}", "family.train=true", "family.phis=[0,1,2,3,4,5,6,7]",
                    "family.max_phi=7"], tmp_path, timeout=480)
    err = [ln for ln in out.splitlines() if ln.startswith("scalesearch: error:")]
    assert rc == 2 and len(err) == 1, out[-3000:]
    assert "family (checked before the search trains" in err[0] and "training b7 of α=" in err[0], err
    fits = re.search(r"allowed: family\.max_phi=(\d+)", err[0])
    assert fits and int(fits.group(1)) < 7, err
    assert "Traceback" not in out
    assert not any(r["status"] for r in _rows(run / "results.csv")) if (run / "results.csv").exists() else True
    # the family.max_phi it names is the largest at which every planned candidate's family fits the share it names
    import json

    from scalesearch.scaling.cost import PROCESS_BASE_BYTES, Cost, estimate_train_memory
    from scalesearch.plan.jobs import family_probes
    from scalesearch.scaling.coefficients import Coefficients
    from scalesearch.scaling.scaler import Scaler

    share = float(re.search(r"a training can get at most about ([\d.]+) GiB", err[0]).group(1)) * 2**30
    plan = json.loads((run / "candidates.json").read_text())["candidates"]
    coeffs = [Coefficients(c["alpha"], c["beta"], c["gamma"]) for c in plan]
    scaler = Scaler(base_resolution=40, num_classes=10, resolution_multiple=1, depth_rounding="total")  # the run's

    def worst(phi):
        return max(estimate_train_memory(Cost(p["row"]["params"], p["row"]["macs"], p["row"]["activations"],
                                              p["resolution"]), 50, 4) + PROCESS_BASE_BYTES
                   for p in family_probes(scaler, coeffs, float(phi)))

    k = int(fits.group(1))
    assert len(coeffs) == 2 and worst(k) <= share + 0.05 * 2**30 < worst(k + 1) + 0.1 * 2**30, (k, share, worst(k))


def test_a_training_over_one_trials_share_requests_the_resources_of_as_many_trials_as_it_needs():
    """A job whose estimate is over one trial's share of memory asks Ray for the CPUs (GPU fraction) of as many
    trials as its memory needs, up to the whole node, so Ray runs it with fewer trials beside it (before: refused,
    though the node had the memory — CI's `scalesearch search.cost=latency` on a 24 GiB node, whose family's b3 of
    8.4 GiB was over a share of 7.3 GiB). A searcher's trial (its job is made in the trial) asks for one share."""
    from scalesearch.config import ProxyConfig
    from scalesearch.scaling.cost import PROCESS_BASE_BYTES, Cost, estimate_train_memory
    from scalesearch.run.trial import TrialContext, memory_need, trial_resources

    ctx = TrialContext(budget=ProxyConfig(batch_size=32), num_classes=10, in_channels=3, train_images=1000)
    row = {"params": 33_900_000, "macs": 0, "activations": 10_000_000}
    job = {"key": "b3", "resolution": 135, "row": row}
    need, _ = memory_need(job, ctx, cuda=False)
    assert need == estimate_train_memory(Cost(row["params"], 0, row["activations"], 135), 32, 4) + PROCESS_BASE_BYTES

    def bundle(config, share, most, gpus=0.0):
        return trial_resources(config, ctx, cpus=1, gpus=gpus, share=share, most=most).required_resources

    assert bundle({"job": job}, share=need, most=4) == {"CPU": 1}  # fits one share
    assert bundle({"job": job}, share=need / 1.5, most=4) == {"CPU": 2}  # 1.5 shares: two trials' CPUs
    assert bundle({"job": job}, share=need / 3.2, most=4) == {"CPU": 4}
    assert bundle({"job": job}, share=need / 9, most=4) == {"CPU": 4}  # never more than the node (refused before)
    on_gpu, _ = memory_need(job, ctx, cuda=True)  # bf16 activations, no process
    assert on_gpu < need and bundle({"job": job}, share=on_gpu / 2.5, most=4, gpus=0.25) == {"CPU": 3, "GPU": 0.75}
    assert bundle({"alpha": 1.2}, share=need / 9, most=4) == {"CPU": 1}  # a searcher's trial


def test_trainings_over_one_trials_share_but_within_the_node_train(tmp_path):
    """trials.cpus_per_trial so small that one trial's share of the node's memory is under 0.5 GiB, less than any
    CPU training needs (its process alone: 0.7 GiB): every training asks Ray for several trials' CPUs, trains and is
    an ok row — neither refused before the search nor failed by the trial's own check (which applies to a searcher's
    trials only)."""
    cpt = max(0.001, int(0.5 * 2**30 / (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) * 1000) / 1000)
    run = tmp_path / "run"
    rc, out = _run([*SMALL, f"hydra.run.dir={run}", f"trials.cpus_per_trial={cpt:g}"], tmp_path, timeout=600)
    assert rc == 0, out[-3000:]
    rows = _rows(run / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows


def test_training_step_timing_uses_the_batch_the_training_uses(tmp_path):
    """proxy.batch_size=100000 on 40 training images: the training uses batch 40, and so does every timing of a
    training step, at planning (search.cost=train_step) and in the trials (before, the timing used 100,000
    images: ~11 GB per trial)."""
    import json

    run, space = tmp_path / "run", tmp_path / "one_point.yaml"
    # one candidate (the paper's point) and two family members: each measured cost is a Ray task, and the
    # compound space's planning measured ~40 of them (~2.5 min alone, over 300 s beside another test worker);
    # a wide tolerance: the test is about the batch the timings use, not about solving the resolution
    space.write_text("alpha: {low: 1.2, high: 1.2}\nbeta: {low: 1.1, high: 1.1}\ngamma: {low: 1.15, high: 1.15}\n"
                     "step: 0.05\ntarget: 2.0\ntolerance: 0.1\n")
    args = [a for a in SMALL if not a.startswith(("trials.measure_device_costs", "dataset.train_size", "family.phis"))]
    rc, out = _run([*args, f"hydra.run.dir={run}", "dataset.train_size=40", "proxy.batch_size=100000",
                    "search.cost=train_step", f"search.space={space}", "family.phis=[0,1]",
                    "search.cost_tolerance=0.9"], tmp_path)  # step timings of a 40 px net are noisy: under load
    # one measured 0.97x against the target 2x (CI of 1ed01e3, refused at 0.5); the test is about the batch
    assert rc == 0, out[-3000:]
    rows = _rows(run / "results.csv")
    assert rows and all(r["status"] == "ok" and float(r["train_step_ms"]) > 0 for r in rows), rows
    keys = list(json.loads((run / "costs.json").read_text()))
    assert keys and all(k.endswith("|b40") for k in keys if k.startswith("train_step")), keys


STARTUP_MARKS = [None, None, "run directory:", "dataset synthetic:", "grid:"]


@pytest.mark.parametrize("k", range(len(STARTUP_MARKS)))
def test_sigint_at_every_moment_of_start_up_is_honoured_within_seconds(tmp_path, k):
    """SIGINT while the app imports (0.5 s, 2 s), as the run directory is made, as Ray starts (the "dataset"
    line), as Tune starts (the plan's line): exit 130 within 15 s, one line, no traceback, no "Exception
    ignored", no process of the run left. Before, a SIGINT during Ray's start-up was swallowed in 4 of 12
    tries and the stage trained to its end."""
    run, log = tmp_path / "run", tmp_path / "log"
    e = {k_: v for k_, v in os.environ.items() if k_ != "HYDRA_FULL_ERROR"}
    with open(log, "ab") as f:
        proc = subprocess.Popen([APP, *SMALL, f"hydra.run.dir={run}", "proxy.fault.epoch_sleep=2"], cwd=ROOT, env=e,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        mark = STARTUP_MARKS[k]
        if mark is None:
            time.sleep(0.5 if k == 0 else 2.0)
        else:
            wait_for(lambda: mark in log.read_text(), proc, log, 120, repr(mark))
        sent = time.time()
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        took = time.time() - sent
        deadline = time.time() + 20  # Ray's own processes end shortly after the driver
        while (left := session_pids(proc.pid)) and time.time() < deadline:
            time.sleep(0.5)
    finally:
        kill_session(proc.pid)
    out = log.read_text()
    assert proc.returncode == 130, out[-3000:]
    assert took < 15, f"{took:.1f} s to stop:\n{out[-3000:]}"
    assert "Traceback" not in out and "Exception ignored" not in out, out[-3000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("scalesearch: interrupted by SIGINT")]
    assert len(lines) == 1, out[-3000:]
    assert not left, f"processes of the run still alive: {left}"
    if (run / "results.csv").exists():
        assert not any(r["status"] == "ok" for r in _rows(run / "results.csv"))


PRE_HYDRA_SIGINT = """
import os, signal, sys
sys.argv = ["scalesearch", *sys.argv[1:]]
from scalesearch.apps import cli
checks = cli.early_checks
def interrupted_checks(*a):  # the signal arrives while the command line is composed and checked
    os.kill(os.getpid(), signal.SIGINT)
    return checks(*a)
cli.early_checks = interrupted_checks
cli.main()
"""


def test_sigint_while_the_command_line_is_checked_is_one_line(tmp_path):
    """SIGINT exactly while the app composes and checks its command line, before Hydra makes the run directory
    (CI's 0.5 s landed there on a faster machine: a KeyboardInterrupt traceback from Hydra's parser and exit 1):
    one line, exit 130, and no run directory."""
    run = tmp_path / "run"
    e = {k_: v for k_, v in os.environ.items() if k_ != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-c", PRE_HYDRA_SIGINT, *SMALL, f"hydra.run.dir={run}"], cwd=ROOT, env=e,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "Exception ignored" not in out, out[-3000:]
    assert [ln for ln in out.splitlines() if ln.startswith("scalesearch: interrupted by SIGINT")], out[-3000:]
    assert not run.exists()


def _table(path: Path, rows: list[dict]) -> None:
    cols = list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def test_conflicting_duplicate_rows_are_refused_and_unplanned_rows_kept_with_a_warning(tmp_path):
    """A results.csv with one training twice and different accuracies (0.15, 0.9): before, the last silently
    won. Now one line naming the file, both lines and values. A row for a candidate the run does not plan:
    before, deleted without a message; now reported (file, line, values) and kept in the table."""
    from scalesearch.run.tables import recorded_rows

    row = {"key": "a1.2-b1.1/s0", "status": "ok", "accuracy": "0.15", "index": "0"}
    path = tmp_path / "results.csv"
    _table(path, [row, {**row, "accuracy": "0.9"}])
    with pytest.raises(ValueError) as e:
        recorded_rows(path, {"a1.2-b1.1/s0"})
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "lines 2 and 3" in msg and "0.15" in msg and "0.9" in msg, msg
    _table(path, [row, {**row}])  # the same row twice: one training, kept once
    recorded, unplanned = recorded_rows(path, {"a1.2-b1.1/s0"})
    assert list(recorded) == ["a1.2-b1.1/s0"] and unplanned == []
    _table(path, [row, {**row, "key": "a9-b9/s0", "accuracy": "0.5"}])
    recorded, unplanned = recorded_rows(path, {"a1.2-b1.1/s0"})
    assert list(recorded) == ["a1.2-b1.1/s0"] and [r["key"] for r in unplanned] == ["a9-b9/s0"]


def test_an_unplanned_row_survives_a_resume_of_a_real_run(tmp_path):
    run = tmp_path / "run"
    rc, out = _run([*SMALL, f"hydra.run.dir={run}"], tmp_path)
    assert rc == 0, out[-3000:]
    rows = _rows(run / "results.csv")
    extra = {**rows[0], "key": "a9-b9-g9/s0", "candidate": "a9-b9-g9", "accuracy": "0.99", "index": "99"}
    _table(run / "results.csv", [*rows, extra])
    rc, out = _run([*SMALL, f"hydra.run.dir={run}", "resume=true"], tmp_path)
    assert rc == 0, out[-3000:]
    assert "line 6 records a9-b9-g9/s0" in out and "kept in the table, not used" in out, out[-3000:]
    assert any(r["key"] == "a9-b9-g9/s0" for r in _rows(run / "results.csv"))
    best = (run / "best.json").read_text()
    assert "a9-b9-g9" not in best


def _has_malloc_trim() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "malloc_trim") and Path("/proc/self/status").is_file()
    except OSError:
        return False


@pytest.mark.skipif(not _has_malloc_trim(), reason="needs glibc's malloc_trim and /proc/self/status (Linux)")
def test_the_heap_a_trial_freed_goes_back_to_the_os_before_the_next_trial():
    """A reused Ray actor kept every earlier trial's freed heap (a worker at 7.2 GB after ~65 CIFAR trainings, which
    filled the node): run_trial calls release_heap first. In a fresh process, 400 MB freed in 64 KiB pieces, every
    16th kept so that glibc cannot shrink the heap from its top, stays resident until release_heap hands it back."""
    code = """
import re
from pathlib import Path
from scalesearch.run.trial import release_heap
rss = lambda: int(re.search(r"RssAnon:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
blocks = [bytes(range(256)) * 256 for _ in range(6400)]
kept = blocks[::16]
del blocks
before = rss()
release_heap()
print(before, rss())
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    before, after = map(float, p.stdout.split()[-2:])
    assert before - after > 250, f"resident anonymous memory {before:.0f} MB before release_heap, {after:.0f} after"
