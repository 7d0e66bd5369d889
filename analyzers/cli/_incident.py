"""`driftline incident`: the on-call commands, report and timeline, over one time window."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from driftline.analyzers._model import as_dict
from driftline.analyzers._render import FORMATS, TRACE_ID, render_report
from driftline.analyzers._report import DEFAULT_SLO, SCHEMA_VERSION, incident_report
from driftline.analyzers._timeline import timeline
from driftline.collector import _config

from ._common import (
    EXIT_REGRESSION,
    handle_errors,
    json_option,
    opened,
    scope_options,
    store_option,
    table,
    window_and_filters,
)


@click.group()
def incident() -> None:
    """Incident report and post-mortem timeline for a time window."""


def _grafana_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and TRACE_ID not in value:
        raise click.BadParameter(f"needs a {TRACE_ID} placeholder where the trace id goes (see README: incident report)")
    return value


@contextmanager
def progress() -> Iterator[Callable[[str], None]]:
    """Say on stderr what is running, on one rewritten line, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    started = time.monotonic()

    def say(step: str) -> None:
        click.echo(f"\r\033[K{click.style('…', fg='cyan')} {step} ({time.monotonic() - started:.1f}s)", err=True, nl=False)

    try:
        yield say
    finally:
        click.echo("\r\033[K", err=True, nl=False)


def _colour_markdown(text: str) -> str:
    """Headings bold and the summary line coloured; click drops the styles when not on a terminal."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            line = click.style(line, bold=True)
        elif line.startswith("> "):
            line = click.style(line, bold=True, fg="green" if "no regression" in line else "red")
        out.append(line)
    return "\n".join(out)


@incident.command("report")
@scope_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True, help="Markdown, HTML (charts), JSON.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the report to FILE instead of stdout.")
@click.option("--fail-on-regression", is_flag=True, help=f"Exit {EXIT_REGRESSION} when anything regressed (scripts, CI).")
@click.option("--grafana-url", envvar=_config.DRIFTLINE_GRAFANA_URL, callback=_grafana_url, metavar="TEMPLATE",
              help=f"URL opening a trace, with {TRACE_ID} in it (a Grafana Explore link). Default: ${_config.DRIFTLINE_GRAFANA_URL}; "
                   "without it trace ids are plain text.")  # fmt: skip
@click.option("--slo", type=click.FloatRange(50, 100, max_open=True), default=DEFAULT_SLO * 100, show_default=True,
              help="Success objective in percent; the error budget burned is measured against it.")  # fmt: skip
@store_option
@handle_errors
def report_command(since: str, until: str, fmt: str, out: Path | None, fail_on_regression: bool, grafana_url: str | None, slo: float,
                   store_url: str | None, **filters: str | None) -> None:  # fmt: skip
    """What broke, since when, for whom, what it cost, which change explains it, what to do next.

    Detects every regressed signal in the window, ranks the changes that explain each, and writes
    the impact, the timeline, the runbooks and an action-items section. All times are UTC.

    \b
    Example:
      driftline incident report --since 2h
      driftline incident report --since 2026-11-22T09:00:00+01:00 --until 2026-11-22T11:00:00+01:00 --route /chat/answer
      driftline incident report --since 6h --format html --out incident.html
      driftline incident report --since 30m --format json --fail-on-regression
    """
    window, scope = window_and_filters(since, until, **filters)
    if fmt == "html" and out is None and sys.stdout.isatty():
        raise click.UsageError("the HTML report is a file to open in a browser: add --out incident.html")
    with opened(store_url) as store, progress() as say:
        result = incident_report(store, window, filters=scope, slo=slo / 100, progress=say)
    text = render_report(result, fmt, grafana_url=grafana_url)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        click.echo(result.summary)
        click.echo(f"wrote the {fmt} report to {out}", err=True)
    elif fmt == "md":
        click.echo(_colour_markdown(text))
    else:
        click.echo(text)
    if fail_on_regression and result.regressed:
        sys.exit(EXIT_REGRESSION)


@incident.command("timeline")
@scope_options
@json_option
@store_option
@handle_errors
def timeline_command(since: str, until: str, as_json: bool, store_url: str | None, **filters: str | None) -> None:
    """The post-mortem timeline: changes, first appearances, change points, bursts, recovery.

    Every line cites the query (or the exemplar trace ids) it rests on. Times are UTC.

    \b
    Example:
      driftline incident timeline --since 6h
      driftline incident timeline --since 2026-11-22T08:00:00Z --service support-bot --json
    """
    window, scope = window_and_filters(since, until, **filters)
    with opened(store_url) as store, progress() as say:
        say("detecting regressions and building the timeline")
        events = timeline(store, window, filters=scope)
    if as_json:
        data = {"schema_version": SCHEMA_VERSION, "kind": "driftline.timeline", "window": as_dict(window),
                "filters": as_dict(scope), "events": [as_dict(e) for e in events]}  # fmt: skip
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"timeline {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC ({len(events)} events)\n")
    rows = [{"time (UTC)": f"{e.time:%H:%M:%S}", "event": e.kind.replace("_", " "), "what": e.summary,
             "rests on": f"{e.evidence.query}" + (f" {' '.join(e.evidence.trace_ids[:3])}" if e.evidence.trace_ids else "")}
            for e in events]  # fmt: skip
    click.echo(table(rows, ["time (UTC)", "event", "what", "rests on"]) if rows else "nothing happened in this window")
