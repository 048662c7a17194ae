"""A simulated cluster (issue 37): N nodes started with `ray start` on 127.0.0.1 (one CPU each, each in its own
temp dir; no directory shared between nodes but the declared ``cluster.storage``), one grid search of many small
trainings per size through the documented command (``scalesearch cluster.address=… cluster.storage=…``), then the
same command with ``resume=true`` on the finished run. Per size: trials per minute, the per-trial orchestration
overhead ((stage wall × slots − Σ trial wall) / trials), the driver's CPU seconds and peak memory (``wait4`` of the
driver process), the time to resume the finished run, and on how many nodes the trainings ran.

    python benchmarks/cluster_scale.py                               # 1, 2, 4, 8 nodes × 200 trainings
    python benchmarks/cluster_scale.py --nodes 1 2 4 --trainings 120
    python benchmarks/cluster_scale.py --nodes 1 4 --race 8          # a race with two rungs: the same on 1 and 4
    python benchmarks/cluster_scale.py --nodes 4 --race 8 --faults   # the same race, a node and the driver killed
    python benchmarks/cluster_scale.py --nodes 2 --shared 4          # a multirun, then two drivers, on one cluster

On one machine the nodes share its cores: this measures how the orchestration grows with nodes and trials, not a
speed-up. Results: benchmarks/results/cluster_scale.json (command, date, machine).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import RAY_ENV, kill_session, ray_cluster, start_app, wait_for  # noqa: E402  (the suite's own real `ray start` cluster)

from scalesearch.io import atomic_write_json, read_json  # noqa: E402
from scalesearch.decide.results import read_table  # noqa: E402

SMALL = ["proxy.epochs=1", "dataset.train_size=40", "dataset.val_size=20", "proxy.batch_size=20",
         "dataset.image_size=32", "report.enabled=false", "family.train=false", "validate.enabled=false",
         "trials.measure_device_costs=false", "verbose=0"]


def save(out: str, **figures) -> None:
    """The benchmark's result file: its command, date and machine, the settings, then ``figures``."""
    atomic_write_json(out, {"command": "python benchmarks/cluster_scale.py " + " ".join(sys.argv[1:]),
                            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                            f"{os.cpu_count()} cores", "settings": SMALL, **figures})


def driver(args: list[str], env: dict) -> dict:
    """Run the search app as the user does; its wall, CPU seconds and peak RSS (this process only)."""
    cmd = [sys.executable, "-c", "import sys; from scalesearch.apps.cli import search_main as m; "
           "sys.argv[0]='scalesearch'; m()", *args]
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"the search failed (exit {p.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(time.time() - t0, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def one_size(nodes: int, trainings: int, seeds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cs") as tmp:
        tmp = Path(tmp)
        run, storage = tmp / "run", tmp / "storage"
        with ray_cluster(tmp, head_cpus=1, workers=nodes - 1) as (address, _workers):
            env = {**os.environ, **RAY_ENV}
            args = [*SMALL, f"search.n_seeds={seeds}", f"search.max_points={trainings // seeds}",
                    f"cluster.address={address}", f"cluster.storage={storage}", f"hydra.run.dir={run}"]
            first = driver(args, env)
            rows = read_table(run / "results.csv")
            stage = read_json(run / "search.json")["stages"]["search"]
            resumed = driver([*args, "resume=true"], env)
            again = read_table(run / "results.csv")
        stage_s = stage["finished"] - stage["started"]
        trial_s = sum(r["wall_s"] for r in rows)
        retrained = sum(a["trial_id"] != b["trial_id"] for a, b in zip(rows, again))
        return {"nodes": nodes, "trainings": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
                "nodes_used": len({r["node"] for r in rows}), "stage_s": round(stage_s, 2),
                "trials_per_min": round(len(rows) / stage_s * 60, 1),
                "overhead_per_trial_s": round((stage_s * nodes - trial_s) / len(rows), 3),
                "sum_trial_s": round(trial_s, 2), "driver": first, "resume": resumed,
                "retrained_on_resume": retrained}


