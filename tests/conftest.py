"""The suite's fixtures: a small real-image folder, one local Ray per module, a workspace for documented commands.
Everything else the tests share is in tests/helpers/."""

import os

import pytest

from helpers import CIFAR_TAR, SHARED, extract_cifar


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory):
    """A small real-image ImageFolder (train: 200/class, test: 50/class) from shared/."""
    if not CIFAR_TAR.exists():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {CIFAR_TAR} (../shared is absent in a plain clone)")
    return extract_cifar(tmp_path_factory.mktemp("cifar10"), 200, 50)


@pytest.fixture(scope="module")
def ray_session():
    """One new local Ray for the in-process search tests (run_search reuses it, never shuts it down);
    address="local" never joins a `ray start` cluster another test may have running."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def docs_ws(tmp_path_factory):
    """A scratch workspace for documented commands (tests/helpers/doc_commands.py), one per test file."""
    from helpers import doc_commands

    return doc_commands.Workspace(tmp_path_factory.mktemp("docs"), SHARED,
                                  {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})

