"""README's and ``scalesearch --help``'s search commands run as written (issue 19), shard 1 of 2: data and
counts shrunk, placeholders filled with real directories, nothing else changed — the default proxy budget (2 epochs,
evaluated after the last only), every stage the command leaves on. Not runnable here: doc_commands.NOT_RUN."""

import pytest
from helpers import CIFAR_TAR

from helpers import doc_commands as D

pytestmark = pytest.mark.slow


def test_every_documented_line_is_run_or_listed_with_a_reason():
    lines = D.documented()
    assert len(lines) >= 30, lines
    for line in lines:
        app = D.split(line)[1]
        assert line in D.NOT_RUN or app in D.APPS, f"documented line neither run nor listed in NOT_RUN: {line}"
    stale = [line for line in D.NOT_RUN if line not in lines]
    assert not stale, f"NOT_RUN lists lines no longer documented: {stale}"
    search = D.runnable("scalesearch")
    placed = D.shard(search, 0, 2) + D.shard(search, 1, 2) + [D.MULTIRUN]
    assert sorted(placed) == sorted(search), (placed, search)  # each search command runs in exactly one file
    every_app = {D.split(c)[1] for c in D.runnable()}
    assert every_app == set(D.APPS), set(D.APPS) - every_app


@pytest.mark.parametrize("command", D.shard(D.runnable("scalesearch"), 0, 2))
def test_documented_search_command(command, docs_ws):
    D.check_search_command(command, docs_ws, CIFAR_TAR)