def written_since(t0: float, keep: list[Path]) -> list[str]:
    """Files modified after ``t0`` under /tmp, $HOME and this checkout, outside ``keep`` (the run directory, the
    storage, the nodes' own Ray temp dirs) and Python's bytecode caches: what a run wrote where it should not."""
    out = []
    for top in {Path("/tmp"), Path.home(), ROOT}:
        for d, dirs, files in os.walk(top):
            here = Path(d)
            dirs[:] = [x for x in dirs if x not in ("__pycache__", ".git", ".venv", "proc")
                       and not any((here / x).resolve() == k.resolve() for k in keep)]
            for f in files:
                with contextlib.suppress(OSError):
                    if (here / f).stat().st_mtime > t0:
                        out.append(str(here / f))
    return sorted(out)


def one_race(nodes: int, candidates: int) -> dict:
    """A race with two rungs (1 and 2 epochs, 3 seeds) on ``nodes`` nodes: what it trained (best.json's spent
    epochs, its rows), where each rung-2 row continued its trunk (on another node than the rung-1 row that saved
    it, or the same), and its accuracies and decision (compared across sizes by :func:`main`)."""
    with tempfile.TemporaryDirectory(prefix="cr") as tmp:
        tmp = Path(tmp)
        run, storage = tmp / "run", tmp / "storage"
        with ray_cluster(tmp, head_cpus=1, workers=nodes - 1) as (address, _workers):
            args = [*SMALL, "search=race", "search.rungs=[1,2]", "search.max_seeds=3",
                    f"search.max_points={candidates}", f"cluster.address={address}", f"cluster.storage={storage}",
                    f"hydra.run.dir={run}"]
            t0 = time.time()
            first = driver(args, {**os.environ, **RAY_ENV})
            temps = [Path(t) for t in glob.glob("/tmp/rc*") if Path(t).stat().st_mtime >= t0 - 600]
            stray = written_since(t0, [tmp, *temps])
        rows = read_table(run / "results.csv")
        best = read_json(run / "best.json")
    ok = [r for r in rows if r["status"] == "ok"]
    below = {(r["candidate"], r["seed"]): r["node"] for r in ok if float(r["rung"]) == 1}
    top = [r for r in ok if float(r["rung"]) == 2]
    return {"nodes": nodes, "candidates": candidates, "rows": len(rows), "ok": len(ok),
            "rows_per_rung": {str(k): sum(float(r["rung"]) == k for r in rows) for k in (1, 2)},
            "spent_epochs": best["race"]["spent"], "stop": best["race"]["stop"], "pick": best["candidate"],
            "continued": sum(int(r["continued_from"]) > 0 for r in top),
            "continued_on_another_node": sum(int(r["continued_from"]) > 0
                                             and r["node"] != below.get((r["candidate"], r["seed"])) for r in top),
            "nodes_used": len({r["node"] for r in ok}), "driver": first, "written_elsewhere": stray,
            "accuracy": {r["key"]: r["accuracy"] for r in ok}}


def _ok(run: Path, rung: int) -> int:
    path = run / "results.csv"
    return sum(r["status"] == "ok" and float(r["rung"]) == rung for r in read_table(path)) if path.exists() else 0


