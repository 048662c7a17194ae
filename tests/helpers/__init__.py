"""What the tests share that is not a fixture: the repository's paths, the real Ray clusters and processes they
start and stop, the CLI run as a subprocess, the shared CIFAR-10 JPEGs, Hydra composition, the tiny search budget.
Documented commands run as written: :mod:`helpers.doc_commands`. Fixtures: tests/conftest.py."""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[2]


RAY = str(Path(sys.executable).parent / "ray")


# Ray 2.60's `ray start` turns on token authentication: every process of a test cluster (head,
# worker, driver) gets the mode and one fresh token (a fresh machine has no ~/.ray/auth_token)
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}


SHARED = ROOT.parent / "shared"


CIFAR_TAR = SHARED / "datasets" / "cifar10-jpeg.tar.gz"


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run a console entry point as a subprocess: (returncode, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("HYDRA_FULL_ERROR", None)
    e.update(env or {})
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; from scalesearch.apps.cli import {args[0]} as m; sys.argv[0]='{args[0]}'; m()", *args[1:]],
        cwd=cwd or ROOT, env=e, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return p.returncode, p.stdout, p.stderr


def proxy_yaml(name: str):
    """conf/proxy/<name>.yaml over the ProxyConfig defaults, as Hydra composes the proxy group."""
    from omegaconf import OmegaConf

    from scalesearch.config import ProxyConfig

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ProxyConfig),
                                               OmegaConf.load(ROOT / "conf" / "proxy" / f"{name}.yaml")))


def smoke_budget(**kw):
    """conf/proxy/cpu_smoke.yaml's budget on one thread, with ``kw`` replaced: the tiny trainings of the proxy tests."""
    import dataclasses

    return dataclasses.replace(proxy_yaml("cpu_smoke"), **{"threads": 1, **kw})


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def extract_cifar(root: Path, train: int, test: int) -> Path:
    """The first ``train`` / ``test`` images per class of the shared CIFAR-10 JPEGs, as an ImageFolder under root."""
    limits = {"train": train, "test": test}
    counts = {}
    with tarfile.open(CIFAR_TAR) as tar:
        for m in tar:
            if not m.isfile():
                continue
            parts = Path(m.name).parts
            parts = parts[parts.index("train") if "train" in parts else parts.index("test") if "test" in parts else 0:]
            if len(parts) != 3 or parts[0] not in limits:
                continue
            key = (parts[0], parts[1])
            if counts.get(key, 0) >= limits[parts[0]]:
                continue
            counts[key] = counts.get(key, 0) + 1
            dest = root.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(m).read())
    return root


def compose_search(*overrides):
    """Real Hydra composition of conf/config.yaml → a validated SearchAppConfig."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scalesearch.apps.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_object(cfg)


# tiny budgets used by the search tests (a trial trains in a few seconds on one core); the later stages off
TINY = ["proxy.epochs=1", "search.n_seeds=2", "dataset.train_size=200", "dataset.val_size=100", "proxy.batch_size=50",
        "dataset.image_size=32", "report.enabled=false", "family.train=false", "validate.enabled=false",
        "trials.measure_device_costs=false", "family.phis=[0,1,2]"]


# ---------------------------------------------------------------- processes and real Ray clusters
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid and Path(d, "stat").read_text().split(") ")[1][0] != "Z":
                    pids.append(int(d.name))
            except (OSError, IndexError):
                pass
    return pids


def kill_session(sid: int, timeout: float = 20) -> list[int]:
    """SIGKILL every process of session ``sid`` (a process started with start_new_session=True and
    all it spawned: Ray's GCS, raylet, workers); return those still alive after ``timeout``."""
    deadline = time.time() + timeout
    while (pids := session_pids(sid)) and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return session_pids(sid)


def start_app(args, log: Path, env=None, cwd=None, app="search_main") -> subprocess.Popen:
    """An app's CLI in its own session (so that it and everything it starts can be killed)."""
    e = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    e.update(env or {})
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", f"from scalesearch.apps.cli import {app}; {app}()", *args], cwd=cwd or ROOT, env=e, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def start_script(name: str, args, log: Path, env=None, cwd=None) -> subprocess.Popen:
    """An installed console script (the path users run: the supervisor and its app) in its own session."""
    e = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    e.update(env or {})
    with open(log, "ab") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / name), *args], cwd=cwd or ROOT, env=e, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the search ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def ray_cluster(log_dir: Path, head_cpus: int = 1, workers: int = 1, worker_prefix: tuple | list = ()):
    """A real Ray cluster on 127.0.0.1 (`ray start --head` with ``head_cpus`` CPUs + ``workers`` ×
    `ray start --address`, 1 CPU each, each command after ``worker_prefix``). Yields (address, the worker Popen,
    or the list of them with several). The cluster lives in its own --temp-dir (one per node), so
    /tmp/ray/ray_current_cluster never points at it, and it is stopped by killing its own process sessions (not
    `ray stop`, which would stop every Ray on the machine). Everything here connects to 127.0.0.1; Ray itself
    replaces a loopback ``--node-ip-address`` by this machine's own interface address (Ray 2.60,
    ``ray._private.services.resolve_ip_for_localhost``), which its processes register and use among themselves —
    an address of this machine, so nothing leaves it."""
    penv = {**os.environ, **RAY_ENV}
    temps = [tempfile.mkdtemp(prefix="rc", dir="/tmp") for _ in range(1 + workers)]  # short: socket paths <= 107 B
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats"]
    head, procs = None, []
    try:
        head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common,
                                 f"--num-cpus={head_cpus}", f"--temp-dir={temps[0]}"], env=penv,
                                start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = head.communicate(timeout=120)[0]
        assert head.returncode == 0, out[-3000:]
        for i, temp in enumerate(temps[1:]):
            with open(Path(log_dir) / f"ray-worker{i or ''}.log", "wb") as wlog:
                procs.append(subprocess.Popen([*worker_prefix, RAY, "start", f"--address=127.0.0.1:{port}", "--block",
                                               *common, "--num-cpus=1", f"--temp-dir={temp}"], env=penv,
                                              start_new_session=True, stdout=wlog, stderr=subprocess.STDOUT))
        yield f"127.0.0.1:{port}", procs[0] if workers == 1 else procs
    finally:
        for proc in (*procs, head):
            if proc is not None:
                kill_session(proc.pid)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)

