"""Bad input sweep, part 2: values that used to end in a traceback or an unclear line after something had
started (a φ that cannot be built, seeds numpy / torch refuse, an Optuna storage or sampler that fails inside
Ray, an even kernel in a baseline, a NaN accuracy in a table, a multirun whose later job is bad). Each case runs
as a real subprocess, as in ``test_refusals.py`` (same runner and assertions), plus unit tests of the checks.
"""

import importlib.util
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_refusals import assert_refused, run_case

from scalesearch.config import MAX_SEED
from scalesearch.plan.preflight import check_seeds
from scalesearch.plan.samplers import check_storage, make_sampler
from scalesearch.decide.results import read_table
from scalesearch.scaling.coefficients import MAX_BLOCKS, check_phi, phi_range
from scalesearch.scaling.spec import B0, ModelSpec, StageSpec

PAPER_HIGHS = (2.0, math.sqrt(2.1), math.sqrt(2.1))  # search_spaces/compound.yaml: the largest alpha, beta, gamma
HEADER = "key,candidate,alpha,beta,gamma,seed,status,accuracy,loss\n"

# (id, app, overrides, substring stderr must contain), as test_refusals.CASES
CASES = [
    ("phi-too-large", "search_main", ["search.phi=100"],
     "search.phi=100 (alpha, beta, gamma up to 2, 1.45, 1.45): depth multiplier 1.27e+30 takes the network (16 blocks) "
     "above 16384 blocks; allowed: 0 < search.phi <= 10"),
    ("family-phi-too-large", "search_main", ["family.phis=[0,1,11]"],
     "family.phis contains 11 (with alpha up to 2, beta up to 1.45, gamma up to 1.45): depth multiplier 2.05e+03"),
    ("ablation-phi-too-large", "search_main", ["family.ablation=true", "family.ablation_phis=[1,100]"],
     "family.ablation_phis contains 100"),
    ("generate-phi-too-large", "generate_main", ["phis=[100]"],
     "phis contains 100 (b100): depth multiplier 8.28e+07 takes the network (16 blocks) above 16384 blocks; allowed: "
     "phis within [-7.27, 25.75]"),
    ("seed-too-large", "search_main", ["seed=99999999999999999999"],
     "seed=99999999999999999999 with search.n_seeds=2 uses seeds up to 100000000000000000000; allowed: 0 <= seed and "
     "seed + search.n_seeds - 1 <= 4294967295"),
    ("seed-negative", "search_main", ["seed=-1"], "seed=-1; allowed: 0 <= seed <= 4294967295"),
    ("design-unknown", "search_main", ["search=surface", "search.design=lattice"],
     "search.design=lattice; allowed: spread | shares"),
    ("nas-seed-too-large", "nas_main", ["nas.seed=4294967296"], "nas.seed=4294967296; allowed: 0 <= nas.seed"),
    ("storage-missing-dir", "search_main", ["search=optuna", "search.storage=sqlite:////nonexistent/dir/x.db"],
     "search.storage='sqlite:////nonexistent/dir/x.db': the directory /nonexistent/dir does not exist"),
    ("storage-not-a-url", "search_main", ["search=optuna", "search.storage=notaurl"],
     "search.storage='notaurl' is not a database URL; allowed: sqlite:///optuna.db"),
    ("storage-unknown-dialect", "search_main", ["search=optuna", "search.storage=nosuchdb://127.0.0.1/x"],
     "search.storage='nosuchdb://127.0.0.1/x': SQLAlchemy knows no database 'nosuchdb'"),
    ("sampler-unknown-kwarg", "search_main", ["search=optuna", "+search.sampler_kwargs.foo=1"],
     "search.sampler_kwargs={{'foo': 1}} do not fit search.sampler='TPESampler' (TPESampler.__init__() got an "
     "unexpected keyword argument 'foo'); allowed: keyword arguments of optuna.samplers.TPESampler: "),
    ("grid-sampler-without-space", "search_main", ["search=optuna", "search.sampler=GridSampler"],
     "do not fit search.sampler='GridSampler' (GridSampler.__init__() missing 1 required positional argument: "
     "'search_space'); allowed: keyword arguments of optuna.samplers.GridSampler: search_space, seed"),
    ("nas-sampler-unknown-kwarg", "nas_main", ["+nas.sampler_kwargs.foo=1"],
     "nas.sampler_kwargs={{'foo': 1}} do not fit nas.sampler='TPESampler'"),
    ("baseline-even-kernel", "search_main", ["model.baseline={tmp}/even.json"],
     "model.baseline='{tmp}/even.json' stage 2: kernel=4 is even"),
    ("report-nan-accuracy", "report_main", ["run_dir={tmp}/nan_run"],
     "{tmp}/nan_run/results.csv: line 3: accuracy=nan in a row with status ok; allowed: a finite fraction in [0, 1]"),
    ("multirun-bad-second-job", "search_main", ["-m", "search.n_seeds=2,0", "hydra.sweep.dir={tmp}/sweep"],
     "multirun job #1 (search.n_seeds=0): search.n_seeds=0; allowed: >= 1"),
    ("multirun-bad-second-dataset", "search_main", ["-m", "dataset=imagefolder",
                                                    "dataset.root={tmp}/good_tree,{tmp}/val_only",
                                                    "hydra.sweep.dir={tmp}/sweep3"],
     "multirun job #1 (dataset.root={tmp}/val_only): dataset.root: {tmp}/val_only has a val/ folder but no train/ "
     "folder"),
    ("multirun-bad-product", "search_main", ["-m", "search.n_seeds=2,3", "search.phi=1,100",
                                             "hydra.sweep.dir={tmp}/sweep2"],
     "multirun job #1 (search.n_seeds=2 search.phi=100): search.phi=100"),
]
if importlib.util.find_spec("psycopg") is None:  # SQLAlchemy's default PostgreSQL driver; nothing connects
    CASES.append(("storage-driver-missing", "search_main",
                  ["search=optuna", "search.storage=postgresql://127.0.0.1:1/x"],
                  "search.storage='postgresql://127.0.0.1:1/x' needs the postgresql driver psycopg, which is not "
                  "installed"))