def dead_nodes(address: str) -> list[str]:
    """The ids (12 characters, as the tables write them) of the cluster's nodes that Ray marks dead."""
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps([n['NodeID'][:12] for n in ray.nodes() if not n['Alive']]))" % address)
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **RAY_ENV}, capture_output=True,
                         text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def faulty_race(nodes: int, candidates: int, out: str) -> None:
    """The same race on ``nodes`` nodes with two faults: a worker node SIGKILLed (its whole process session: raylet,
    workers) once a third of rung 1 has finished, then the driver SIGKILLed once 2 rung-2 trainings have finished,
    and the run resumed with ``resume=true`` against the same (now smaller) cluster. Nothing may be lost (every
    training finishes), nothing trained twice (a row finished before the driver's kill keeps its trial id), and
    the rung-2 rows whose trunk the lost node saved continue it."""
    with tempfile.TemporaryDirectory(prefix="cf") as tmp:
        tmp = Path(tmp)
        run, storage, log = tmp / "run", tmp / "storage", tmp / "driver.log"
        with ray_cluster(tmp, head_cpus=1, workers=nodes - 1) as (address, workers):
            workers = workers if isinstance(workers, list) else [workers]
            args = [*SMALL, "search=race", "search.rungs=[1,2]", "search.max_seeds=3",
                    f"search.max_points={candidates}", f"cluster.address={address}", f"cluster.storage={storage}",
                    f"hydra.run.dir={run}"]
            t0 = time.time()
            p = start_app(args, log, env=RAY_ENV)
            wait_for(lambda: _ok(run, 1) >= candidates, p, log, 900, "a third of rung 1")
            kill_session(workers[0].pid)
            node_killed_at = round(time.time() - t0, 1)
            wait_for(lambda: _ok(run, 2) >= 2, p, log, 900, "2 rung-2 trainings")
            kill_session(p.pid)
            p.wait()
            driver_killed_at = round(time.time() - t0, 1)
            before = {r["key"]: r["trial_id"] for r in read_table(run / "results.csv") if r["status"] == "ok"}
            lost = dead_nodes(address)
            resumed = driver([*args, "resume=true"], {**os.environ, **RAY_ENV})
        rows = read_table(run / "results.csv")
        best = read_json(run / "best.json")
    below = {(r["candidate"], r["seed"]): r["node"] for r in rows if float(r["rung"]) == 1}
    top = [r for r in rows if float(r["rung"]) == 2]
    result = {"nodes": nodes, "candidates": candidates, "rows": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
              "rows_per_rung": {str(k): sum(float(r["rung"]) == k for r in rows) for k in (1, 2)},
              "node_killed_at_s": node_killed_at, "driver_killed_at_s": driver_killed_at, "lost_nodes": lost,
              "finished_before_driver_kill": len(before),
              "trained_twice": sum(before[r["key"]] != r["trial_id"] for r in rows if r["key"] in before),
              "retried_rows": sum(int(r["failures"] or 0) > 0 for r in rows),
              "rung2_on_lost_node_trunks": sum(below.get((r["candidate"], r["seed"])) in lost for r in top),
              "of_which_continued": sum(below.get((r["candidate"], r["seed"])) in lost
                                        and int(r["continued_from"]) > 0 for r in top),
              "spent_epochs": best["race"]["spent"],
              "pick": best["candidate"], "resume": resumed, "accuracy": {r["key"]: r["accuracy"] for r in rows}}
    save(out, faulty_race=result)
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}, indent=1))


def shared(nodes: int, points: int, out: str) -> None:
    """Runs sharing one cluster of ``nodes`` nodes and one ``cluster.storage``: a Hydra multirun of two jobs with
    Hydra's basic launcher (one driver, its jobs one after the other, each joining the cluster), the same multirun
    with the joblib launcher (both jobs at once, in its worker processes, each joining the cluster), then two
    drivers started at the same time (two users); then both multiruns with a new local Ray per job
    (``cluster.num_cpus`` = nodes), for reference. Per run: its trainings, on how many nodes, its own experiment
    folder."""
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    with tempfile.TemporaryDirectory(prefix="cm") as tmp:
        tmp = Path(tmp)
        storage, env = tmp / "storage", {**os.environ, **RAY_ENV}
        sweep = ["-m", f"search.max_points={points},{points + 1}", *SMALL, "search.n_seeds=2"]
        with ray_cluster(tmp, head_cpus=1, workers=nodes - 1) as (address, _workers):
            joined = [f"cluster.address={address}", f"cluster.storage={storage}"]
            multi = driver([*sweep, *joined, f"hydra.sweep.dir={tmp / 'multi'}"], env)
            multi_parallel = driver([*sweep, *joined, *parallel, f"hydra.sweep.dir={tmp / 'multi_parallel'}"], env)
            t0 = time.time()
            ps = [start_app([*SMALL, "search.n_seeds=2", *joined, f"search.max_points={points}", f"seed={i}",
                             f"hydra.run.dir={tmp / f'p{i}'}"], tmp / f"p{i}.log", env=RAY_ENV) for i in (0, 1)]
            codes = [p.wait() for p in ps]
            together = round(time.time() - t0, 2)
        local = driver([*sweep, f"cluster.num_cpus={nodes}", f"hydra.sweep.dir={tmp / 'local'}"], env)
        local_parallel = driver([*sweep, f"cluster.num_cpus={nodes}", *parallel,
                                 f"hydra.sweep.dir={tmp / 'local_parallel'}"], env)
        runs = {f"multirun job {j}": tmp / "multi" / f"{j}_synthetic" for j in (0, 1)} | \
               {f"parallel multirun job {j}": tmp / "multi_parallel" / f"{j}_synthetic" for j in (0, 1)} | \
               {f"parallel driver {i}": tmp / f"p{i}" for i in (0, 1)}
        result = {"nodes": nodes, "multirun_driver": multi, "parallel_multirun_driver": multi_parallel,
                  "multirun_with_a_local_ray_per_job": local,
                  "parallel_multirun_with_a_local_ray_per_job": local_parallel,
                  "parallel_exit_codes": codes, "parallel_wall_s": together,
                  "experiments_in_storage": sorted(x.name for x in storage.iterdir()), "runs": {}}
        for d in ("local", "local_parallel"):
            result[f"{d}_jobs_ok"] = [sum(r["status"] == "ok" for r in read_table(tmp / d / f"{j}_synthetic" /
                                                                                  "results.csv")) for j in (0, 1)]
        for name, run in runs.items():
            rows = read_table(run / "results.csv")
            result["runs"][name] = {"trainings": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
                                    "nodes_used": len({r["node"] for r in rows}),
                                    "status": read_json(run / "search.json")["status"]}
    save(out, shared=result)
    print(json.dumps(result, indent=1))


