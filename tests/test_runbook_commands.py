"""Every `driftline …` command in every runbook runs, as written, against the demo's data.

A runbook that was never executed is wrong by the time it is needed: these run each command
line through the real CLI with the store set the way an on-call engineer sets it
(DRIFTLINE_STORE), and fail on any non-zero exit.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.analyzers.cli import cli
from driftline.analyzers.demo._run import run_demo
from driftline.collector import connect, migrate
from driftline.runbooks import _loader as _runbooks

COMMANDS = sorted({(book.name, line) for book in _runbooks.runbooks() for line in _runbooks.commands(book)})


@pytest.fixture(scope="module")
def demo_url(engine_dir: Path) -> Iterator[str]:
    """A database holding the demo's simulated incident, ending now."""
    url = f"chdb://{engine_dir}?database=t_runbooks_{uuid.uuid4().hex[:8]}"
    store = connect(url)
    migrate(store)
    run_demo(store, calls=3000, seed=7, hours=6)
    yield url
    store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
    store.close()


def test_runbooks_run_commands_at_all() -> None:
    assert len(COMMANDS) >= len(_runbooks.names())


@pytest.mark.parametrize(("runbook", "line"), COMMANDS, ids=[f"{b}:{c}" for b, c in COMMANDS])
def test_runbook_command_succeeds_on_demo_data(demo_url: str, runbook: str, line: str) -> None:
    args = shlex.split(line)[1:]
    result = CliRunner().invoke(cli, args, env={"DRIFTLINE_STORE": demo_url}, catch_exceptions=False)
    assert result.exit_code == 0, f"{runbook}: `{line}` exited {result.exit_code}:\n{result.output}"
