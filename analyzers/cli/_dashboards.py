"""`driftline dashboards`: export the Grafana dashboards, and check them against a store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from driftline.analyzers._timeparse import parse_time
from driftline.collector._errors import NoDataError
from driftline.dashboards import _check as _dashboards

from ._common import handle_errors, json_option, opened, store_option, table


@click.group()
def dashboards() -> None:
    """Grafana dashboards for the ClickHouse data source: export and check them."""


@dashboards.command("export")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write; mount it as Grafana's provisioning folder.")
@click.option("--grafana-dir", default="/etc/grafana/provisioning", show_default=True,
              help="Where Grafana sees that folder (written into the dashboard provider).")
@handle_errors
def export_command(directory: Path, grafana_dir: str) -> None:
    """Write the data source, dashboard provider and dashboards, ready for Grafana's provisioning folder.

    The data source reads DRIFTLINE_CLICKHOUSE_HOST, _PORT, _USER, _PASSWORD and _DATABASE from
    Grafana's environment (deploy/docker-compose.yml sets them).

    \b
    Example:
      driftline dashboards export --dir ./grafana/provisioning
      docker run -v $PWD/grafana/provisioning:/etc/grafana/provisioning \\
        -e GF_INSTALL_PLUGINS=grafana-clickhouse-datasource grafana/grafana
    """
    for path in _dashboards.export(directory, grafana_dir=grafana_dir):
        click.echo(f"wrote {path}")


@dashboards.command("check")
@store_option
@click.option("--since", default="24h", show_default=True, help="Start of the dashboard time range: a duration ago or ISO 8601.")
@click.option("--until", default="now", show_default=True, help="End of the dashboard time range.")
@click.option("--dashboard", "names", multiple=True, help="Check only this dashboard file (repeatable), e.g. llm-overview.json.")
@click.option("--verbose-queries", is_flag=True, help="List every query run, not only the problems.")
@json_option
@handle_errors
def check_command(store_url: str | None, since: str, until: str, names: tuple[str, ...], verbose_queries: bool, as_json: bool) -> None:
    """Check the dashboards without Grafana, against the data in the store.

    Checks each dashboard's structure and variables, expands every panel, annotation and
    variable query as Grafana and the ClickHouse plugin would, runs it, and checks the result
    has data and the shape its panel needs. Exits 1 if anything is wrong, 4 if the range holds
    no calls at all.

    \b
    Example:
      driftline dashboards check
      driftline dashboards check --store http://127.0.0.1:8123/default --since 2h --json
    """
    now = datetime.now(UTC)
    start, end = parse_time(since, now=now), parse_time(until, now=now)
    with opened(store_url) as store:
        calls = store.rows("SELECT count() FROM llm_calls WHERE time >= {start:DateTime64(9)} AND time <= {end:DateTime64(9)}",
                           {"start": start, "end": end})[0][0]  # fmt: skip
        if not calls:
            raise NoDataError(f"no LLM calls between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC in {store.url}: nothing to check the dashboards on")
        report = _dashboards.check(store, start=start, end=end, dashboards=names or None)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print(report, verbose_queries)
    if not report.ok:
        raise _dashboards.DashboardCheckFailed(f"{len(report.problems)} problem(s) in the dashboards")


def _print(report: _dashboards.Report, verbose: bool) -> None:
    queries = report.queries if verbose else [q for q in report.queries if q.problem]
    if queries:
        rows = [{"dashboard": q.dashboard, "query": q.title[:60], "variant": q.variant, "rows": q.rows,
                 "ms": f"{q.seconds * 1000:.0f}", "problem": q.problem or "ok"} for q in queries]  # fmt: skip
        click.echo(table(rows, ["dashboard", "query", "variant", "rows", "ms", "problem"]))
    for name, problems in report.structure.items():
        for problem in problems:
            click.echo(f"{name}: {problem}")
    links = [{"dashboard": d, "panel": p, "runbook": f"runbooks/{r}.md"} for d, ls in report.runbooks.items() for p, r in ls]
    if verbose:
        click.echo(table(links, ["dashboard", "panel", "runbook"]))
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    click.echo(f"{len(report.structure)} dashboards, {len(report.queries)} queries run, {len(links)} runbook links: {status}")
