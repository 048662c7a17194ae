"""The documented commands, as a user would type them: README's code blocks (and its inline commands with
arguments) and every app's ``--help`` examples, for tests/docs/test_docs_*.py.

A command runs as written through its installed console script, in a scratch directory, with only
overrides that shrink data or counts (``SHRINK``) and its placeholders (``/data/mine``, ``RUN``, …) filled in
with real directories made by other documented commands. What cannot run here is in ``NOT_RUN`` with the
reason; the tests check that every documented line is either run or listed there, and that every listed
line is still documented.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
APPS = {"scalesearch": "config", "scalesearch-generate": "generate", "scalesearch-report": "report",
        "scalesearch-ablate": "ablate", "scalesearch-nas": "nas", "scalesearch-validate": "validate",
        "scalesearch-compare": "compare"}
DATA_APPS = ("scalesearch", "scalesearch-ablate", "scalesearch-nas")  # apps that load a dataset

# documented lines that are not run here, and why (each must still be documented: a test checks)
NOT_RUN = {
    "python3 -m venv .venv": "environment setup: .ci/run creates a fresh venv on every CI run",
    ". .venv/bin/activate": "environment setup: .ci/run does exactly this",
    "pip install -e .": "environment setup: .ci/run installs the project (with [dev]); tests/docs/test_wheel.py installs "
                        "the wheel into a fresh venv and runs an app from it",
    'pip install -e ".[dev]"': "environment setup: .ci/run runs exactly this",
    "python -m pytest -q": "the test suite itself (.ci/run runs exactly this line)",
    "RAY_AUTH_MODE=token ray start --head --port=6379": "starts a Ray cluster for other machines; tests/run/test_cluster.py "
                                                        "starts a real two-node cluster on 127.0.0.1 instead",
    "RAY_AUTH_MODE=token ray start --address=HEAD_IP:6379": "joins a remote cluster (HEAD_IP): CI has no second machine",
    "scalesearch proxy=gpu trials.gpus_per_trial=0.25 trials.cpus_per_trial=4": "needs a GPU (CI has none)",
    "scalesearch cluster.address=HEAD_IP:6379 cluster.storage=/mnt/nfs/ss": "needs a remote Ray cluster (HEAD_IP); tests/run/test_cluster.py runs a "
                                                "search on a local two-node cluster",
    "RAY_AUTH_MODE=token scalesearch cluster.address=HEAD_IP:6379 cluster.storage=/mnt/nfs/scalesearch proxy=gpu "
    "trials.gpus_per_trial=0.25 "
    "trials.cpus_per_trial=3 dataset=imagefolder dataset.root=/data/mine": "needs a remote GPU cluster",
    "scalesearch dataset=imagefolder dataset.root=/data/mine proxy=gpu trials=gpu_shared": "needs a GPU",
    "RAY_AUTH_MODE=token scalesearch -m dataset=imagefolder dataset.root=/data/a,/data/b hydra/launcher=joblib "
    "hydra.launcher.n_jobs=2 cluster.address=HEAD_IP:6379 cluster.storage=/mnt/nfs/scalesearch":
        "needs a remote Ray cluster (HEAD_IP); tests/run/test_interrupts.py runs a parallel multirun on a local cluster",
}

# overrides that only shrink data or counts (never epochs, seeds, stages or the code path), per app
SHRINK_DATA = {"dataset.train_size": 40, "dataset.val_size": 20, "dataset.train_per_class": 6,
               "dataset.val_per_class": 3}
SHRINK = {"scalesearch": {**SHRINK_DATA, "search.max_points": 2},
          "scalesearch-nas": {**SHRINK_DATA, "nas.num_samples": 2, "search.max_points": 2},
          "scalesearch-ablate": SHRINK_DATA}


def _strip_comment(line: str) -> str:
    return re.split(r"\s+#(?:\s|$)", line, maxsplit=1)[0].strip()


def readme_lines() -> list[str]:
    """Every command line of README's ``bash`` blocks (continuations joined, comments dropped, ``&&`` chains
    split) and every inline command with arguments (`scalesearch… key=value`)."""
    text = README.read_text()
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+", " ", _strip_comment(line.strip()))
            if line and not line.startswith("#"):
                out += [seg.strip() for seg in line.split("&&")]
    out += re.findall(r"`(scalesearch[-a-z]* [^`]*=[^`]*)`", text)
    return out


def help_lines() -> list[str]:
    """The examples every app's ``--help`` prints."""
    from scalesearch.apps.help import help_examples

    return [line for name in sorted(set(APPS.values())) for line in help_examples(name)]


