"""A run directory belongs to one app and one live process (scalesearch/run/rundir.py), and a resume checks what it
resumes: real processes on one tiny image-folder search (12 training images), which is live while a second run and
a resume are refused, then finished, then resumed on other data, claimed by the generator, and killed."""

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from helpers import TINY, kill_session, run_cli, start_app, wait_for
from scalesearch.run import rundir
from scalesearch.decide.results import read_table

ARGS = [*(o for o in TINY if not o.startswith(("search.n_seeds=", "proxy.batch_size="))), "search.n_seeds=1",
        "proxy.batch_size=4", "search.max_points=2", "trials.max_concurrent_trials=1", "proxy.fault.epoch_sleep=8",
        "verbose=1", "dataset=imagefolder"]
CLASSES = ("a", "b")


def _images(folder: Path, n: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start + len(folder.name))
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"img{i:03d}.png")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalesearch: error: "), err[-3000:]
    return lines[0]


def _app_files(run_dir: Path) -> dict:
    """Every file of a run with its bytes, Hydra's own (.hydra/, the job log) aside: Hydra writes them before the app
    starts."""
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log" and "tune" not in p.parts}


def _ok(run_dir: Path) -> dict:
    return {r["key"]: r["trial_id"] for r in read_table(run_dir / "results.csv") if r["status"] == "ok"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One search, live while a second `scalesearch` and a `resume=true` on its directory run; then finished."""
    tmp = tmp_path_factory.mktemp("rundir")
    folder = tmp / "images"
    for c in CLASSES:
        _images(folder / "train" / c, 6)
        _images(folder / "val" / c, 10, start=500)
    run_dir, log = tmp / "run", tmp / "first.log"
    args = [*ARGS, f"dataset.root={folder}", f"hydra.run.dir={run_dir}"]
    first = start_app(args, log)
    try:
        wait_for(lambda: (run_dir / "tune" / "search").is_dir(), first, log, 180, "the first run to train")
        with ThreadPoolExecutor(2) as pool:  # both while the first trains (each trial sleeps 8 s after its epoch)
            second, resumed = pool.map(lambda extra: run_cli("search_main", *args, *extra), ([], ["resume=true"]))
        alive, rows_then = first.poll() is None, _ok(run_dir)
        rc = first.wait(timeout=600)
    finally:
        kill_session(first.pid)
        first.wait()
    return SimpleNamespace(dir=run_dir, folder=folder, args=args, pid=first.pid, rc=rc, log=log, second=second,
                           resumed=resumed, alive=alive, rows_then=rows_then, rows=_ok(run_dir), tmp=tmp)


# ---------------------------------------------------------------- (a) one live process per run directory
@pytest.mark.slow
def test_a_second_run_and_a_resume_on_a_live_directory_are_refused(run):
    assert run.alive, "the first run had ended before the second run and the resume were refused: nothing was tested"
    for what, (rc, out, err) in (("a second run", run.second), ("a resume", run.resumed)):
        line = _one_line(err)
        assert rc == 2, f"{what}: exit {rc}\n{err[-2000:]}"
        assert line.startswith(f"scalesearch: error: run directory {run.dir} is in use by scalesearch "
                               f"(pid {run.pid} on host {os.uname().nodename} since "), line
        assert line.endswith("); allowed: wait for it, stop it, or another hydra.run.dir"), line
        assert "[search" not in out + err, f"{what} trained"
    assert run.rc == 0, run.log.read_text()[-3000:]
    state = json.loads((run.dir / "search.json").read_text())
    assert state["status"] == "complete" and (run.dir / "best.json").is_file()
    assert (run.dir / "tune" / "search").is_dir(), "a refused run deleted the first one's Tune experiment"
    assert len(run.rows) == 2 and all(run.rows[k] == v for k, v in run.rows_then.items()), "a training was lost"
    assert state["data"] == {"name": "imagefolder", "fingerprint": state["data"]["fingerprint"], "train_images": 12,
                             "val_images": 20, "classes": 2}
    assert (run.dir / rundir.OWNER_FILE).read_text().strip() == "scalesearch"
    assert rundir.holder(run.dir) is None  # released with the run


# ---------------------------------------------------------------- (d) a resume checks the data it resumes on
@pytest.mark.slow
def test_d_resume_on_changed_data_is_refused_and_search_json_stays_as_it_was(run):
    before = _app_files(run.dir)
    added = [run.folder / "train" / c for c in CLASSES]
    for d in added:
        _images(d, 12, start=100)  # 12 → 36 training images
    try:
        rc, out, err = run_cli("search_main", *run.args, "resume=true")
    finally:
        for d in added:
            for p in d.glob("img1*.png"):
                p.unlink()
    assert rc == 2 and _one_line(err) == ("scalesearch: error: the dataset changed since this run started: train "
                                          "images 12 there, 36 here; allowed: the same data, or a new hydra.run.dir"), \
        err[-2000:]
    assert _app_files(run.dir) == before, "a refused resume changed the run (search.json: status running?)"


@pytest.mark.slow
def test_a_refused_resume_of_a_finished_run_leaves_search_json_byte_for_byte(run, tmp_path):
    """A NaN accuracy in an ok row of results.csv: refused before the data load (the tables are read first), so
    the finished run is not flipped to running."""
    copy = tmp_path / "run"
    shutil.copytree(run.dir, copy, ignore=shutil.ignore_patterns("tune"))
    table = (copy / "results.csv").read_text().splitlines()
    header = table[0].split(",")
    cells = table[1].split(",")
    cells[header.index("accuracy")] = "nan"
    (copy / "results.csv").write_text("\n".join([table[0], ",".join(cells), *table[2:]]) + "\n")
    before = _app_files(copy)
    rc, out, err = run_cli("search_main", *run.args, f"hydra.run.dir={copy}", "resume=true")
    assert rc == 2 and "results.csv: line 2: accuracy=nan" in _one_line(err), err[-2000:]
    assert _app_files(copy) == before and json.loads((copy / "search.json").read_text())["status"] == "complete"


# ---------------------------------------------------------------- (c) a run directory belongs to one app
@pytest.mark.slow
def test_c_generate_on_a_search_run_and_search_on_a_nas_run_are_refused(run, tmp_path):
    before = _app_files(run.dir)
    rc, out, err = run_cli("generate_main", f"hydra.run.dir={run.dir}")
    assert rc == 2 and _one_line(err) == (f"scalesearch: error: {run.dir} holds a scalesearch run, not a "
                                          "scalesearch-generate one; allowed: another hydra.run.dir"), err[-2000:]
    assert _app_files(run.dir) == before, "the generator replaced the search's family.json or specs/"
    nas = tmp_path / "nas"  # a NAS run as written before .scalesearch-app existed: recognised by its files
    (nas / "tune" / "nas").mkdir(parents=True)
    (nas / "results.csv").write_text("key,trial_id,arch,accuracy,status\nt0,t0,1xMB1-k3-c16,0.3,ok\n")
    (nas / "baseline.json").write_text(json.dumps({"arch": "1xMB1-k3-c16", "accuracy": 0.3}))
    (nas / "pareto.json").write_text(json.dumps({"points": []}))
    before = _app_files(nas)
    rc, out, err = run_cli("search_main", *run.args, f"hydra.run.dir={nas}")
    assert rc == 2 and _one_line(err) == (f"scalesearch: error: {nas} holds a scalesearch-nas run, not a scalesearch "
                                          "one; allowed: another hydra.run.dir"), err[-2000:]
    assert _app_files(nas) == before and not (nas / rundir.LOCK_FILE).exists() and not (nas / "search.json").exists()


@pytest.mark.slow
def test_a_refused_generate_leaves_the_search_runs_hydra_record_as_it_was(run):
    """Hydra writes .hydra/ and the job log before the app starts: the refusal comes before Hydra (cli._pre_hydra),
    so the search run's .hydra/overrides.yaml stays byte for byte and no generate.log appears."""
    hydra_files = {p.name: p.read_bytes() for p in (run.dir / ".hydra").iterdir()}
    assert b"- dataset=imagefolder\n" in hydra_files["overrides.yaml"], "not the search's own record"
    logs = sorted(p.name for p in run.dir.glob("*.log"))
    rc, out, err = run_cli("generate_main", f"hydra.run.dir={run.dir}")
    assert rc == 2 and _one_line(err) == (f"scalesearch: error: {run.dir} holds a scalesearch run, not a "
                                          "scalesearch-generate one; allowed: another hydra.run.dir"), err[-2000:]
    assert {p.name: p.read_bytes() for p in (run.dir / ".hydra").iterdir()} == hydra_files
    assert sorted(p.name for p in run.dir.glob("*.log")) == logs


# ---------------------------------------------------------------- (b) the lock of a killed run is free
@pytest.mark.slow
def test_b_after_a_sigkill_the_resume_is_accepted(run):
    log = run.tmp / "killed.log"
    killed = start_app([*run.args, "resume=true"], log)
    try:
        wait_for(lambda: _holder_pid(run.dir) == killed.pid and "(resumed)" in log.read_text(), killed, log, 120,
                 "the resume to hold the run")
        assert not kill_session(killed.pid), "processes of the killed run still alive"
    finally:
        kill_session(killed.pid)
        killed.wait()
    assert _holder_pid(run.dir) == killed.pid and rundir.holder(run.dir) is None, "the dead run's record, a free lock"
    rc, out, err = run_cli("search_main", *run.args, "resume=true")
    assert rc == 0, err[-3000:]
    assert _ok(run.dir) == run.rows, "a resume after the kill trained again or lost a training"
    assert json.loads((run.dir / "search.json").read_text())["status"] == "complete"


def _holder_pid(run_dir: Path):
    try:
        return json.loads((run_dir / rundir.LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- the module itself (in process, fast)
CLAIM = ("import sys; from scalesearch.run import rundir as R\n"
         "try:\n  R.claim(sys.argv[1], R.SEARCH).__enter__(); print('took it')\nexcept ValueError as e: print(e)")


PRECHECK = ("import sys; from scalesearch.run import rundir as R\n"
            "try:\n  R.precheck(sys.argv[1], R.SEARCH); print('free')\nexcept ValueError as e: print(e)")


def _other_process_claims(run_dir: Path, code: str = CLAIM) -> str:
    return subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def test_claim_is_reentrant_held_only_by_this_process_and_never_by_its_children(tmp_path):
    run_dir = tmp_path / "run"
    with rundir.claim(run_dir, rundir.SEARCH), rundir.claim(run_dir, rundir.VALIDATE, guest=True):
        assert rundir.holder(run_dir)["pid"] == os.getpid()
        for code in (CLAIM, PRECHECK):
            assert _other_process_claims(run_dir, code).startswith(f"run directory {run_dir} is in use by scalesearch "
                                                                   f"(pid {os.getpid()} on host ")
        child = subprocess.Popen(["sleep", "60"])  # exec'd: the descriptor is close-on-exec
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a fork()-ed child closes its copy at once (in the at-fork hook, before this line)
            os.write(ready_w, b"x")
            time.sleep(30)
            os._exit(0)
        os.read(ready_r, 1)  # the child has run its at-fork hook: only then is its copy of the lock closed
        os.close(ready_r)
        os.close(ready_w)
    try:
        assert rundir.holder(run_dir) is None and (run_dir / rundir.LOCK_FILE).read_text() == ""
        assert _other_process_claims(run_dir, PRECHECK) == "free"
        assert _other_process_claims(run_dir) == "took it", "a child of the run kept its lock"
    finally:
        child.kill()
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        child.wait()


def test_a_nested_claim_names_the_process_app_and_precheck_writes_nothing(tmp_path):
    nas, fresh = tmp_path / "nas", tmp_path / "fresh"
    with rundir.claim(nas, rundir.NAS), rundir.claim(nas / "coefficients", rundir.SEARCH):  # the chained search
        assert rundir.holder(nas / "coefficients")["app"] == "scalesearch-nas"
        assert rundir.owner_of(nas) == "scalesearch-nas" and rundir.owner_of(nas / "coefficients") == "scalesearch"
    with pytest.raises(ValueError, match="holds a scalesearch-nas run, not a scalesearch one"):
        rundir.precheck(nas, rundir.SEARCH)
    rundir.precheck(fresh, rundir.SEARCH)
    fresh.mkdir()
    rundir.precheck(fresh, rundir.SEARCH)
    assert not fresh.exists() or list(fresh.iterdir()) == []


@pytest.mark.parametrize("files, owner", [(["search.json", "baseline.json"], "scalesearch"),
                                          (["baseline.json"], "scalesearch-nas"), (["tune/nas/x"], "scalesearch-nas"),
                                          (["family.json", "specs/b0.json"], "scalesearch-generate"),
                                          (["ablation_results.csv"], "scalesearch-ablate"),
                                          (["compare.json"], "scalesearch-compare"), ([".hydra/config.yaml"], None)])
def test_owner_of_a_directory_from_before_the_marker_is_read_from_its_files(tmp_path, files, owner):
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("{}")
    assert rundir.owner_of(tmp_path) == owner
    (tmp_path / rundir.OWNER_FILE).write_text("scalesearch-nas\n")  # the marker wins
    assert rundir.owner_of(tmp_path) == "scalesearch-nas"


def test_guests_work_on_search_runs_only(tmp_path):
    search, nas = tmp_path / "s", tmp_path / "n"
    for d, app in ((search, "scalesearch"), (nas, "scalesearch-nas")):
        d.mkdir()
        (d / rundir.OWNER_FILE).write_text(app)
    for guest in (rundir.VALIDATE, rundir.REPORT, rundir.ABLATE):
        assert rundir.check_owner(search, guest, guest=True) == "scalesearch"
        with pytest.raises(ValueError, match=f"holds a scalesearch-nas run; {guest} works on scalesearch runs; "
                                             "allowed: run_dir=<a search run>"):
            rundir.check_owner(nas, guest, guest=True, elsewhere="run_dir=<a search run>")
    with pytest.raises(ValueError, match="holds a scalesearch run, not a scalesearch-ablate one"):
        rundir.check_owner(search, rundir.ABLATE)  # its own output directory: not a search run
    with rundir.claim(search, rundir.VALIDATE, guest=True):
        pass
    assert (search / rundir.OWNER_FILE).read_text() == "scalesearch"  # a guest never takes ownership


def test_data_changes_name_what_changed():
    old = {"fingerprint": "aa", "train_images": 12, "val_images": 20, "classes": 2}
    changed = {**old, "train_images": 36, "fingerprint": "bb"}
    assert rundir.data_changes(old, changed) == ["train images 12 there, 36 here"]
    assert rundir.data_changes(old, {**old, "fingerprint": "bb"}) == ["the images (fingerprint aa there, bb here)"]
    assert rundir.data_changes({"fingerprint": "aa", "classes": 2}, {**old, "train_images": 36}) == []
    rundir.check_same_data(None, old)
    with pytest.raises(ValueError, match=r"^the dataset changed since this run started: validation images 20 there, "
                                         r"5 here, classes 2 there, 3 here; allowed: the same data, or a new "
                                         r"hydra.run.dir$"):
        rundir.check_same_data(old, {**old, "val_images": 5, "classes": 3})
