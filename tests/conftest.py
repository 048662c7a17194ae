import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CIFAR_TAR = SHARED / "datasets" / "cifar10-jpeg.tar.gz"


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run a console entry point as a subprocess: (returncode, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("HYDRA_FULL_ERROR", None)
    e.update(env or {})
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; from scalesearch.cli import {args[0]} as m; sys.argv[0]='{args[0]}'; m()", *args[1:]],
        cwd=cwd or ROOT, env=e, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory):
    """A small real-image ImageFolder (train: 200/class, test: 50/class) from shared/."""
    if not CIFAR_TAR.exists():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {CIFAR_TAR} (../shared is absent in a plain clone)")
    root = tmp_path_factory.mktemp("cifar10")
    limits = {"train": 200, "test": 50}
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

    from scalesearch.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_object(cfg)


# tiny budgets used by the search tests (a trial trains in a few seconds on one core)
TINY = ["proxy.epochs=1", "dataset.train_size=200", "dataset.val_size=100", "proxy.batch_size=50",
        "dataset.image_size=32", "report.enabled=false", "family_phis=[0,1,2]"]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the in-process search tests (run_search reuses it, never shuts it down)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
