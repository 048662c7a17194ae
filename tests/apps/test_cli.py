"""The command-line surface of every app: --help / -h / --version, the shipped YAML defaults against the
dataclasses, unknown keys refused before Hydra creates a run directory, artifacts written with the
user's umask, and a concise console at the default verbosity (Ray Tune's tables only with verbose=2)."""

import dataclasses
import json
import os
import re
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib
import yaml
from helpers import ROOT, TINY, run_cli
from omegaconf import OmegaConf

import scalesearch
from scalesearch.apps import cli
from scalesearch import config as C
from scalesearch.decide.results import read_table

# every entry point of scalesearch.apps.cli -> (its config in conf/, its dataclass, its program name)
APPS = {
    "main": ("config", C.SearchAppConfig, "scalesearch"),
    "search_main": ("config", C.SearchAppConfig, "scalesearch"),
    "generate_main": ("generate", C.GenerateConfig, "scalesearch-generate"),
    "report_main": ("report", C.ReportAppConfig, "scalesearch-report"),
    "validate_main": ("validate", C.ValidateAppConfig, "scalesearch-validate"),
    "ablate_main": ("ablate", C.AblateAppConfig, "scalesearch-ablate"),
    "nas_main": ("nas", C.NASAppConfig, "scalesearch-nas"),
    "compare_main": ("compare", C.CompareAppConfig, "scalesearch-compare"),
}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = {name: target.split(":") for name, target in PYPROJECT["project"]["scripts"].items()}  # name -> [module, fn]
# the functions the help runs cover: every console script's, and every app's (a script or not; main is search_main)
HELP_FNS = sorted({fn for _, fn in SCRIPTS.values()} | (set(APPS) - {"main", "search_main"}))
CONF = Path(cli.CONF_DIR)
_ABSENT = object()


def compose(config_name: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


@pytest.fixture(scope="module")
def outputs():
    """--help of every entry point, each a real subprocess (3 at a time): {fn: (rc, out, err)}."""
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(HELP_FNS, pool.map(lambda fn: run_cli(fn, "--help", timeout=120), HELP_FNS)))


def in_process(fn: str, *argv: str, capsys) -> tuple[int, str, str]:
    """An entry point called here, for the flags it handles before Hydra: (exit code, stdout, stderr). Its signal
    handlers are not installed in pytest's process."""
    saved = sys.argv, cli._install_signal_handlers
    sys.argv, cli._install_signal_handlers = [fn, *argv], lambda: None
    try:
        with pytest.raises(SystemExit) as e:
            getattr(cli, fn)()
    finally:
        sys.argv, cli._install_signal_handlers = saved
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _help_sections(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """({group: options}, [main key entries]) parsed from an app's --help."""
    groups, keys, section = {}, [], None
    for line in text.splitlines():
        if not line.startswith("  "):
            section = line.rstrip(":") if line.endswith(":") else None
        elif section == "groups":
            name, options = line.split(None, 1)
            groups[name] = [o.strip() for o in options.split(",")]
        elif section == "main keys (default)":
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)  # a long default leaves one space
            keys.append(parts[0] if len(parts) > 1 else line.strip().split(" ", 1)[0])
    return groups, keys


# ---------------------------------------------------------------- console scripts, --help, --version
def test_every_console_script_is_an_app_of_the_cli_under_the_supervisor():
    assert SCRIPTS, "pyproject.toml has no [project.scripts]"
    for name, (module, fn) in SCRIPTS.items():
        assert module == "scalesearch.apps.supervise" and fn in APPS and hasattr(cli, fn), \
            f"{name} = {module}:{fn} is not an app of scalesearch.apps.cli under scalesearch.apps.supervise"
        assert name == APPS[fn][2], f"console script {name} runs {fn}, whose --help and --version say {APPS[fn][2]}"


