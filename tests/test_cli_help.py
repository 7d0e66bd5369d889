"""Every command says what it does and shows an example in its --help."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from driftline.analyzers.cli import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = sorted(_commands(cli))


def test_cli_has_the_documented_commands() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("db migrate", "db status", "annotate", "demo", "serve", "detect", "attribute",
                     "incident report", "incident timeline", "dashboards check", "dashboards export",
                     "runbook list", "runbook show"):  # fmt: skip
        assert expected in names


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_command_help_has_an_example(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output, f"`driftline {' '.join(command)} --help` shows no example"
    assert "driftline " + command[0] in result.output.split("Example:", 1)[1]
