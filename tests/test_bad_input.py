"""Bad input sweep (issue 7): every CLI refuses bad values with a non-zero exit and a message on
stderr naming the bad value, within 60 s, without a traceback (unless HYDRA_FULL_ERROR=1).

The cases run as real subprocesses, three at a time, in one module-scoped fixture (each pays the
torch import, ~4 s); every case is then its own parametrized test. Validation happens before the run
directory, the data or Ray are touched (``search.validate`` / ``check_environment``), so none of
them waits for Ray.
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TINY

LIMIT_S = 60

# (id, app, overrides, substring stderr must contain). "{tmp}" is the sweep's scratch directory.
CASES = [
    ("unknown-strategy", "search_main", ["search.strategy=bogus"], "search.strategy='bogus'"),
    ("unknown-scheduler", "search_main", ["search.scheduler=hyperband"], "search.scheduler='hyperband'"),
    ("unknown-sampler", "search_main", ["search=optuna", "search.sampler=NoSuchSampler"], "search.sampler='NoSuchSampler'"),
    ("unknown-dataset-group", "search_main", ["dataset=nosuchset"], "dataset/nosuchset"),
    ("unknown-dataset-name", "search_main", ["dataset.name=nosuchset"], "dataset.name='nosuchset'"),
    ("unreachable-constraint", "search_main", ["search.space={tmp}/impossible.yaml"], "space impossible"),
    ("missing-dataset-dir", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/missing"], "{tmp}/missing"),
    ("empty-dataset-dir", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/empty"], "{tmp}/empty"),
    ("corrupt-image", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/corrupt"], "{tmp}/corrupt/a/broken.png"),
    ("zero-epochs", "search_main", ["proxy.epochs=0"], "proxy.epochs=0"),
    ("negative-batch", "search_main", ["proxy.batch_size=-1"], "proxy.batch_size=-1"),
    ("epochs-not-a-number", "search_main", ["proxy.epochs=abc"], "proxy.epochs=abc"),
    ("gpus-without-gpu", "search_main", ["search.gpus_per_trial=1"], "search.gpus_per_trial=1"),
    ("cuda-device-without-gpu", "search_main", ["proxy.device=cuda"], "proxy.device='cuda'"),
    ("unreachable-cluster", "search_main", ["cluster.address=127.0.0.1:1"], "cluster.address='127.0.0.1:1'"),
    ("unwritable-run-dir", "search_main", ["hydra.run.dir={tmp}/afile/run"], "{tmp}/afile"),
    ("zero-seeds", "search_main", ["search.n_seeds=0"], "search.n_seeds=0"),
    ("tiny-base-resolution", "search_main", ["dataset.base_resolution=8"], "dataset.base_resolution=8"),
    ("resume-nothing", "search_main", ["resume=true"], "resume=true"),
    ("coefficient-below-one", "generate_main", ["alpha=0.9"], "alpha=0.9"),
    ("coefficients-off-constraint", "generate_main", ["alpha=1.5", "beta=1.5", "gamma=1.5"], "(1.5, 1.5, 1.5)"),
]
if (ROOT / "scalesearch" / "nas.py").exists() and (ROOT / "conf" / "nas.yaml").exists():
    CASES.append(("nas-zero-samples", "nas_main", ["nas.num_samples=0"], "nas.num_samples=0"))
if (ROOT / "scalesearch" / "report.py").exists() and (ROOT / "conf" / "report.yaml").exists():
    CASES.append(("report-missing-run", "report_main", ["run_dir={tmp}/missing"], "{tmp}/missing"))

FULL_ERROR = ("full-error-traceback", "search_main", ["search.strategy=bogus"], "search.strategy='bogus'")


def _make_inputs(tmp: Path) -> None:
    (tmp / "afile").write_text("a file, not a directory\n")
    (tmp / "empty").mkdir()
    (tmp / "impossible.yaml").write_text(  # alpha*beta^2*gamma^2 <= 1.34: never reaches 2.0 ± 0.1
        "alpha: {low: 1.0, high: 1.1}\nbeta: {low: 1.0, high: 1.05}\ngamma: {low: 1.0, high: 1.05}\n"
        "step: 0.05\ntarget: 2.0\ntolerance: 0.1\n")
    rng = np.random.default_rng(0)
    for c in "ab":
        for i in range(3):
            (tmp / "corrupt" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp / "corrupt" / c / f"{i}.png")
    (tmp / "corrupt" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")


def _run(case, tmp: Path, full_error=False):
    name, app, overrides, _ = case
    args = [o.format(tmp=tmp) for o in overrides]
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={tmp / 'runs' / name}")
    if app == "search_main":
        args = [*TINY, *args]  # the bad value comes last: it wins over TINY
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    t = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", f"from scalesearch.cli import {app} as m; m()", *args], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=LIMIT_S * 2, stdin=subprocess.DEVNULL)
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = None, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    return {"rc": rc, "stderr": err, "seconds": time.time() - t}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run every case (3 subprocesses at a time): {case id: {rc, stderr, seconds}}."""
    tmp = tmp_path_factory.mktemp("bad_input")
    _make_inputs(tmp)
    jobs = [(c, False) for c in CASES] + [(FULL_ERROR, True)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: _run(job[0], tmp, job[1]), jobs))
    return tmp, {("full" if full else "") + c[0]: r for (c, full), r in zip(jobs, results)}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_clear_message(sweep, case):
    tmp, results = sweep
    name, app, overrides, expect = case
    r = results[name]
    expect = expect.format(tmp=tmp)
    assert r["rc"] is not None, f"{name}: still running after {LIMIT_S * 2} s"
    assert r["rc"] != 0, f"{name}: exit code 0 for {overrides}\n{r['stderr'][-2000:]}"
    assert r["seconds"] < LIMIT_S, f"{name}: took {r['seconds']:.0f} s"
    assert expect in r["stderr"], f"{name}: stderr does not name {expect!r}:\n{r['stderr'][-2000:]}"
    assert "Traceback" not in r["stderr"], f"{name}: traceback without HYDRA_FULL_ERROR:\n{r['stderr'][-3000:]}"
    if app != "nas_main":  # nothing was started: no run directory holds a search
        assert not (tmp / "runs" / name / "search.json").exists()


@pytest.mark.slow
def test_full_traceback_with_hydra_full_error(sweep):
    _, results = sweep
    r = results["full" + FULL_ERROR[0]]
    assert r["rc"] not in (0, None)
    assert "Traceback" in r["stderr"] and FULL_ERROR[3] in r["stderr"], r["stderr"][-2000:]


def test_sweep_is_wide_enough():
    assert len(CASES) >= 20
    assert {"search_main", "generate_main"} <= {c[1] for c in CASES}
