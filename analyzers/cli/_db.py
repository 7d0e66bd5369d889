"""`driftline db`: create, upgrade and inspect the store."""

from __future__ import annotations

import json

import click

from driftline.collector.store._migrate import migrate
from driftline.collector.store._status import status

from ._common import handle_errors, json_option, opened, store_option, table


@click.group()
def db() -> None:
    """Create, upgrade and inspect the store."""


@db.command("migrate")
@store_option
@click.option("--ttl-days", type=click.IntRange(min=0), default=0, show_default=True,
              help="Drop raw and typed rows older than this many days (0 keeps them). Applies to tables created by this run.")
@handle_errors
def migrate_command(store_url: str | None, ttl_days: int) -> None:
    """Create or upgrade the schema; safe to run twice.

    \b
    Example:
      driftline db migrate
      driftline db migrate --store http://default:secret@clickhouse:8123/llm --ttl-days 30
    """
    with opened(store_url) as store:
        done = migrate(store, ttl_days=ttl_days)
        for m in done:
            click.echo(f"applied {m.version:04d}_{m.name}")
        click.echo(f"schema is up to date in {store.url}" + ("" if done else " (nothing to do)"))


def _human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


@db.command("status")
@store_option
@json_option
@handle_errors
def status_command(store_url: str | None, as_json: bool) -> None:
    """Say what the store holds: schema version, tables, rows, size on disk.

    \b
    Example:
      driftline db status
      driftline db status --json --store http://127.0.0.1:8123
    """
    with opened(store_url) as store:
        info = status(store)
    if as_json:
        click.echo(json.dumps(info.as_dict(), indent=2))
        return
    backend = "embedded (chDB)" if info.embedded else "ClickHouse server"
    click.echo(f"store:   {info.url}  [{backend} {info.server_version}]")
    state = "up to date" if not info.pending else f"{len(info.pending)} pending: run `driftline db migrate`"
    click.echo(f"schema:  version {info.schema_version} of {info.expected_version} ({state})")
    rows = [{"table": t.name, "engine": t.engine, "rows": "-" if t.rows is None else f"{t.rows:,}",
             "on disk": _human_bytes(t.bytes_on_disk)} for t in info.tables]  # fmt: skip
    if rows:
        click.echo("")
        click.echo(table(rows, ["table", "engine", "rows", "on disk"]))