def _make_inputs(tmp: Path) -> None:
    from PIL import Image

    for split, classes in (("good_tree/train", "ab"), ("good_tree/val", "ab"), ("val_only/val", "ab")):
        for c in classes:
            (tmp / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (40 * ord(c) % 256, 0, 0)).save(tmp / split / c / "0.png")
    spec = B0.to_dict()
    spec["stages"][2]["kernel"] = 4
    (tmp / "even.json").write_text(json.dumps({"spec": spec}))
    run = tmp / "nan_run"  # a run whose results.csv was edited by hand
    run.mkdir()
    (run / "results.csv").write_text(HEADER + "a1.2-b1.1-s0,a1.2-b1.1,1.2,1.1,1.15,0,ok,0.5,1.2\n"
                                              "a1.2-b1.1-s1,a1.2-b1.1,1.2,1.1,1.15,1,ok,nan,1.3\n")
    (run / "best.json").write_text('{"candidate": "a1.2-b1.1", "alpha": 1.2, "beta": 1.1, "gamma": 1.15}\n')
    (run / "family.json").write_text('{"members": []}\n')


@pytest.fixture(scope="module")
def sweep2(tmp_path_factory):
    """Every case (3 subprocesses at a time): {case id: {rc, stderr, seconds}}."""
    tmp = tmp_path_factory.mktemp("bad_input2")
    _make_inputs(tmp)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda case: run_case(case, tmp), CASES))
    return tmp, {c[0]: r for c, r in zip(CASES, results)}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_clear_message(sweep2, case):
    tmp, results = sweep2
    assert_refused(case, results[case[0]], tmp)
    assert results[case[0]]["rc"] == 2


@pytest.mark.slow
def test_a_bad_multirun_job_is_refused_before_any_job_trains(sweep2):
    tmp, results = sweep2
    assert all(results[c]["rc"] == 2 for c in ("multirun-bad-second-job", "multirun-bad-product",
                                               "multirun-bad-second-dataset"))
    for sweep in ("sweep", "sweep2", "sweep3"):  # (sweep3: job #1's image folder has no train/)  # Hydra never started: no sweep directory, so no job's results.csv
        assert not (tmp / sweep).exists() and not list(tmp.rglob(f"{sweep}/**/results.csv"))