def documented() -> list[str]:
    """Every documented line once, in order of first appearance."""
    return list(dict.fromkeys(readme_lines() + help_lines()))


def runnable(app: str | None = None) -> list[str]:
    """The documented lines that run here (optionally only those of ``app``)."""
    lines = [c for c in documented() if c not in NOT_RUN]
    return [c for c in lines if app is None or shlex.split(c)[0] == app or
            (app == "scalesearch" and "=" in shlex.split(c)[0] and shlex.split(c)[1] == "scalesearch")]


def split(command: str) -> tuple[dict, str, list[str]]:
    """(environment assignments, app, arguments) of a command line."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    return env, words[0], words[1:]


def shrink(app: str, args: list[str]) -> list[str]:
    """``args`` with the app's data and count overrides set: a documented value is lowered, never raised."""
    keys = dict(SHRINK.get(app, {}))
    if app == "scalesearch" and "search=optuna" in args:
        keys["search.num_samples"] = 2
    out = []
    for a in args:
        k, _, v = a.partition("=")
        if k in keys and v.isdigit():
            a = f"{k}={min(int(v), keys.pop(k))}"
        out.append(a)
    return out + [f"{k}={v}" for k, v in keys.items()]


def run(command: str, cwd: Path, fill: dict, env: dict | None = None, timeout: float = 600):
    """Run a documented command as written (placeholders filled, data shrunk) through its console script."""
    for placeholder, value in fill.items():
        command = command.replace(placeholder, str(value))
    assigned, app, args = split(command)
    script = Path(sys.executable).parent / app
    e = {**(env or {}), **assigned}
    p = subprocess.run([str(script), *shrink(app, args)], cwd=cwd, env=e, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p


ARTIFACT = {"scalesearch": "best.json", "scalesearch-nas": "baseline.json", "scalesearch-ablate": "ablation.json",
            "scalesearch-validate": "fidelity.json", "scalesearch-report": "report.md",
            "scalesearch-compare": "compare.md", "scalesearch-generate": "family.json"}


class Workspace:
    """A scratch directory where documented commands run, and the real inputs their placeholders name: an image
    folder (real JPEG files) for ``/data/mine``, a finished default run for ``RUN``, a multirun for
    ``multirun/<timestamp>`` and ``RUN_A,RUN_B``, a NAS run for ``runs/nas/<timestamp>/baseline.json``."""

    def __init__(self, root: Path, shared: Path, env: dict):
        self.root, self.shared, self.made = root, shared, {}
        self.env = {**env, "SCALESEARCH_CACHE": str(root / "cache"), "RAY_USAGE_STATS_ENABLED": "0"}

    def run(self, command: str):
        """Run ``command`` (placeholders filled); returns (process, the artifacts it wrote or rewrote)."""
        before = {p: p.stat().st_mtime_ns for p in self.root.rglob("*") if p.name in ARTIFACT.values()}
        p = run(command, self.root, self.fill(command), self.env)
        after = {p: p.stat().st_mtime_ns for p in self.root.rglob("*") if p.name in ARTIFACT.values()}
        return p, sorted(k for k, t in after.items() if before.get(k) != t)

    def must(self, command: str) -> list[Path]:
        p, wrote = self.run(command)
        assert p.returncode == 0, f"{command}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
        return wrote

    def fill(self, command: str) -> dict:
        fill = {}
        if "../shared/" in command:
            fill["../shared/"] = f"{self.shared}/"
        if "/data/mine" in command:
            fill["/data/mine"] = self.image_folder()
        if "RUN_A,RUN_B" in command:
            fill["RUN_A,RUN_B"] = ",".join(str(d) for d in self.multirun_jobs())
        if "multirun/<timestamp>" in command:
            fill["multirun/<timestamp>"] = self.multirun()
        if "runs/nas/<timestamp>/baseline.json" in command:
            fill["runs/nas/<timestamp>/baseline.json"] = self.once("scalesearch-nas")
        if re.search(r"\bRUN\b", command):
            fill["RUN"] = self.once("scalesearch").parent
        elif command.startswith("scalesearch resume=true"):  # "the newest run with these settings": make one
            self.once("scalesearch")
        return fill

    def once(self, command: str) -> Path:
        """The artifact of a documented command that makes another's input (INPUTS), run once per workspace."""
        key, artifact = INPUTS[command]
        if key not in self.made:
            self.made[key] = next(p for p in self.must(command) if p.name == artifact)
        return self.made[key]

    def multirun(self) -> Path:
        if "multirun" not in self.made:
            self.must(MULTIRUN)
            self.made["multirun"] = self.newest_multirun()
        return self.made["multirun"]

    def newest_multirun(self) -> Path:
        return max((self.root / "multirun").iterdir())

    def keep(self, command: str, wrote: list[Path]) -> None:
        """Keep what a documented command made as the input later commands' placeholders name (the default
        run, the NAS run, the multirun), so that it is made once per workspace."""
        if command in INPUTS:
            key, artifact = INPUTS[command]
            found = [p for p in wrote if p.name == artifact]
            if found and key not in self.made:
                self.made[key] = found[0]
        if command == MULTIRUN and "multirun" not in self.made:
            self.made["multirun"] = self.newest_multirun()

    def multirun_jobs(self) -> list[Path]:
        return sorted(p.parent for p in self.multirun().rglob("best.json"))

    def image_folder(self) -> Path:
        """root/train/<class>/*.jpg and root/val/<class>/*.jpg: 3 classes of real JPEG files (48 px)."""
        folder = self.root / "data" / "mine"
        if not folder.exists():
            import numpy as np
            from PIL import Image

            rng = np.random.default_rng(0)
            for split, n in (("train", 12), ("val", 6)):
                for k, name in enumerate(("circle", "stripes", "noise")):
                    (folder / split / name).mkdir(parents=True)
                    for i in range(n):
                        img = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
                        img[..., k] += np.uint8(120)
                        Image.fromarray(img).save(folder / split / name / f"{i}.jpg", quality=90)
        return folder


MULTIRUN = "scalesearch -m dataset=synthetic,imagefolder dataset.root=/data/mine"  # what multirun/<timestamp> names
# command: (key in Workspace.made, the artifact other commands' placeholders name)
INPUTS = {"scalesearch": ("default", "best.json"), "scalesearch-nas": ("nas", "baseline.json")}


def uses_default_run(command: str) -> bool:
    """Whether a command runs on (or resumes) the built-in default run: placed beside ``scalesearch`` itself,
    whose run it reuses (one default run per test file)."""
    return command == "scalesearch" or bool(re.search(r"\bRUN\b", command)) or "resume=true" in command


def shard(commands: list[str], i: int, n: int) -> list[str]:
    """The i-th of n test files' share of the ``scalesearch`` commands (xdist runs files in parallel): the
    commands on the default run all in file 0, which makes that run once; the rest alternate from file 1; the
    multirun that ``scalesearch-compare`` reads runs in tests/docs/test_docs_apps.py, beside compare."""
    own = [c for c in commands if uses_default_run(c)]
    rest = [c for c in commands if not uses_default_run(c) and c != MULTIRUN]
    files = [own if k == 0 else [] for k in range(n)]
    for k, c in enumerate(rest):
        files[(k + 1) % n].append(c)
    return files[i]


def check_search_command(command: str, ws: Workspace, cifar_tar: Path) -> None:
    """Run a documented ``scalesearch`` command and check what a user gets: exit 0, no traceback, a finished
    run (or two for a two-job multirun) trained at the default budget, the verdict in best.json; with Optuna
    storage, the study holds one value per candidate (its seed mean) and no unevaluated epoch."""
    import json

    import pytest

    if "../shared/" in command and not cifar_tar.exists():
        pytest.skip(f"{command}: the CIFAR-10 JPEG archive is not at {cifar_tar} (../shared is absent)")
    p, wrote = ws.run(command)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{command}\n{out[-5000:]}"
    assert "Traceback" not in out, out[-5000:]
    ws.keep(command, wrote)
    words = shlex.split(command)
    if "--help" in words:
        assert "usage:" in p.stdout and "examples:" in p.stdout
        return
    bests = [w for w in wrote if w.name == "best.json"]
    if "resume=true" in words:
        assert "resum" in out.lower(), out[-2000:]
    else:
        assert len(bests) == (2 if "-m" in words else 1), (wrote, out[-2000:])
    if command == "scalesearch":  # the built-in default: the golden's trainings (tests/report/test_golden_run.py)
        check_same_trainings(bests[0].parent)
    for b in bests:
        _check_search_run(b)
        assert json.loads(b.read_text())["verdict"]
    if "search.storage=sqlite:///optuna.db" in words:
        _check_study(bests[0].parent)


GOLDEN = Path(__file__).parents[1] / "golden" / "default_run"
# the tables' columns that a clock, a host or the float path of the CPU that trained them sets
MEASURED = {"index", "accuracy", "loss", "latency_ms", "train_step_ms", "device", "images_per_s", "wall_s", "node",
            "trial_id", "finished_at", "proxy_mean", "error", "failures", "reused_from"}


def check_same_trainings(run_dir: Path) -> None:
    """A fresh default run (``run_dir``) trained the golden's search and validation trainings (issue 34): the same
    columns, and rows with the same candidates, seeds, budgets, sizes, costs and training ids."""
    from scalesearch.decide.results import read_table

    for table in ("results.csv", "validation.csv"):
        got, want = read_table(run_dir / table), read_table(GOLDEN / "tables" / table)
        assert [list(r) for r in got] == [list(r) for r in want], table
        keep = [k for k in want[0] if k not in MEASURED]
        rows = [sorted(({k: r[k] for k in keep} for r in t), key=lambda r: r["key"]) for t in (got, want)]
        assert rows[0] == rows[1], (table, rows)


SUMMARY_WORDS = 120  # issue 34: summary.md's verdict at a glance, read in 30 seconds


def _check_search_run(best_json: Path) -> None:
    import json

    from scalesearch.decide.results import read_table

    shares = json.loads(best_json.read_text())["shares"]  # the model over shares, and its sentence leads summary.md
    assert shares["status"] in ("fitted", "not_estimable") and shares["sentence"], shares
    assert (best_json.parent / "summary.md").read_text().splitlines()[2] == f"**How the compute splits:** " \
        f"{shares['sentence']}"
    summary = (best_json.parent / "summary.md").read_text()
    top = summary.split("\n|", 1)[0]  # what a person reads before the first table: the verdict at a glance
    assert len(top.split()) <= SUMMARY_WORDS, f"{len(top.split())} words above summary.md's first table:\n{top}"
    state = json.loads((best_json.parent / "search.json").read_text())
    assert state["status"] == "complete", state
    rows = read_table(best_json.parent / "results.csv")
    assert rows and all(r["status"] in ("ok", "stopped", "infeasible") for r in rows), rows
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["epochs"] >= 2 for r in ok), [r["epochs"] for r in rows]  # the default budget, not 1 epoch


def _check_study(run_dir: Path) -> None:
    import optuna
    import pytest

    from scalesearch.decide.results import aggregate, read_table

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    means = [c["accuracy_mean"] for c in aggregate(read_table(run_dir / "results.csv"))]
    assert sorted(t.value for t in done) == pytest.approx(sorted(means), abs=1e-6), (done, means)
    assert all(t.intermediate_values == {} for t in done)