def test_help_into_a_closed_pipe_is_not_an_error(tmp_path):
    """``scalesearch --help | head -1``: the reader is gone before the help is written (closed at once here, while
    the app still imports) — exit 0, no BrokenPipeError traceback."""
    import subprocess
    import sys

    p = subprocess.Popen([str(Path(sys.executable).parent / "scalesearch"), "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=tmp_path)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_every_app_has_a_console_script():
    assert {fn for _, fn in SCRIPTS.values()} >= set(APPS) - {"search_main"}


@pytest.mark.parametrize("fn", HELP_FNS)
def test_help_lists_groups_and_main_keys_and_points_to_the_readme(outputs, fn):
    rc, out, err = outputs[fn]
    config_name, _, prog = APPS[fn]
    assert rc == 0, err[-2000:]
    assert out.startswith(f"{prog} {scalesearch.__version__} — "), out[:200]
    assert "README" in out and "usage:" in out
    groups, keys = _help_sections(out)
    assert len(keys) >= 2, out
    defaults = yaml.safe_load((CONF / f"{config_name}.yaml").read_text())["defaults"]
    used = {next(iter(d)) for d in defaults if isinstance(d, dict)}  # the groups the app's config composes
    assert {g.lstrip("+") for g in groups} >= used, f"--help lists groups {sorted(groups)}, the config uses {sorted(used)}"


@pytest.mark.parametrize("fn", HELP_FNS)
def test_help_groups_and_keys_exist_in_the_composed_config(outputs, fn):
    """A group lists the options in conf/<group>/ (+experiment: those that compose with this app), each composes;
    every main key exists, and its shown default, typed back as an override, changes nothing."""
    config_name, _, _ = APPS[fn]
    groups, keys = _help_sections(outputs[fn][1])
    base = compose(config_name)
    for group, options in groups.items():
        available = sorted(p.stem for p in (CONF / group.lstrip("+")).glob("*.yaml"))
        assert group == "+experiment" or options == available, f"{group}: --help lists {options}, conf has {available}"
        assert set(options) <= set(available), group
        for option in available:
            if option in options:
                compose(config_name, f"{group}={option}")
            else:  # left out: an experiment of another app (experiment/nas_chain sets nas.*)
                with pytest.raises(Exception, match="not in"):
                    compose(config_name, f"{group}={option}")
    for entry in keys:
        key, sep, shown = entry.partition("=")
        if not sep:  # "alpha, beta, gamma": names only
            for name in key.split(","):
                assert OmegaConf.select(base, name.strip(), default=_ABSENT) is not _ABSENT, name
            continue
        assert OmegaConf.select(base, key, default=_ABSENT) is not _ABSENT, f"--help shows {key}: not a key"
        assert compose(config_name, entry) == base, f"--help shows {entry}, which is not the default"


@pytest.mark.parametrize("fn", HELP_FNS)
def test_short_help_is_the_help_and_version_is_scalesearchs(outputs, fn, capsys):
    """-h prints what --help prints; --version (and -V) scalesearch's version, not Hydra's (in process: these
    flags are handled before Hydra)."""
    assert in_process(fn, "-h", capsys=capsys) == (0, outputs[fn][1], "")
    for flag in ("--version", "-V"):
        code, out, err = in_process(fn, flag, capsys=capsys)
        assert (code, out, err) == (0, f"{APPS[fn][2]} {scalesearch.__version__}\n", ""), (flag, out, err)


def test_package_version_is_pyprojects():
    assert scalesearch.__version__ == PYPROJECT["project"]["version"]


# ---------------------------------------------------------------- the shipped YAML is the dataclasses' defaults
@pytest.mark.parametrize("config_name", list(cli.SCHEMAS))
def test_yaml_defaults_equal_the_dataclass_defaults(config_name):
    schema = cli.SCHEMAS[config_name][1]
    got, want = OmegaConf.to_object(compose(config_name)), schema()

    def diff(a, b, prefix=""):
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            return [d for f in dataclasses.fields(a) for d in diff(getattr(a, f.name), getattr(b, f.name), f"{prefix}{f.name}.")]
        return [] if a == b else [f"{prefix.rstrip('.')}: yaml {a!r} != dataclass {b!r}"]

    assert got == want, f"conf/{config_name}.yaml: {diff(got, want)}"


# ---------------------------------------------------------------- unknown keys
@pytest.mark.parametrize("fn, override, key", [("main", "+search.foo=1", "search.foo"), ("main", "+foo=1", "foo"),
                                             ("main", "+dataset.bar=2", "dataset.bar"), ("nas_main", "+nas.bar=1", "nas.bar"),
                                             ("generate_main", "+foo=1", "foo")])
def test_unknown_key_is_one_line_exit_2_before_hydra_makes_a_run_directory(tmp_path, capsys, fn, override, key):
    """In process (tests/apps/test_refusals.py runs +search.foo=1 as a real command): refused before Hydra starts."""
    code, out, err = in_process(fn, override, f"hydra.run.dir={tmp_path / 'run'}", capsys=capsys)
    assert code == 2, err
    assert err.splitlines() == [err.strip()] and err.startswith(f"scalesearch: error: {key} is not a setting "), err
    assert not (tmp_path / "run").exists() and out == ""


# ---------------------------------------------------------------- artifacts and the umask
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_artifacts_get_the_users_umask(tmp_path, umask):
    from matplotlib.figure import Figure

    from scalesearch import io

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    old = os.umask(umask)
    try:
        paths = [io.atomic_write_text(tmp_path / "t.txt", "x"), io.atomic_write_json(tmp_path / "j.json", {"a": 1}),
                 io.atomic_write_csv(tmp_path / "csv.csv", [{"a": 1}], ["a"]), io.atomic_write_bytes(tmp_path / "b.bin", b"x"),
                 io.save_png(fig, tmp_path / "plots" / "p.png")]
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what any other file gets
    finally:
        os.umask(old)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths} == {p.name: oct(0o666 & ~umask) for p in paths}
    assert not [p for p in tmp_path.rglob(".*.tmp")]


# ---------------------------------------------------------------- the console of a search
RAY_TABLE = ("Trial status", "Configuration for experiment", "╭", "== Status ==", "Number of trials")


@pytest.mark.slow
def test_default_console_is_concise(tmp_path):
    rc, out, err = run_cli("search_main", *TINY, "search.max_points=2", "search.n_seeds=1", "validate.enabled=false",
                           "family.train=false", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err[-3000:]
    assert json.loads((tmp_path / "search.json").read_text())["status"] == "complete"
    assert len(read_table(tmp_path / "results.csv")) == 2 and (tmp_path / "best.json").is_file()
    lines = out.splitlines()
    assert f"run directory: {tmp_path}" in lines[0], lines[:3]
    trials = [int(m.group(1)) for line in lines if (m := re.search(r"\[search (\d+)/2\] ", line))]
    assert sorted(trials) == [1, 2], out  # 2 candidates x 1 seed: one line each
    for noise in (*RAY_TABLE, "Token authentication is enabled"):
        assert noise not in out + err, f"{noise!r} at the default verbosity:\n{out}\n{err}"
    assert len((out + err).splitlines()) < 40, out + err


@pytest.mark.slow
def test_verbose_2_shows_ray_tunes_table(tmp_path):
    rc, out, err = run_cli("search_main", *TINY, "search.max_points=1", "search.n_seeds=1", "validate.enabled=false",
                           "family.train=false", "verbose=2", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err[-3000:]
    assert any(t in out + err for t in RAY_TABLE), f"verbose=2 shows none of Ray Tune's tables:\n{out}\n{err}"
    assert "[search 1/1] " in out
    assert "'index': " not in out + err, "Ray's table prints the whole job dict instead of its key"
