"""Bad input sweep (issue 7): every CLI refuses bad values with a non-zero exit and exactly one line on
stderr, ``scalesearch: error: ...``, naming the bad value, within 60 s, without a traceback (unless
HYDRA_FULL_ERROR=1) and without a search.json (nothing was started).

The cases run as real subprocesses, three at a time, in one module-scoped fixture (each pays the
torch import, ~4 s); every case is then its own parametrized test. Validation happens before the run
directory, the data or Ray are touched (``check_search_app``, ``check_environment``, and the command
line composed before Hydra starts, ``cli._pre_hydra``), so none of them waits for Ray.
"""

import gzip
import io
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY

LIMIT_S = 60

# (id, app, overrides, substring stderr must contain[, options]). "{tmp}" is the sweep's scratch directory.
# options: "cwd" (run there, without hydra.run.dir: Hydra's default, relative runs/... applies), "env".
CASES = [
    # the search app's settings
    ("unknown-strategy", "search_main", ["search.strategy=bogus"], "search.strategy='bogus'"),
    ("unknown-scheduler", "search_main", ["search.scheduler=hyperband"], "search.scheduler='hyperband'"),
    ("unknown-sampler", "search_main", ["search=optuna", "search.sampler=NoSuchSampler"], "search.sampler='NoSuchSampler'"),
    ("unknown-constraint", "search_main", ["search.constraint=bogus"], "search.constraint='bogus'"),
    ("unknown-cost", "search_main", ["search.cost=flops"], "search.cost='flops'"),
    ("zero-phi", "search_main", ["search.phi=0"], "search.phi=0"),
    ("validate-epochs-mult-below-one", "search_main", ["validate.epochs_mult=0.5"], "validate.epochs_mult=0.5"),
    ("validate-zero-top-k", "search_main", ["validate.top_k=0"], "validate.top_k=0"),
    ("unknown-dataset-group", "search_main", ["dataset=nosuchset"], "dataset/nosuchset"),
    ("unknown-dataset-name", "search_main", ["dataset.name=nosuchset"], "dataset.name='nosuchset'"),
    ("zero-epochs", "search_main", ["proxy.epochs=0"], "proxy.epochs=0"),
    ("negative-batch", "search_main", ["proxy.batch_size=-1"], "proxy.batch_size=-1"),
    ("epochs-not-a-number", "search_main", ["proxy.epochs=abc"], "proxy.epochs=abc"),
    ("gpus-without-gpu", "search_main", ["trials.gpus_per_trial=1"], "trials.gpus_per_trial=1"),
    ("cuda-device-without-gpu", "search_main", ["proxy.device=cuda"], "proxy.device='cuda'"),
    ("unreachable-cluster", "search_main", ["cluster.address=127.0.0.1:1"], "cluster.address='127.0.0.1:1'"),
    ("relative-tune-storage", "search_main", ["cluster.storage=shared/tune"],
     "cluster.storage='shared/tune' is neither an absolute path nor a URI"),
    ("unwritable-run-dir", "search_main", ["hydra.run.dir={tmp}/afile/run"], "{tmp}/afile"),
    ("zero-seeds", "search_main", ["search.n_seeds=0"], "search.n_seeds=0"),
    ("grid-delta-too-large", "search_main", ["search.delta=1.5"], "search.delta=1.5; allowed: in [0, 1)"),
    ("race-delta-too-large", "search_main", ["search=race", "search.n_seeds=3", "search.delta=2"], "search.delta=2.0; allowed:"),
    ("eta-on-the-grid", "search_main", ["search.eta=2"], "search.eta=2 applies to the race only"),
    ("race-eta-one", "search_main", ["search=race", "search.n_seeds=3", "search.eta=1"], "search.eta=1.0; allowed: a reduction factor > 1"),
    ("tiny-base-resolution", "search_main", ["dataset.base_resolution=8"], "dataset.base_resolution=8"),
    ("family-phis-far-below-b0", "search_main", ["family.phis=[-40]"], "family.phis contains -40"),
    ("family-phis-empty", "search_main", ["family.phis=[]"], "family.phis=[]"),
    ("unknown-key", "search_main", ["+search.foo=1"], "search.foo is not a setting"),
    # files the search reads: the search space, the baseline
    ("unreachable-constraint", "search_main", ["search.space={tmp}/impossible.yaml"],
     "impossible.yaml: alpha*beta^2*gamma^2 spans [1.000, 1.337] and never reaches target 2.0"),
    ("malformed-space-yaml", "search_main", ["search.space={tmp}/bad.yaml"], "{tmp}/bad.yaml is not valid YAML"),
    ("baseline-a-list", "search_main", ["model.baseline={tmp}/list.json"], "model.baseline='{tmp}/list.json'"),
    ("baseline-empty-mapping", "search_main", ["model.baseline={tmp}/empty.json"], "model.baseline='{tmp}/empty.json'"),
    ("baseline-truncated", "search_main", ["model.baseline={tmp}/cut.json"], "{tmp}/cut.json is not readable JSON"),
    # dataset.root
    ("missing-dataset-dir", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/missing"], "{tmp}/missing"),
    ("empty-dataset-dir", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/empty"], "{tmp}/empty"),
    ("corrupt-image", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/corrupt"], "{tmp}/corrupt/a/broken.png"),
    ("image-file-as-root", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/photo.jpg"],
     "dataset.root='{tmp}/photo.jpg' is a file"),
    ("random-bytes-zip", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/random.zip"],
     "dataset.root='{tmp}/random.zip' is not a readable tar or zip archive", {"env": {"SCALESEARCH_CACHE": "{tmp}/cache"}}),
    ("truncated-tar-gz", "search_main", ["dataset=imagefolder", "dataset.root={tmp}/cut.tar.gz"],
     "dataset.root='{tmp}/cut.tar.gz' is a truncated or corrupt archive", {"env": {"SCALESEARCH_CACHE": "{tmp}/cache"}}),
    # resuming what does not exist: into an explicit directory, and under the default runs/ path
    ("resume-nothing", "search_main", ["resume=true"], "resume=true"),
    ("resume-nothing-default-dir", "search_main", ["resume=true"], "no run under runs/synthetic-grid has these settings",
     {"cwd": "{tmp}/fresh_cwd"}),
    # the other apps
    ("coefficient-below-one", "generate_main", ["alpha=0.9"], "alpha=0.9"),
    ("coefficients-off-constraint", "generate_main", ["alpha=1.5", "beta=1.5", "gamma=1.5"], "(1.5, 1.5, 1.5)"),
    ("generate-no-phis", "generate_main", ["phis=[]"], "phis=[] is empty"),
    ("generate-unknown-key", "generate_main", ["+foo=1"], "foo is not a setting"),
    ("nas-zero-samples", "nas_main", ["nas.num_samples=0"], "nas.num_samples=0"),
    ("report-missing-run", "report_main", ["run_dir={tmp}/missing"], "{tmp}/missing"),
    ("report-truncated-best", "report_main", ["run_dir={tmp}/cut_run"], "{tmp}/cut_run/best.json"),
    ("report-truncated-results", "report_main", ["run_dir={tmp}/cut_rows"], "{tmp}/cut_rows/results.csv"),
    ("compare-empty-dir", "compare_main", ["runs=[{tmp}/empty]"], "{tmp}/empty"),
    ("validate-without-run-dir", "validate_main", [], "run_dir is not set"),
]
FULL_ERROR = ("full-error-traceback", "search_main", ["search.strategy=bogus"], "search.strategy='bogus'")


def _jpeg(size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), 128, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _make_inputs(tmp: Path) -> None:
    (tmp / "afile").write_text("a file, not a directory\n")
    (tmp / "empty").mkdir()
    (tmp / "fresh_cwd").mkdir()
    (tmp / "impossible.yaml").write_text(  # alpha*beta^2*gamma^2 <= 1.34: never reaches 2.0 ± 0.1
        "alpha: {low: 1.0, high: 1.1}\nbeta: {low: 1.0, high: 1.05}\ngamma: {low: 1.0, high: 1.05}\n"
        "step: 0.05\ntarget: 2.0\ntolerance: 0.1\n")
    (tmp / "bad.yaml").write_text("alpha: {low: 1.0, high: [\n")
    (tmp / "list.json").write_text("[1, 2, 3]\n")
    (tmp / "empty.json").write_text("{}\n")
    (tmp / "cut.json").write_text('{"spec": {"stages": [{"expand_ratio": 1, "ker')
    rng = np.random.default_rng(0)
    for c in "ab":
        for i in range(3):
            (tmp / "corrupt" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp / "corrupt" / c / f"{i}.png")
    (tmp / "corrupt" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    (tmp / "photo.jpg").write_bytes(_jpeg())
    (tmp / "random.zip").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    buf = io.BytesIO()  # an image folder of random (incompressible) JPEGs, cut in the middle of the gzip stream
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for c in "ab":
            for i in range(4):
                img = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img, format="JPEG")
                info = tarfile.TarInfo(f"data/{c}/{i}.jpg")
                info.size = len(img.getvalue())
                tar.addfile(info, io.BytesIO(img.getvalue()))
    whole = gzip.compress(buf.getvalue())
    (tmp / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    # search runs a crash (or an editor) left half-written
    header = "key,candidate,alpha,beta,gamma,seed,status,accuracy\n"
    family = '{"members": []}\n'
    (tmp / "cut_run").mkdir()
    (tmp / "cut_run" / "results.csv").write_text(header + "a1.2-b1.1-s0,a1.2-b1.1,1.2,1.")
    (tmp / "cut_run" / "best.json").write_text('{"candidate": "a1.2-b1.1", "alpha": 1.2, "be')
    (tmp / "cut_run" / "family.json").write_text(family)
    (tmp / "cut_rows").mkdir()
    (tmp / "cut_rows" / "results.csv").write_text(header + "a1.2-b1.1-s0,a1.2-b1.1,1.2,1.")
    (tmp / "cut_rows" / "best.json").write_text('{"candidate": "a1.2-b1.1", "alpha": 1.2, "beta": 1.1, "gamma": 1.15}\n')
    (tmp / "cut_rows" / "family.json").write_text(family)


def run_case(case, tmp: Path, full_error=False):
    """Run one case as a subprocess: {rc, stderr, seconds}."""
    name, app, overrides, _, *rest = case
    opts = rest[0] if rest else {}
    args = [o.format(tmp=tmp) for o in overrides]
    if "cwd" not in opts and not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={tmp / 'runs' / name}")
    if app == "search_main":
        args = [*TINY, *args]  # the bad value comes last: it wins over TINY
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env.update({k: v.format(tmp=tmp) for k, v in opts.get("env", {}).items()})
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    t = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", f"from scalesearch.apps.cli import {app} as m; m()", *args],
                           cwd=opts.get("cwd", str(ROOT)).format(tmp=tmp), env=env, capture_output=True, text=True,
                           timeout=LIMIT_S * 2, stdin=subprocess.DEVNULL)
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
        results = list(pool.map(lambda job: run_case(job[0], tmp, job[1]), jobs))
    return tmp, {("full" if full else "") + c[0]: r for (c, full), r in zip(jobs, results)}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_clear_message(sweep, case):
    tmp, results = sweep
    assert_refused(case, results[case[0]], tmp)


def assert_refused(case, r: dict, tmp: Path) -> None:
    """One case's result (run_case): a non-zero exit within LIMIT_S, one 'scalesearch: error:' line naming the bad
    value and what is allowed, no traceback, no search started."""
    name, app, overrides, expect, *_ = case
    expect = expect.format(tmp=tmp)
    err = r["stderr"]
    assert r["rc"] is not None, f"{name}: still running after {LIMIT_S * 2} s"
    assert r["rc"] != 0, f"{name}: exit code 0 for {overrides}\n{err[-2000:]}"
    assert r["seconds"] < LIMIT_S, f"{name}: took {r['seconds']:.0f} s"
    assert "Traceback" not in err, f"{name}: traceback without HYDRA_FULL_ERROR:\n{err[-3000:]}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalesearch: error: "), \
        f"{name}: stderr is not one 'scalesearch: error:' line:\n{err[-3000:]}"
    assert expect in lines[0], f"{name}: stderr does not name {expect!r}:\n{err[-2000:]}"
    assert "allowed:" in lines[0] or name.startswith("resume-"), f"{name}: the message does not say what is allowed"
    run = tmp / "runs" / name  # nothing was started: no run directory holds a search or a trained trial
    assert not (run / "search.json").exists() and not (run / "results.csv").exists()


@pytest.mark.slow
def test_unknown_key_is_refused_before_the_run_directory_exists(sweep):
    tmp, results = sweep
    assert results["unknown-key"]["rc"] == 2 and results["generate-unknown-key"]["rc"] == 2
    assert not (tmp / "runs" / "unknown-key").exists() and not (tmp / "runs" / "generate-unknown-key").exists()


@pytest.mark.slow
def test_resume_of_nothing_leaves_no_directory_under_runs(sweep):
    tmp, results = sweep
    assert results["resume-nothing-default-dir"]["rc"] == 2
    assert list((tmp / "fresh_cwd").iterdir()) == []  # no runs/synthetic-grid/<now> left behind


@pytest.mark.slow
def test_a_bad_archive_leaves_no_partial_extraction(sweep):
    tmp, results = sweep
    assert results["random-bytes-zip"]["rc"] == 2 and results["truncated-tar-gz"]["rc"] == 2
    assert [p for p in (tmp / "cache").rglob("*") if p.name != "archives"] == []


@pytest.mark.slow
def test_full_traceback_with_hydra_full_error(sweep):
    _, results = sweep
    r = results["full" + FULL_ERROR[0]]
    assert r["rc"] not in (0, None)
    assert "Traceback" in r["stderr"] and FULL_ERROR[3] in r["stderr"], r["stderr"][-2000:]