# ---------------------------------------------------------------- the checks in-process
def test_phi_range_is_what_the_member_limits_allow():
    lo, hi = phi_range(B0, 40, PAPER_HIGHS)
    assert hi == pytest.approx(math.log2(MAX_BLOCKS / B0.num_blocks))  # depth binds: 2^phi x 16 blocks <= 2^14
    assert lo == pytest.approx(math.log(0.5) / math.log(math.sqrt(2.1)))  # width binds: 16 channels x beta^phi >= 8
    check_phi(10, "phi=10", B0, 40, PAPER_HIGHS)  # the bound itself is allowed
    with pytest.raises(ValueError, match=r"^x: width multiplier inf takes the widest layer \(1280 channels\) above "
                                         r"65536; allowed: x within \[-1\.7, 9\.7\]"):
        check_phi(1e6, "x", B0, 40, (1.0, 1.5, 1.0), "x")  # alpha = 1 never bounds depth: width does; no overflow


def test_seeds_lie_in_numpys_range():
    check_seeds(0, "seed")
    check_seeds(MAX_SEED - 2, "seed", 3, "search.n_seeds")
    with pytest.raises(ValueError, match=r"^seed=4294967294 with search.n_seeds=3 uses seeds up to 4294967296; "):
        check_seeds(MAX_SEED - 1, "seed", 3, "search.n_seeds")
    with pytest.raises(ValueError, match=r"^dataset.seed=-1; allowed: 0 <= dataset.seed <= 4294967295"):
        check_seeds(-1, "dataset.seed")


def test_storage_is_checked_without_writing(tmp_path):
    check_storage("sqlite:///optuna.db")  # in the run directory, which Hydra creates
    check_storage(f"sqlite:///{tmp_path}/optuna.db")
    check_storage("sqlite://")  # in memory
    with pytest.raises(ValueError, match=r"a relative path lies in the new run directory, which has no sub/"):
        check_storage("sqlite:///sub/optuna.db")
    with pytest.raises(ValueError, match=rf"{tmp_path} cannot be written"):
        check_storage(f"sqlite:///{tmp_path}")
    assert list(tmp_path.iterdir()) == []


def test_one_sampler_check_for_both_apps():
    assert type(make_sampler("RandomSampler", {}, "search", seed=3)).__name__ == "RandomSampler"
    make_sampler("TPESampler", {"seed": 7}, "search", seed=3)  # the kwargs' own seed wins over the app's
    with pytest.raises(ValueError, match=r"^nas.sampler_kwargs=\{'n_startup': 1\} do not fit nas.sampler='TPESampler'"):
        make_sampler("TPESampler", {"n_startup": 1}, "nas", seed=0)
    with pytest.raises(ValueError, match=r"^search.sampler='Nope' is not an optuna sampler"):
        make_sampler("Nope", {}, "search")


def test_kernel_sizes_must_be_odd():
    with pytest.raises(ValueError, match=r"^kernel=4 is even: .*; allowed: an odd kernel size"):
        StageSpec(6, 4, 1, 16, 1)
    d = B0.to_dict()
    d["stages"][5]["kernel"] = 2
    with pytest.raises(ValueError, match=r"^baseline stage 5: kernel=2 is even"):
        ModelSpec.from_dict(d, where="baseline")


def test_build_model_takes_a_spec_dict():
    from scalesearch import build_model

    small = ModelSpec.from_dict({**B0.to_dict(), "head_channels": 64})
    for given in (small.to_dict(), {"name": "b0", "resolution": 32, "spec": small.to_dict()}):  # specs/<name>.json
        model = build_model(spec=given, num_classes=10)
        assert model.spec == small and model.classifier.out_features == 10
    with pytest.raises(TypeError, match=r"^build_model\(spec=\.\.\.\): a list is not a model spec; allowed: a "):
        build_model(spec=[1, 2])


def test_a_nan_accuracy_is_refused_in_an_ok_row_only(tmp_path):
    ok = "a-s0,a,1.2,1.1,1.15,0,ok,0.5,1.2\n"
    table = tmp_path / "results.csv"
    table.write_text(HEADER + ok + "a-s1,a,1.2,1.1,1.15,1,diverged,0.0,nan\n" + "a-s2,a,1.2,1.1,1.15,2,error,nan,\n")
    rows = read_table(table)  # a diverged row as the trainer writes it (accuracy 0, loss nan), an error row: kept
    assert [r["status"] for r in rows] == ["ok", "diverged", "error"] and math.isnan(rows[1]["loss"])
    for bad in ("nan", "inf", "1.5"):
        table.write_text(HEADER + ok + f"a-s1,a,1.2,1.1,1.15,1,ok,{bad},1.2\n")
        with pytest.raises(ValueError, match=rf"^{table}: line 3: accuracy={bad} in a row with status ok; allowed: "):
            read_table(table)
