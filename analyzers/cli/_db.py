"""`driftline db`: create, upgrade and inspect the store; its retention; erasure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from driftline.collector._config import store_url as resolve_store_url
from driftline.collector._errors import ConfigError
from driftline.collector.store._forget import Subject
from driftline.collector.store._migrate import Migration, migrate
from driftline.collector.store._prices import refresh_prices
from driftline.collector.store._retention import RETENTION_TABLES, retention, set_retention
from driftline.collector.store._status import status
from driftline.collector.store._store import Store

from ._common import handle_errors, json_option, opened, store_option, table


@click.group()
def db() -> None:
    """Create, upgrade and inspect the store; set its retention; erase a tenant's or a user's data."""


def _retention_options(func: Any) -> Any:
    """--raw-days and --typed-days, shared by `migrate` and `retention`."""
    func = click.option("--typed-days", type=click.IntRange(min=0), default=None,
                        help="Keep llm_calls and llm_scores this many days (0: forever).")(func)  # fmt: skip
    return click.option("--raw-days", type=click.IntRange(min=0), default=None,
                        help="Keep raw spans and logs (otel_traces, otel_logs: the content) this many days (0: forever).")(func)  # fmt: skip


@db.command("migrate")
@store_option
@click.option("--ttl-days", type=click.IntRange(min=0), default=0, show_default=True,
              help="Drop raw and typed rows older than this many days (0 keeps them). Applies to tables created by this run.")
@_retention_options
@handle_errors
def migrate_command(store_url: str | None, ttl_days: int, raw_days: int | None, typed_days: int | None) -> None:
    """Create or upgrade the schema; safe to run twice. --raw-days/--typed-days set the retention
    of existing tables too (as `db retention` does). With the `prices` extra installed, it also
    loads genai-prices' price table into the store (when the store holds another version), from
    which llm_calls prices the calls that report no cost.

    \b
    Example:
      driftline db migrate
      driftline db migrate --raw-days 14 --typed-days 400
      driftline db migrate --store http://default:secret@clickhouse:8123/llm --ttl-days 30
    """
    with opened(store_url) as store:
        done = migrate(store, ttl_days=ttl_days)
        for m in done:
            click.echo(f"applied {m.version:04d}_{m.name}" if m.ran else f"recorded {m.version:04d}_{m.name} ({_why_recorded(m)}: nothing to run)")
        click.echo(f"schema is up to date in {store.url}" + ("" if done else " (nothing to do)"))
        prices = refresh_prices(store)
        if prices:
            click.echo(f"loaded the price table {prices} (costs of calls that report none are computed from it)")
        if raw_days is not None or typed_days is not None:
            _echo_retention(set_retention(store, raw_days=raw_days, typed_days=typed_days))


def _why_recorded(migration: Migration) -> str:
    return "embedded store only" if migration.embedded_only else "a new store is created in its latest shape"


def _echo_retention(days: dict[str, int]) -> None:
    for name, kept in days.items():
        click.echo(f"{name}: {_days(kept)} ({RETENTION_TABLES[name][0]})")


def _days(days: int) -> str:
    return "kept forever" if not days else f"kept {days} day{'s' if days != 1 else ''}"


@db.command("retention")
@store_option
@_retention_options
@handle_errors
def retention_command(store_url: str | None, raw_days: int | None, typed_days: int | None) -> None:
    """Show or change how long the tables keep rows (ClickHouse TTLs; whole days drop at once).

    Raw spans and logs hold the content (prompts, completions): keep them short. The typed tables
    the analyzers read hold numbers and dimensions: keep them long. Without options, shows the
    retention. A change applies to the rows already stored as well.

    \b
    Example:
      driftline db retention
      driftline db retention --raw-days 14 --typed-days 400
      driftline db retention --raw-days 0              # keep raw spans forever again
    """
    with opened(store_url) as store:
        changed = raw_days is not None or typed_days is not None
        _echo_retention(set_retention(store, raw_days=raw_days, typed_days=typed_days) if changed else retention(store))


@db.command("forget")
@store_option
@click.option("--tenant", help="Forget every trace in which a span carries this driftline.tenant.")
@click.option("--user", help="Forget every trace in which a span carries this user.id (or enduser.id).")
@click.option("--conversation", help="Forget every trace in which a span carries this gen_ai.conversation.id.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="serve's spool, erased too. Default: next to the embedded store, else ./.driftline/spool (when it exists).")
@json_option
@handle_errors
def forget_command(store_url: str | None, tenant: str | None, user: str | None, conversation: str | None,
                   spool_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Delete a tenant's, a user's or a conversation's data from every table, serve's spool and its
    dead letters; say how many rows went from each.

    Whole traces go (their tool calls and retrievals too), and the rows leave the disk (the engine
    rewrites the parts). Stop `driftline serve` first: erasure holds its spool and needs write access
    to the store.

    \b
    Example:
      driftline db forget --tenant acme
      driftline db forget --user u-1842 --json
      driftline db forget --conversation conv-77 --store http://default:secret@clickhouse:8123/llm
    """
    from driftline.collector.receiver._erase import erase
    from driftline.collector.receiver._serve import default_spool_dir

    try:
        subject = Subject(tenant=tenant, user=user, conversation=conversation)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    with opened(store_url) as store:
        _require_writable(store, store_url)
        deleted = erase(store, subject, spool_dir or default_spool_dir(store))
    if as_json:
        click.echo(json.dumps(deleted, indent=2))
        return
    click.echo(table([{"from": where, "deleted": f"{count:,}"} for where, count in deleted.items()], ["from", "deleted"]))


def _require_writable(store: Store, store_url: str | None) -> None:
    """An embedded store reached through serve's read-only endpoint cannot be erased from."""
    if store.url.startswith("http") and resolve_store_url(store_url).startswith("chdb:"):
        raise ConfigError(f"{store_url} is held by a running `driftline serve`: stop it first (erasure also rewrites its spool)")


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
    """Say what the store holds: schema version, tables, rows, size on disk, how long each table
    keeps rows, how many values each redaction rule masked, and the engine's own logs.

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
             "on disk": _human_bytes(t.bytes_on_disk),
             "kept": _days(info.retention_days[t.name]) if t.name in info.retention_days else ""} for t in info.tables]  # fmt: skip
    if rows:
        click.echo("")
        click.echo(table(rows, ["table", "engine", "rows", "on disk", "kept"]))
    click.echo("")
    click.echo(f"engine logs (system.*_log): {_human_bytes(info.system_log_bytes)}")
    masked = ", ".join(f"{rule} {count:,}" for rule, count in info.redactions.items()) or "none yet"
    click.echo(f"values redacted, by rule: {masked}")
