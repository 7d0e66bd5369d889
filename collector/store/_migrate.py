"""Versioned schema migrations, the same on both backends.

Each migration is a numbered `.sql` file in `migrations/`: statements end with `;` at a line end.
Two placeholders keep the files free of copies: `{include: NAME}` inserts `NAME.sql` (a view's
SELECT, used by both its backfill and its materialized view, or a part of one; included files
may include others), and `{ttl: EXPR}` becomes a TTL clause when a retention is configured.
`{database}` becomes the store's database, for table names ClickHouse does not qualify when it
stores a view (inside strings: joinGet's), which would otherwise resolve in the inserting session's.
The migrations that create a table always carry its latest shape (0002 makes today's llm_calls and
its view); a later migration that only brings an older store up to that shape says `{upgrade only}`
and is recorded without running on a store migrated from empty, where it would change nothing
(most of a new store's migrate time went on replacing views and backfilling again). One that says
`{embedded only}` tunes the embedded engine and is recorded without running on a ClickHouse server.
ClickHouse has no DDL transactions, so every statement is idempotent (IF NOT EXISTS, guarded
backfills) and a migration is recorded only after all of its statements ran: a crash mid-way is
repaired by running `migrate` again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources

from driftline.collector._errors import ConfigError, SchemaError

from ._store import Store

__all__ = ["Migration", "applied", "migrate", "migrations", "pending", "reset"]

MIGRATIONS_TABLE = "driftline_migrations"
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_INCLUDE = re.compile(r"\{include:\s*(\w+)\}")
_TTL = re.compile(r"\{ttl:\s*([^}]+)\}")
_UPGRADE_ONLY = "{upgrade only}"
_EMBEDDED_ONLY = "{embedded only}"
_CREATES = re.compile(r"^CREATE\s+(?:MATERIALIZED\s+VIEW|VIEW|TABLE)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I | re.M)


@dataclass(frozen=True)
class Migration:
    """One schema step: its number, name and statements (placeholders still unexpanded)."""

    version: int
    name: str
    text: str
    ran: bool = True
    """False when `migrate` only recorded it: an upgrade step on a new store, an embedded tuning on a server."""

    @property
    def upgrade_only(self) -> bool:
        """Whether it only brings an older schema to what the creating migrations already build."""
        return _UPGRADE_ONLY in self.text

    @property
    def embedded_only(self) -> bool:
        """Whether it tunes the embedded engine only (a setting servers may not know)."""
        return _EMBEDDED_ONLY in self.text

    def statements(self, *, ttl_days: int, database: str) -> list[str]:
        """The statements to run, with includes, the TTL clause and the database expanded."""
        if not re.fullmatch(r"\w+", database):
            raise ConfigError(f"database name {database!r}: driftline's schema needs letters, digits and underscores")
        expanded = _expand_includes(self.text.replace(_UPGRADE_ONLY, "").replace(_EMBEDDED_ONLY, "")).replace("{database}", database)
        expanded = _TTL.sub(lambda m: f"TTL {m.group(1)} + toIntervalDay({ttl_days})" if ttl_days > 0 else "", expanded)
        return [s.strip() for s in re.split(r";\s*$", expanded, flags=re.M) if _has_sql(s)]


def _expand_includes(text: str) -> str:
    """`text` with every `{include: NAME}` replaced, includes inside included files too."""
    return _INCLUDE.sub(lambda m: _expand_includes(_read(m.group(1) + ".sql").strip().rstrip(";")), text)


def _has_sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def _read(name: str) -> str:
    return resources.files("driftline.collector.store.migrations").joinpath(name).read_text(encoding="utf-8")


def migrations() -> list[Migration]:
    """Every migration this driftline ships, in order."""
    found = []
    for entry in resources.files("driftline.collector.store.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def _ensure_table(store: Store) -> None:
    store.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version UInt32, name String, applied_at DateTime64(3, 'UTC'))"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )


def applied(store: Store) -> dict[int, datetime]:
    """Versions already applied, with when; read-only (an absent table means none)."""
    if not store.table_exists(MIGRATIONS_TABLE):
        return {}
    rows = store.rows(f"SELECT version, max(applied_at) FROM {MIGRATIONS_TABLE} GROUP BY version")
    return {int(v): at for v, at in rows}


def pending(store: Store) -> list[Migration]:
    """Migrations not yet applied; never writes."""
    done = applied(store)
    return [m for m in migrations() if m.version not in done]


def schema_version(store: Store) -> int:
    """Highest applied migration, 0 for an empty store."""
    return max(applied(store), default=0)


def latest_version() -> int:
    """The schema version this driftline expects."""
    return migrations()[-1].version


def require_schema(store: Store) -> None:
    """Raise SchemaError unless the store is at the version this driftline expects."""
    have, want = schema_version(store), latest_version()
    if have < want:
        raise SchemaError(f"the store at {store.url} is at schema version {have}, this driftline needs {want}: run `driftline db migrate`")


def migrate(store: Store, *, ttl_days: int = 0) -> list[Migration]:
    """Apply every pending migration in order; returns those applied. Safe to run twice. On a store
    with none applied yet, `{upgrade only}` migrations are recorded without running; on a ClickHouse
    server, `{embedded only}` ones (`Migration.ran` says which)."""
    if ttl_days < 0:
        raise ConfigError(f"ttl_days must be 0 (keep forever) or positive, not {ttl_days}")
    _ensure_table(store)
    database = str(store.rows("SELECT currentDatabase()")[0][0])
    todo = pending(store)
    empty = len(todo) == len(migrations())
    done = []
    for migration in todo:
        skipped = (empty and migration.upgrade_only) or (migration.embedded_only and not store.capabilities.embedded)
        if not skipped:
            for statement in migration.statements(ttl_days=ttl_days, database=database):
                store.command(statement)
        store.insert(MIGRATIONS_TABLE, [[migration.version], [migration.name], [datetime.now(UTC)]], ["version", "name", "applied_at"])
        done.append(replace(migration, ran=not skipped))
    return done


def reset(store: Store, *, ttl_days: int = 0) -> list[Migration]:
    """Empty the store: drop every table and view driftline's migrations create, then migrate.

    Only driftline's own objects go (their names come from the migration files); other tables in
    the database and the data directory itself are left alone.
    """
    created = dict.fromkeys(name for migration in migrations() for name in _CREATES.findall(migration.text))
    # in the reverse of the order they were first created: a view before the table it writes to, a
    # table before the one its columns read (llm_calls' prices, model_prices)
    for name in [*reversed(created), MIGRATIONS_TABLE]:
        store.command(f"DROP TABLE IF EXISTS {name} SYNC")
    return migrate(store, ttl_days=ttl_days)
