"""README's and ``scalesearch --help``'s search commands run as written (issue 19), shard 2 of 2: data and
counts shrunk, placeholders filled with real directories, nothing else changed — the default proxy budget (2 epochs,
evaluated after the last only), every stage the command leaves on. Not runnable here: doc_commands.NOT_RUN."""

import pytest
from helpers import CIFAR_TAR

from helpers import doc_commands as D

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("command", D.shard(D.runnable("scalesearch"), 1, 2))
def test_documented_search_command(command, docs_ws):
    D.check_search_command(command, docs_ws, CIFAR_TAR)
