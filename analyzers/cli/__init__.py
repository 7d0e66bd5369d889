"""The `driftline` command: thin wrappers that parse, call the library, and format.

Each command group lives in its own module here (`_db.py`, `_incident.py`, ...) and is
registered below. The CLI is the one place that wires collector (hooks, receiver, store) and
analyzers together.
"""

from __future__ import annotations

import logging

import click

from ._annotate import annotate_command
from ._attribute import attribute_command
from ._dashboards import dashboards
from ._db import db
from ._demo import demo
from ._detect import detect_command
from ._incident import incident
from ._runbook import runbook
from ._serve import serve_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="driftline")
@click.option("-v", "--verbose", is_flag=True, help="Log what driftline does (to stderr).")
def cli(verbose: bool) -> None:
    """driftline: what changed, when, and how much of the damage it explains.

    Observability and incident tooling for LLM applications on ClickHouse.

    \b
    Example:
      driftline demo --calls 20000 --store chdb://$PWD/.driftline/demo   # simulate an incident
      driftline incident report --since 2h --store chdb://$PWD/.driftline/demo
      driftline serve                       # OTLP on 127.0.0.1:4318/4317 into ./.driftline
      driftline db status --store http://127.0.0.1:8124
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # driver retries and transport noise; the error line says what matters
        for name in ("urllib3.connectionpool", "clickhouse_connect"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


cli.add_command(db)
cli.add_command(annotate_command)
cli.add_command(detect_command)
cli.add_command(attribute_command)
cli.add_command(incident)
cli.add_command(dashboards)
cli.add_command(demo)
cli.add_command(runbook)
cli.add_command(serve_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="driftline")
