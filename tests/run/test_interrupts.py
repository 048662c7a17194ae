"""Interrupts and kills (issue 15): the real signals (SIGINT, SIGTERM, SIGKILL of the whole process tree) sent to a
real search in each of its stages, and to a real NAS; every resume trains exactly what no table records as
finished. docs/RELIABILITY.md maps every fault to its test."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import RAY_ENV, TINY, kill_session, ray_cluster, session_pids, start_script
from helpers import start_app as _start
from helpers import wait_for as _wait
from scalesearch.decide.results import read_table


# ---------------------------------------------------------------- 1. killed and interrupted, every stage
STAGED = ["search.max_points=2", "search.n_seeds=1", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=0.5",
          "verbose=1",
          "validate.enabled=true", "validate.epochs_mult=2", "family.train=true", "family.max_phi=2",
          *[o for o in TINY if o not in ("validate.enabled=false", "family.train=false", "search.n_seeds=2")]]


def _finished(run_dir: Path) -> dict:
    """{(table, key): (trial_id, finished_at)} of every finished row of every stage table."""
    out = {}
    for name in ("results.csv", "validation.csv", "family_results.csv"):
        for r in read_table(run_dir / name):
            if r["status"] == "ok":
                out[(name, r["key"])] = (r["trial_id"], r["finished_at"])
    return out


def _stage(run_dir: Path, name: str) -> str | None:
    try:
        return json.loads((run_dir / "search.json").read_text())["stages"].get(name, {}).get("status")
    except (OSError, ValueError, KeyError):
        return None


def _ok(run_dir: Path, name: str) -> int:
    """Trainings finished ok in a stage table (rows copied from an earlier stage do not count)."""
    return sum(r["status"] == "ok" and not r.get("reused_from") for r in read_table(run_dir / name))


def _check_one_line(log: Path, seen: int, sig, run_dir: Path, waited: float) -> None:
    """What a stopped run printed since byte ``seen`` of its log: one line naming the signal and the resume command,
    within seconds (not after Ray's 60 s abort), and not Ray Tune's own resume advice."""
    out = log.read_bytes()[seen:].decode(errors="replace")
    assert waited < 45, "the driver waited on Ray's dead processes (Ray's 60 s abort)"
    lines = [x for x in out.splitlines() if x.startswith("scalesearch: interrupted")]
    assert len(lines) == 1, out[-3000:]
    assert f"interrupted by {sig.name}" in lines[0] and f"resume=true hydra.run.dir={run_dir}" in lines[0], lines
    assert "Tuner.restore" not in out, "Ray's own resume advice reaches the console"


def _stop_when(p, when, log: Path, what: str, send=os.kill) -> None:
    """Wait for ``when``, send SIGINT with ``send`` (``os.kill``: the driver; ``os.killpg``: its process group, as a
    terminal's Ctrl-C), expect exit 130; the app's session is killed whatever happens."""
    try:
        _wait(when, p, log, 240, what)
        send(p.pid, signal.SIGINT)
        assert p.wait(timeout=120) == 130, log.read_text()[-3000:]
    finally:
        kill_session(p.pid)
        p.wait()


@pytest.mark.slow
def test_killed_and_interrupted_in_every_stage_then_resumed_loses_and_reruns_nothing(tmp_path):
    """The same run, through the ``scalesearch`` console script, is stopped four times — SIGINT to its whole process
    group in the search (a terminal's Ctrl-C), SIGKILL of the whole process tree in the validation, SIGTERM to the
    script alone as the family stage starts, SIGTERM to the whole process group after a family member has finished
    (``timeout``'s or ``kill -- -PGID``'s stop) — and resumed each time (the last time from the default run
    directory, without hydra.run.dir). A signalled run says ``interrupted`` in search.json (a killed one stays
    ``running``), selects nothing, writes no best/family/report, exits 130/143 within seconds with one line saying
    how to resume; every resume trains exactly what no table records as finished: every finished training keeps
    its trial id."""
    runs = tmp_path / "runs" / "synthetic-grid"
    run_dir, log = runs / "2026-01-01_10-00-00", tmp_path / "search.log"
    finished: dict = {}
    steps = [  # (extra args, when to stop, signal, to the whole process group, expected exit code)
        ([], lambda: _ok(run_dir, "results.csv") >= 1, signal.SIGINT, True, 130),
        (["resume=true"], lambda: _ok(run_dir, "validation.csv") >= 1, signal.SIGKILL, True, None),
        (["resume=true"], lambda: _stage(run_dir, "family") == "running", signal.SIGTERM, False, 143),
        (["resume=true"], lambda: _ok(run_dir, "family_results.csv") >= 1, signal.SIGTERM, True, 143),
    ]
    for attempt, (extra, when, sig, group, code) in enumerate(steps):
        seen = log.stat().st_size if log.exists() else 0
        p = start_script("scalesearch", [*STAGED, f"hydra.run.dir={run_dir}", *extra], log, cwd=tmp_path)
        try:
            _wait(when, p, log, 240, f"the stop point of attempt {attempt}")
            if sig == signal.SIGKILL:
                leftover = kill_session(p.pid)
                assert not leftover, f"processes of the killed driver still alive: {leftover}"
            else:
                t0 = time.monotonic()
                (os.killpg if group else os.kill)(p.pid, sig)  # the script leads its own session and group
                assert p.wait(timeout=120) == code, log.read_bytes()[seen:].decode(errors="replace")[-3000:]
                _check_one_line(log, seen, sig, run_dir, time.monotonic() - t0)
        finally:
            kill_session(p.pid)
            p.wait()
        state = json.loads((run_dir / "search.json").read_text())
        said = "running" if sig == signal.SIGKILL else "interrupted"
        assert state["status"] == said, f"attempt {attempt}: {state['status']}, not {said}"
        assert (state.get("interrupted") or {}).get("signal") == (None if said == "running" else sig.name)
        assert not (run_dir / "best.json").exists() and not (run_dir / "report.md").exists()
        now = _finished(run_dir)
        for k, v in finished.items():
            assert now.get(k) == v, f"attempt {attempt}: {k} was trained again or lost"
        finished = now
    # the last resume: from the default run directory (cwd has runs/synthetic-grid/...), no hydra.run.dir
    p = start_script("scalesearch", [*STAGED, "resume=true"], log, cwd=tmp_path)
    assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert [d.name for d in runs.iterdir()] == [run_dir.name], "no new (empty) run directory"
    now = _finished(run_dir)
    for k, v in finished.items():
        assert now.get(k) == v, f"{k} was trained again after the interrupts"
    search, val, fam = (read_table(run_dir / n) for n in ("results.csv", "validation.csv", "family_results.csv"))
    assert sorted(r["key"] for r in search) == sorted({r["key"] for r in search}) and len(search) == 2
    assert all(r["status"] == "ok" for r in search + val + fam), [(r["key"], r["status"]) for r in search + val + fam]
    assert len(val) == 2 and {r["name"] for r in fam} == {"b0", "b1", "b2"}
    assert [r["name"] for r in fam if r["reused_from"]] == ["b1"], "B1 is the searched candidate: reused, not retrained"
    assert json.loads((run_dir / "search.json").read_text())["status"] == "complete"
    assert (run_dir / "best.json").exists() and (run_dir / "report.md").exists() is False  # TINY: report.enabled=false


@pytest.mark.slow
def test_every_process_of_the_job_signalled_at_once_still_ends_with_the_line_and_the_record(tmp_path):
    """A scheduler's stop that signals every process of the job (Slurm's scancel, systemd): the console script, its
    app and all of Ray's processes get SIGTERM at the same moment. Ray's core worker may end the app before it
    speaks; the script outlives it: exit 143 within seconds, one line with the resume command, search.json says
    ``interrupted`` by SIGTERM, the finished trainings kept — and the resume trains only the rest."""
    run_dir, log = tmp_path / "run", tmp_path / "search.log"
    args = ["search.max_points=2", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=0.5",
            *TINY, f"hydra.run.dir={run_dir}"]
    p = start_script("scalesearch", args, log, cwd=tmp_path)
    try:
        _wait(lambda: _ok(run_dir, "results.csv") >= 1, p, log, 240, "a finished search training")
        t0 = time.monotonic()
        for pid in session_pids(p.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        assert p.wait(timeout=120) == 143, log.read_text()[-3000:]
        _check_one_line(log, 0, signal.SIGTERM, run_dir, time.monotonic() - t0)
    finally:
        kill_session(p.pid)
        p.wait()
    state = json.loads((run_dir / "search.json").read_text())
    assert state["status"] == "interrupted" and state["interrupted"]["signal"] == "SIGTERM", state.get("status")
    before = {r["key"]: r["trial_id"] for r in read_table(run_dir / "results.csv") if r["status"] == "ok"}
    assert before
    p = start_script("scalesearch", [*args, "resume=true"], log, cwd=tmp_path)
    assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    rows = read_table(run_dir / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
    assert all({r["key"]: r["trial_id"] for r in rows}[k] == v for k, v in before.items()), "trained again"


@pytest.mark.slow
def test_a_parallel_multirun_on_one_cluster_stops_every_job_with_its_own_line_and_resumes(tmp_path):
    """Issue 37: ``scalesearch -m seed=0,1 hydra/launcher=joblib cluster.address=…`` — two jobs at once, in the
    launcher's worker processes, both joining one `ray start` cluster. Ctrl-C (SIGINT to the script) reaches the
    Hydra process, which hands it to both jobs: exit 130 within seconds, one line per job with its own resume
    command, each search.json ``interrupted``; each job then resumes with its command and trains only the rest."""
    sweep, log = tmp_path / "multi", tmp_path / "multirun.log"
    with ray_cluster(tmp_path, head_cpus=2, workers=0) as (address, _):
        common = ["search.max_points=2", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=0.5", *TINY,
                  f"cluster.address={address}"]
        p = start_script("scalesearch", ["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                         *common, f"hydra.sweep.dir={sweep}"], log, env=RAY_ENV, cwd=tmp_path)
        jobs = [sweep / f"{j}_synthetic" for j in (0, 1)]
        try:
            _wait(lambda: all(_ok(d, "results.csv") >= 1 for d in jobs), p, log, 300, "a training of each job")
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            assert p.wait(timeout=120) == 130, log.read_text()[-3000:]
            waited = time.monotonic() - t0
        finally:
            kill_session(p.pid)
            p.wait()
        out = log.read_text()
        assert waited < 45 and out.count(f"Ray: joining {address}") == 2, out[-3000:]  # both jobs on the cluster
        lines = [x for x in out.splitlines() if x.startswith("scalesearch: ")]
        assert sorted(x.rsplit("hydra.run.dir=", 1)[-1].split()[0] for x in lines) == [str(d) for d in jobs], lines
        assert all(x.startswith("scalesearch: interrupted by SIGINT") for x in lines), lines
        before = {}
        for d in jobs:
            state = json.loads((d / "search.json").read_text())
            assert state["status"] == "interrupted" and state["interrupted"]["signal"] == "SIGINT", state["status"]
            before[d] = {r["key"]: r["trial_id"] for r in read_table(d / "results.csv") if r["status"] == "ok"}
        resumed = [start_script("scalesearch", [*common, f"seed={j}", "resume=true", f"hydra.run.dir={d}"],
                                tmp_path / f"resume{j}.log", env=RAY_ENV, cwd=tmp_path) for j, d in enumerate(jobs)]
        for j, r in enumerate(resumed):
            assert r.wait(timeout=600) == 0, (tmp_path / f"resume{j}.log").read_text()[-3000:]
    for d in jobs:
        rows = read_table(d / "results.csv")
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
        assert all({r["key"]: r["trial_id"] for r in rows}[k] == v for k, v in before[d].items()), "trained again"


def test_a_stop_line_is_one_write_so_parallel_jobs_never_splice_their_lines(monkeypatch):
    """The jobs of a parallel multirun share the terminal; with a stream that writes through, print() sent the
    newline as a second write and two jobs' lines came out spliced into one (seen in CI: the test above failed)."""
    from scalesearch.run.interrupt import line_out

    writes = []

    class Stream:
        def write(self, s):
            writes.append(s)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Stream())
    line_out("scalesearch: interrupted by SIGINT: resume with: scalesearch resume=true hydra.run.dir=RUN")
    assert writes == ["scalesearch: interrupted by SIGINT: resume with: scalesearch resume=true hydra.run.dir=RUN\n"]


@pytest.mark.slow
def test_interrupted_nas_resumes_with_the_unfinished_trials(tmp_path):
    run_dir, log = tmp_path / "nas", tmp_path / "nas.log"
    args = ["nas.num_samples=4", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=1", "proxy.epochs=1",
            "dataset.train_size=200", "dataset.val_size=100", "proxy.batch_size=50", "dataset.image_size=32",
            "trials.measure_device_costs=false", f"hydra.run.dir={run_dir}"]
    _stop_when(_start(args, log, app="nas_main"), lambda: _ok(run_dir, "results.csv") >= 2, log,
               "2 finished NAS trials", os.kill)
    before = {r["key"]: (r["trial_id"], r["finished_at"]) for r in read_table(run_dir / "results.csv") if r["status"] == "ok"}
    assert len(before) >= 2 and not (run_dir / "baseline.json").exists()
    p = _start([*args, "resume=true"], log, app="nas_main")
    assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    rows = read_table(run_dir / "results.csv")
    assert sum(r["status"] == "ok" for r in rows) == 4 and len({r["key"] for r in rows}) == len(rows)
    after = {r["key"]: (r["trial_id"], r["finished_at"]) for r in rows}
    assert all(after[k] == v for k, v in before.items()), "a finished NAS trial was trained again"
    assert (run_dir / "baseline.json").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: a GCS that is gone


@pytest.mark.parametrize("signum, code, what", [(None, 3, "error: Ray's processes stopped under the run"),
                                                (signal.SIGTERM, 143, "interrupted by SIGTERM (Ray's processes")])
def test_a_gone_ray_ends_the_process_with_the_resume_line(signum, code, what):
    """The runner's watch of Ray (the unit of the group-SIGTERM stop above): a GCS that no longer answers ends a
    process whose main thread waits forever, at once, with the tool's one line and the app's resume command;
    exit 3, or 128 + signal after an interrupt."""
    port = _closed_port()
    flag = f"INTERRUPTED.set(); INTERRUPTED.signum = {int(signum)}; " if signum else ""
    code_ = (f"import threading; from scalesearch.run.interrupt import INTERRUPTED, set_resume_line; {flag}"
             "set_resume_line('scalesearch resume=true hydra.run.dir=RUN'); from scalesearch.run.session import RayWatch; "
             f"RayWatch('127.0.0.1:{port}', patience=0.5, every=0.2).start(); threading.Event().wait(60)")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True, timeout=120)
    assert p.returncode == code, p.stderr[-2000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith(f"scalesearch: {what}") and f"127.0.0.1:{port} no longer answers" in line
    assert line.endswith("what finished is recorded and the run stays resumable; resume with: scalesearch "
                         "resume=true hydra.run.dir=RUN"), line
    assert time.monotonic() - t0 < 60, "the watch did not end the waiting process"


_SIGNALLED = """
import socket, threading, time
from scalesearch.run import interrupt
from scalesearch.run.session import RayWatch
interrupt.install(); interrupt.IN_TUNE.set(); interrupt.set_resume_line("scalesearch resume=true hydra.run.dir=RUN")
gcs = socket.create_server(("127.0.0.1", 0))
watch = RayWatch("127.0.0.1:%d" % gcs.getsockname()[1], patience=3.0, every=1.0, signals=True)
watch.start()
with interrupt.on_stop(lambda name: print("recorded", name, flush=True)):
    print("ready", flush=True)
    while not interrupt.INTERRUPTED.is_set():  # the main thread inside Tune: the handler only flags
        time.sleep(0.05)
    gcs.close()  # the signal stopped the local Ray too
    threading.Event().wait(60)
"""


def test_a_stop_signal_is_recorded_and_said_the_moment_it_arrives():
    """The watch learns of a stop signal through Python's wakeup fd while the main thread waits inside Ray: the
    run's stop callback records it and the one line is printed at once (Ray's core worker may end the process
    next); when Ray's GCS then goes, the process ends within a second with 128 + signal — one line, not two."""
    p = subprocess.Popen([sys.executable, "-c", _SIGNALLED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 143, err[-2000:]
    assert time.monotonic() - t0 < 5, "the watch did not end the process when the GCS went"
    assert out.split() == ["recorded", "SIGTERM"], out
    lines = [x for x in err.splitlines() if x.startswith("scalesearch:")]
    assert lines == ["scalesearch: interrupted by SIGTERM: what finished is recorded and the run stays resumable; "
                     "resume with: scalesearch resume=true hydra.run.dir=RUN"], err[-2000:]


@pytest.mark.slow
def test_an_interrupted_optuna_search_tells_its_study_every_value_the_resume_finishes(tmp_path):
    """Optuna with seeds (Tune's Repeater) and storage, interrupted while a candidate's seeds train, resumed: the
    study learns the value of the candidate the interrupt cut (it stays RUNNING, never PRUNED, until the resume
    finishes it), each COMPLETE value is the mean of that candidate's seeds in results.csv, and no finished
    training is trained again."""
    import optuna

    run_dir, log, db = tmp_path / "run", tmp_path / "optuna.log", tmp_path / "o.db"
    args = ["search=optuna", "search.num_samples=3", "search.n_seeds=2", f"search.storage=sqlite:///{db}",
            "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=1", "dataset.train_size=40",
            "dataset.val_size=20", "dataset.train_per_class=6", "dataset.val_per_class=3", "validate.enabled=false",
            "family.train=false", "report.enabled=false", f"hydra.run.dir={run_dir}"]
    _stop_when(_start(args, log, cwd=tmp_path), lambda: _ok(run_dir, "results.csv") >= 3, log,
               "3 finished trainings (a candidate half done)", os.killpg)
    before = _finished(run_dir)
    (study,) = [optuna.load_study(study_name=s, storage=f"sqlite:///{db}")
                for s in optuna.get_all_study_names(f"sqlite:///{db}")]
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING in states and optuna.trial.TrialState.PRUNED not in states, states
    p = _start([*args, "resume=true"], log, cwd=tmp_path)
    assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    after = _finished(run_dir)
    assert all(after[k] == v for k, v in before.items()), "a finished training was trained again"
    rows = read_table(run_dir / "results.csv")
    study = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{db}")
    assert len(study.trials) == 3 and len(rows) == 6
    for t in study.trials:
        mine = [r for r in rows if abs(r["alpha"] - round(t.params["alpha"], 4)) < 1e-9]
        assert len(mine) == 2, (t.params, [(r["alpha"], r["seed"]) for r in rows])
        if all(r["status"] == "ok" for r in mine):
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.value == pytest.approx(sum(r["accuracy"] for r in mine) / 2)
        else:
            assert t.state == optuna.trial.TrialState.FAIL and {r["status"] for r in mine} == {"infeasible"}


@pytest.mark.slow
def test_the_script_pauses_with_its_app_and_takes_it_along_when_killed(tmp_path):
    """The console script and its app, a child in its own process group: Ctrl-Z (SIGTSTP to the script) stops the
    app's whole group too and SIGCONT continues it; SIGKILL of the script alone ends the app within seconds (Linux's
    parent-death signal; Ray's processes follow it as after a kill of the app) and leaves the run free to resume."""
    run_dir, log = tmp_path / "run", tmp_path / "search.log"
    args = ["search.max_points=2", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=0.5", *TINY,
            f"hydra.run.dir={run_dir}"]
    p = start_script("scalesearch", args, log, cwd=tmp_path)
    try:
        _wait(lambda: _ok(run_dir, "results.csv") >= 1, p, log, 240, "a finished search training")
        ppid = lambda pid: int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])  # noqa: E731
        child = next(pid for pid in session_pids(p.pid) if ppid(pid) == p.pid)
        # the app's group: the app and Ray's daemons (Ray starts its trial workers in groups of their own, which a
        # terminal's Ctrl-Z does not stop either)
        app = [pid for pid in session_pids(p.pid) if os.getpgid(pid) == child]
        assert child != p.pid and len(app) > 1, "the app is not in a process group of its own"
        def state(pid):  # a process that ended meanwhile (a trial) counts as neither
            try:
                return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
            except (OSError, IndexError):
                return None

        os.kill(p.pid, signal.SIGTSTP)
        _wait(lambda: all(state(pid) in ("T", None) for pid in app + [p.pid]), p, log, 30, "the run stopped by Ctrl-Z")
        os.kill(p.pid, signal.SIGCONT)
        deadline = time.time() + 60
        while any(state(pid) == "T" for pid in app + [p.pid]) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(state(pid) == "T" for pid in app + [p.pid]), \
            f"still stopped after SIGCONT: {[(pid, state(pid), Path(f'/proc/{pid}/cmdline').read_bytes()[:60]) for pid in app + [p.pid] if state(pid) == 'T']}"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        deadline = time.time() + 10
        while state(child) not in (None, "Z") and time.time() < deadline:
            time.sleep(0.1)
        assert state(child) in (None, "Z"), "the app outlived its SIGKILLed script"
    finally:
        kill_session(p.pid)
        p.wait()
    p = start_script("scalesearch", [*args, "resume=true"], log, cwd=tmp_path)
    assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    rows = read_table(run_dir / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
