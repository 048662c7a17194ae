"""The built wheel works from any working directory: conf/ and search_spaces/ ship inside it
as package data (scalesearch/conf, scalesearch/search_spaces), so the installed apps find their
Hydra configs and search spaces without the repository.

Offline: the wheel is built with --no-build-isolation (setuptools>=77 from the dev extra), and the fresh
venv it goes into borrows this venv's dependencies (torch, ray, hydra) through a .pth line instead of
installing them. A path line in a .pth only extends sys.path — .pth files inside that directory are
not processed — so this venv's editable scalesearch stays invisible there.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

# generated or heavy things never copied into the build tree
IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                ".ipynb_checkpoints", "runs", "multirun", "outputs", ".gpu", "shared")


def run(cmd, cwd, timeout=120):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "SCALESEARCH_CONF", "HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.mark.slow
def test_wheel_works_from_any_directory(tmp_path):
    # build from a copy of the checkout: an in-tree build would leave build/ (stale files included
    # in later wheels) and rewrite *.egg-info in the repository
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src],
        cwd=tmp_path, timeout=180)
    (wheel,) = (tmp_path / "dist").glob("scalesearch-*.whl")

    # every YAML of conf/ and search_spaces/ is package data in the wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"scalesearch/conf/config.yaml", "scalesearch/conf/dataset/synthetic.yaml",
            "scalesearch/search_spaces/compound.yaml", "scalesearch/paths.py"} <= names
    for top in ("conf", "search_spaces"):
        for f in (ROOT / top).rglob("*.yaml"):
            assert f"scalesearch/{f.relative_to(ROOT).as_posix()}" in names, f"{f} is not in the wheel"
    # pyproject lists the packages explicitly: a new sub-package of scalesearch must be listed there too
    for f in (ROOT / "scalesearch").rglob("*.py"):
        assert f.relative_to(ROOT).as_posix() in names, f"{f} is not in the wheel: add its package to pyproject.toml"

    # a fresh venv that sees this venv's dependencies but not its (editable) scalesearch
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    (purelib / "_scalesearch_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: this venv's scalesearch dist-info is visible through the .pth line
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"  # neither the repository nor the build tree
    elsewhere.mkdir()
    out = run([py, "-c", "import scalesearch; from scalesearch.apps.cli import CONF_DIR; from scalesearch.plan.space import SPACES_DIR;"
               "print(scalesearch.__file__); print(CONF_DIR); print(SPACES_DIR)"], cwd=elsewhere).split()
    pkg = purelib / "scalesearch"
    assert [Path(p) for p in out] == [pkg / "__init__.py", pkg / "conf", pkg / "search_spaces"], out

    run([venv / "bin" / "scalesearch-generate", "alpha=1.2", "beta=1.1", "gamma=1.15", f"hydra.run.dir={tmp_path / 'gen'}"],
        cwd=elsewhere)
    assert [m["name"] for m in json.loads((tmp_path / "gen" / "family.json").read_text())["members"]][:2] == ["b0", "b1"]

    # a tiny real search (synthetic data, 1 grid point; the compound search space is package data)
    run([venv / "bin" / "scalesearch", "proxy.epochs=1", "dataset.train_size=100", "dataset.val_size=50",
         "proxy.batch_size=50", "dataset.image_size=32", "search.max_points=1", "search.n_seeds=1",
         "report.enabled=false", "family.train=false", "validate.enabled=false", "trials.measure_device_costs=false",
         "family.phis=[0,1]", f"hydra.run.dir={tmp_path / 'run'}"], cwd=elsewhere, timeout=240)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert {"alpha", "beta", "gamma", "accuracy_mean"} <= set(best), best
    assert not list(elsewhere.iterdir()), "the apps wrote into the working directory"


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject's package list names every sub-package of the code and every conf/ group folder (issue 34:
    conf/trials was missing; setuptools then warns "Package would be ignored")."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {f"scalesearch.conf.{d.name}" for d in (ROOT / "conf").iterdir() if d.is_dir() and d.name[0] != "_"}
    code = {".".join(f.parent.relative_to(ROOT).parts) for f in (ROOT / "scalesearch").rglob("__init__.py")}
    assert len(code) > 1 and folders and folders | code <= listed, sorted((folders | code) - listed)
