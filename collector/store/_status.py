"""What the store holds: schema version, tables, row counts, size on disk, retention, redaction counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._migrate import latest_version, pending, schema_version
from ._redactions import redaction_counts
from ._retention import retention
from ._store import Store

__all__ = ["StoreStatus", "TableStatus", "status"]


@dataclass(frozen=True)
class TableStatus:
    """One table or view of the store."""

    name: str
    engine: str
    rows: int | None
    bytes_on_disk: int | None


@dataclass(frozen=True)
class StoreStatus:
    """A summary of the store, as `driftline db status` prints it."""

    url: str
    embedded: bool
    server_version: str
    schema_version: int
    expected_version: int
    pending: list[str]
    tables: list[TableStatus] = field(default_factory=list)
    retention_days: dict[str, int] = field(default_factory=dict)
    """Table -> days its rows are kept (0: forever)."""
    redactions: dict[str, int] = field(default_factory=dict)
    """Rule -> values it masked, hashed or dropped, over everything written."""
    system_log_bytes: int = 0
    """What the engine's own logs (system.*_log) take on disk."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def status(store: Store) -> StoreStatus:
    """Read-only summary of the store (never creates anything)."""
    rows = store.rows(
        "SELECT name, engine, total_rows, total_bytes FROM system.tables"
        " WHERE database = currentDatabase() AND NOT startsWith(name, '.inner') ORDER BY name"
    )
    tables = [TableStatus(str(n), str(e), None if r is None else int(r), None if b is None else int(b)) for n, e, r, b in rows]
    return StoreStatus(
        url=store.url,
        embedded=store.capabilities.embedded,
        server_version=store.capabilities.server_version,
        schema_version=schema_version(store),
        expected_version=latest_version(),
        pending=[f"{m.version:04d}_{m.name}" for m in pending(store)],
        tables=tables,
        retention_days=retention(store),
        redactions=redaction_counts(store),
        system_log_bytes=int(store.rows(
            "SELECT sum(total_bytes) FROM system.tables WHERE database = 'system' AND endsWith(name, '_log') AND engine LIKE '%MergeTree%'"
        )[0][0] or 0),
    )
