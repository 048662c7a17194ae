"""README's and ``scalesearch --help``'s search commands run as written (issue 19), shard 2 of 2: data and
counts shrunk, placeholders filled with real directories, nothing else changed — the default proxy budget (2 epochs,
evaluated after the last only), every stage the command leaves on. Not runnable here: doc_commands.NOT_RUN."""

import os

import pytest
from conftest import CIFAR_TAR, SHARED

import doc_commands as D

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return D.Workspace(tmp_path_factory.mktemp("docs-search"), SHARED,
                       {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})



@pytest.mark.parametrize("command", D.shard(D.runnable("scalesearch"), 1, 2))
def test_documented_search_command(command, ws):
    D.check_search_command(command, ws, CIFAR_TAR)
