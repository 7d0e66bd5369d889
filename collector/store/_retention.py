"""Retention: how many days each table keeps rows, as ClickHouse TTLs the engine enforces itself.

Two classes of table: `raw` (otel_traces, its trace-id lookup, otel_logs: they hold the content,
so keep them short) and `typed` (llm_calls, llm_scores: numbers and dimensions the analyzers read,
kept long). Changes and first appearances hold no content and stay. A TTL drops whole daily parts
(`ttl_only_drop_parts`), so expiry costs no rewrite; changing one applies it to the rows already there.
"""

from __future__ import annotations

import re
from typing import Final

from driftline.collector._errors import ConfigError

from ._store import Store

__all__ = ["CLASSES", "RETENTION_TABLES", "retention", "set_retention"]

RETENTION_TABLES: Final = {
    "otel_traces": ("raw", "toDateTime(Timestamp)"),
    "otel_traces_trace_id_ts": ("raw", "toDateTime(Start)"),
    "otel_logs": ("raw", "TimestampTime"),
    "llm_calls": ("typed", "toDateTime(time)"),
    "llm_scores": ("typed", "toDateTime(time)"),
}
"""Table -> (class, the time its TTL counts from); the same expressions the migrations' {ttl: ...} use."""
CLASSES: Final = ("raw", "typed")
_DAYS: Final = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


def set_retention(store: Store, *, raw_days: int | None = None, typed_days: int | None = None) -> dict[str, int]:
    """Set the TTL of every table of each class given (0 keeps rows forever); returns table -> days."""
    wanted = {"raw": raw_days, "typed": typed_days}
    done: dict[str, int] = {}
    for table, (kind, time_expr) in RETENTION_TABLES.items():
        days = wanted[kind]
        if days is None:
            continue
        if days < 0:
            raise ConfigError(f"{kind} retention must be 0 (keep forever) or a number of days, not {days}")
        if days:
            store.command(f"ALTER TABLE {table} MODIFY TTL {time_expr} + toIntervalDay({int(days)})")
        elif retention(store).get(table):
            store.command(f"ALTER TABLE {table} REMOVE TTL")
        done[table] = days
    return done


def retention(store: Store) -> dict[str, int]:
    """Table -> days its rows are kept (0: forever), for the tables that exist."""
    rows = store.rows(
        "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND has({tables:Array(String)}, name)",
        {"tables": list(RETENTION_TABLES)},
    )
    return {str(name): int(match.group(1)) if (match := _DAYS.search(str(engine))) else 0 for name, engine in rows}