def races(nodes: list[int], candidates: int, out: str) -> None:
    """The race on each size; the same race must train exactly the same epochs (and rows, accuracies, decision)
    on every size — a trunk is found whichever node continues it."""
    sizes = []
    for n in nodes:
        print(f"race: {n} node(s), {candidates} candidates x 3 seeds, rungs 1 and 2 ...", file=sys.stderr, flush=True)
        sizes.append(one_race(n, candidates))
    ref = sizes[0]
    for s in sizes:
        s["same_as_first"] = {k: s[k] == ref[k] for k in ("spent_epochs", "rows_per_rung", "pick", "accuracy")}
        print(json.dumps({k: v for k, v in s.items() if k != "accuracy"}), file=sys.stderr, flush=True)
    save(out, races=sizes)
    print(f"{'nodes':>5} {'rows':>4} {'rung 1/2':>8} {'spent epochs':>12} {'continued':>9} {'on another node':>15} "
          f"{'pick':>18} {'same as 1st':>11}")
    for s in sizes:
        print(f"{s['nodes']:>5} {s['rows']:>4} {s['rows_per_rung']['1']:>4}/{s['rows_per_rung']['2']:<3} "
              f"{s['spent_epochs']:>12} {s['continued']:>9} {s['continued_on_another_node']:>15} {s['pick']:>18} "
              f"{str(all(s['same_as_first'].values())):>11}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--trainings", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--race", type=int, metavar="CANDIDATES", default=0,
                    help="instead: a race of CANDIDATES x 3 seeds with rungs 1 and 2 on each size")
    ap.add_argument("--faults", action="store_true", help="with --race, on the largest size: a node and then the "
                    "driver SIGKILLed mid-race, the run resumed against the same cluster")
    ap.add_argument("--shared", type=int, metavar="POINTS", default=0,
                    help="instead: a two-job multirun (basic and joblib launchers), then two drivers at once, on one "
                    "cluster of the largest size; both multiruns again with a local Ray per job")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.shared:
        shared(max(a.nodes), a.shared, a.out or str(ROOT / "benchmarks" / "results" / "cluster_shared.json"))
        return
    if a.race and a.faults:
        faulty_race(max(a.nodes), a.race, a.out or str(ROOT / "benchmarks" / "results" / "cluster_race_faults.json"))
        return
    if a.race:
        races(a.nodes, a.race, a.out or str(ROOT / "benchmarks" / "results" / "cluster_race.json"))
        return
    a.out = a.out or str(ROOT / "benchmarks" / "results" / "cluster_scale.json")
    sizes = []
    for n in a.nodes:
        print(f"{n} node(s), {a.trainings} trainings ...", file=sys.stderr, flush=True)
        sizes.append(one_size(n, a.trainings, a.seeds))
        print(json.dumps(sizes[-1]), file=sys.stderr, flush=True)
    save(a.out, sizes=sizes)
    print(f"{'nodes':>5} {'trainings':>9} {'used':>4} {'trials/min':>10} {'overhead/trial s':>16} "
          f"{'driver CPU s':>12} {'driver peak MiB':>15} {'resume s':>8}")
    for s in sizes:
        print(f"{s['nodes']:>5} {s['trainings']:>9} {s['nodes_used']:>4} {s['trials_per_min']:>10} "
              f"{s['overhead_per_trial_s']:>16} {s['driver']['cpu_s']:>12} {s['driver']['peak_rss_mib']:>15} "
              f"{s['resume']['wall_s']:>8}")


if __name__ == "__main__":
    main()
