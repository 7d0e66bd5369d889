"""`driftline runbook`: list and read the on-call runbooks."""

from __future__ import annotations

import re
import sys

import click

from driftline.runbooks import _loader as _runbooks

from ._common import handle_errors, table


@click.group()
def runbook() -> None:
    """List and read the on-call runbooks shipped with driftline."""


@runbook.command("list")
@handle_errors
def list_command() -> None:
    """List the runbooks, one per failure mode driftline detects.

    \b
    Example:
      driftline runbook list
    """
    rows = [{"name": r.name, "title": r.title} for r in _runbooks.runbooks()]
    click.echo(table(rows, ["name", "title"]))


def render(text: str, *, color: bool) -> str:
    """Markdown for a terminal: headings stand out, code is indented, emphasis marks dropped."""
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            out.append(click.style("    " + line, fg="cyan") if color else "    " + line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
            out.append(click.style(heading, bold=True, underline=line.startswith("# ")) if color else heading.upper())
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*|`(.+?)`", lambda m: next(g for g in m.groups() if g), line))
    return "\n".join(out)


@runbook.command("show")
@click.argument("name")
@click.option("--raw", is_flag=True, help="Print the Markdown source instead of rendering it.")
@handle_errors
def show_command(name: str, raw: bool) -> None:
    """Show one runbook, rendered for the terminal.

    \b
    Example:
      driftline runbook show quality-regression
      driftline runbook show provider-outage-429 --raw > runbook.md
    """
    book = _runbooks.get(name)
    click.echo(book.text if raw else render(book.text, color=sys.stdout.isatty()))
