"""The schema: otel_traces as the OTel Collector's ClickHouse exporter makes it; typed tables filled
by materialized views whichever writer came first; migrations versioned, idempotent, repairable."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftline.collector import ConfigError, Store, StoreSpanExporter, connect, migrate, pending
from driftline.collector.store import _migrate
from driftline.collector.store._migrate import MIGRATIONS_TABLE, Migration, latest_version, migrations
from driftline.collector.store._prices import load_prices
from driftline.collector.store._spans import OTEL_TRACES_COLUMNS

# The contrib exporter's traces table (exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql),
# as (column, type) in table order; the Grafana ClickHouse plugin's trace view reads these names.
COLLECTOR_OTEL_TRACES = [
    ("Timestamp", "DateTime64(9)"), ("TraceId", "String"), ("SpanId", "String"), ("ParentSpanId", "String"),
    ("TraceState", "String"), ("SpanName", "LowCardinality(String)"), ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"), ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"), ("ScopeVersion", "String"), ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"), ("StatusCode", "LowCardinality(String)"), ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"), ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"), ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"), ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("ResourceAttributeItems", "Array(String)"), ("SpanAttributeItems", "Array(String)"),
]  # fmt: skip
COLLECTOR_TRACE_ID_TS = [
    ("TraceId", "String"), ("Start", "SimpleAggregateFunction(min, DateTime)"), ("End", "SimpleAggregateFunction(max, DateTime)"),
]  # fmt: skip


def columns(store: Store, table: str) -> list[tuple[str, str]]:
    rows = store.rows("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position", {"t": table})
    return [(str(n), str(t)) for n, t in rows]


def keys(store: Store, table: str) -> tuple[str, str, str]:
    rows = store.rows("SELECT partition_key, primary_key, sorting_key FROM system.tables WHERE database = currentDatabase() AND name = {t:String}", {"t": table})
    return rows[0]


def test_otel_traces_matches_the_collector_exporter_column_for_column(store: Store) -> None:
    assert columns(store, "otel_traces") == COLLECTOR_OTEL_TRACES
    assert keys(store, "otel_traces") == (
        "toDate(Timestamp)", "ServiceName, SpanName, toDateTime(Timestamp)", "ServiceName, SpanName, toDateTime(Timestamp), Timestamp",
    )  # fmt: skip
    assert columns(store, "otel_traces_trace_id_ts") == COLLECTOR_TRACE_ID_TS
    assert keys(store, "otel_traces_trace_id_ts") == ("toStartOfWeek(Start)", "(TraceId)", "(TraceId)")
    assert store.table_exists("otel_traces_trace_id_ts_mv")


def test_exporter_inserts_the_collector_column_list() -> None:
    assert list(OTEL_TRACES_COLUMNS) == [name for name, _ in COLLECTOR_OTEL_TRACES[:-2]]


# --- a store an OTel Collector wrote before driftline came ------------------------------------

T0 = 1_790_000_000_000_000_000


def collector_rows(first: int, count: int, *, service: str = "checkout") -> list[list[Any]]:
    """Rows as the Collector writes them: every attribute value already a string."""
    rows = []
    for i in range(first, first + count):
        genai = i % 4 != 3  # every fourth span is a plain HTTP span
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.response.model": "gpt-4o-2024-08-06" if i < 6 else "gpt-4o-2024-11-20",
                 "gen_ai.usage.input_tokens": str(100 + i), "gen_ai.usage.output_tokens": "20"} if genai else {"http.request.method": "GET"}  # fmt: skip
        events = ([T0 + i * 10**9 + 5], ["gen_ai.evaluation.result"], [{"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": "0.5"}]) if genai else ([], [], [])  # fmt: skip
        rows.append([
            T0 + i * 10**9, f"{i + 1:032x}", f"{i + 1:016x}", "", "", "chat gpt-4o" if genai else "GET /", "Client", service,
            {"service.name": service, "service.version": "2.0.0"}, "io.opentelemetry.collector", "0.119.0", attrs,
            1_500_000_000, "Ok", "", *events, [], [], [], [],
        ])  # fmt: skip
    return rows


def insert_as_collector(store: Store, rows: list[list[Any]]) -> None:
    store.insert("otel_traces", [list(col) for col in zip(*rows)], OTEL_TRACES_COLUMNS)


@pytest.fixture
def collector_store(store_url: str) -> Iterator[Store]:
    """A database holding only what the Collector creates and writes (its tables, 8 spans)."""
    opened = connect(store_url)
    for statement in migrations()[0].statements(ttl_days=0, database=opened.client.database):  # the Collector's own three statements
        opened.command(statement)
    insert_as_collector(opened, collector_rows(0, 8))
    yield opened
    opened.command(f"DROP DATABASE IF EXISTS {opened.client.database}")
    opened.close()


def counts(store: Store) -> dict[str, int]:
    tables = ("otel_traces", "llm_calls", "llm_scores", "changes", "first_seen", "otel_traces_trace_id_ts")
    return {t: int(store.rows(f"SELECT count() FROM {t}")[0][0]) for t in tables}


def test_migrate_on_collector_written_store_backfills_each_genai_span_exactly_once(collector_store: Store) -> None:
    assert [m.version for m in migrate(collector_store)] == list(range(1, latest_version() + 1))
    genai_ids = sorted(f"{i + 1:016x}" for i in range(8) if i % 4 != 3)
    assert [r[0] for r in collector_store.rows("SELECT span_id FROM llm_calls ORDER BY span_id")] == genai_ids
    assert collector_store.rows("SELECT count(), uniqExact(span_id) FROM llm_scores") == [(6, 6)]
    assert collector_store.rows("SELECT sum(input_tokens), any(service_version) FROM llm_calls") == [(sum(100 + i for i in range(8) if i % 4 != 3), "2.0.0")]
    first = collector_store.rows("SELECT value, calls FROM first_seen FINAL WHERE dimension = 'response_model' ORDER BY value")
    assert first == [("gpt-4o-2024-08-06", 5), ("gpt-4o-2024-11-20", 1)]


def test_migrate_twice_changes_nothing(collector_store: Store) -> None:
    migrate(collector_store)
    before = counts(collector_store), collector_store.rows(f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version")
    assert migrate(collector_store) == []
    assert pending(collector_store) == []
    assert (counts(collector_store), collector_store.rows(f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version")) == before


def test_spans_written_after_migrate_flow_through_the_views_once(collector_store: Store) -> None:
    migrate(collector_store)
    before = counts(collector_store)
    insert_as_collector(collector_store, collector_rows(8, 4))
    after = counts(collector_store)
    assert (after["otel_traces"] - before["otel_traces"], after["llm_calls"] - before["llm_calls"], after["llm_scores"] - before["llm_scores"]) == (4, 3, 3)


def test_migrate_rerun_after_a_crash_before_recording_does_not_duplicate(collector_store: Store) -> None:
    migrate(collector_store)
    before = counts(collector_store)
    # A crash after 0002/0003 ran but before they were recorded: only 0001 is on record.
    collector_store.command(f"TRUNCATE TABLE {MIGRATIONS_TABLE}")
    collector_store.insert(MIGRATIONS_TABLE, [[1], ["otel_traces"], [datetime(2026, 1, 1)]], ["version", "name", "applied_at"])
    assert [m.version for m in migrate(collector_store)] == list(range(2, latest_version() + 1))
    assert counts(collector_store) == before


def test_migrate_rerun_completes_a_backfill_cut_short(collector_store: Store) -> None:
    migrate(collector_store)
    complete = collector_store.rows("SELECT span_id FROM llm_calls ORDER BY span_id")
    # A crash in the middle of 0002's backfill: some spans copied, 0002 not recorded.
    collector_store.command("DELETE FROM llm_calls WHERE span_id IN {ids:Array(String)}", {"ids": [r[0] for r in complete[::2]]})
    collector_store.command(f"TRUNCATE TABLE {MIGRATIONS_TABLE}")
    collector_store.insert(MIGRATIONS_TABLE, [[1], ["otel_traces"], [datetime(2026, 1, 1)]], ["version", "name", "applied_at"])
    migrate(collector_store)
    assert collector_store.rows("SELECT span_id FROM llm_calls ORDER BY span_id") == complete


def calls_select(store: Store) -> str:
    """llm_calls' SELECT as the migrations expand it for `store`."""
    (select,) = Migration(0, "view", "{include: llm_calls_select};").statements(ttl_days=0, database=store.client.database)
    return select


COLUMNS_0006 = ("cache_write_tokens", "tokens_estimated", "cost_amount", "cost_currency", "cost_source", "cost_computed", "cancellation_cost_usd")


def _as_before_0006(store: Store) -> None:
    """Take a migrated store back to schema version 5: llm_calls without 0006's columns nor the
    pricing defaults of 0009, its view computing cost_usd itself and writing only the columns it had
    (the price table stays: the view's SQL reads it)."""
    store.command("DROP VIEW llm_calls_mv SYNC")
    pricing = dict(store.rows("SELECT name, default_kind FROM system.columns WHERE database = currentDatabase()"
                              " AND table = 'llm_calls' AND default_kind IN ('DEFAULT', 'EPHEMERAL') ORDER BY position"))
    for column in (c for c, kind in pricing.items() if kind == "DEFAULT"):
        store.command(f"ALTER TABLE llm_calls MODIFY COLUMN {column} REMOVE DEFAULT")
    for column in [c for c, kind in reversed(pricing.items()) if kind == "EPHEMERAL"] + list(COLUMNS_0006):  # dependents first
        store.command(f"ALTER TABLE llm_calls DROP COLUMN {column}")
    older = ", ".join(name for name, _ in columns(store, "llm_calls"))
    with before_0008():
        select = calls_select(store)
    store.command(f"CREATE MATERIALIZED VIEW llm_calls_mv TO llm_calls AS SELECT {older} FROM ({select})")
    store.command(f"TRUNCATE TABLE {MIGRATIONS_TABLE}")
    for m in migrations()[:5]:
        store.insert(MIGRATIONS_TABLE, [[m.version], [m.name], [datetime(2026, 1, 1)]], ["version", "name", "applied_at"])


def test_migrating_a_store_from_before_0006_keeps_its_calls_and_fills_the_new_columns_from_then_on(collector_store: Store) -> None:
    migrate(collector_store)
    load_prices(collector_store)  # the version-5 view prices these calls; 0006's columns must not
    _as_before_0006(collector_store)
    insert_as_collector(collector_store, collector_rows(8, 4))  # written by the version-5 view
    before = collector_store.rows("SELECT span_id, input_tokens, cost_usd FROM llm_calls ORDER BY span_id")
    assert all(cost for span, _, cost in before if span > f"{8:016x}")  # priced by the version-5 view
    assert [m.version for m in migrate(collector_store)] == list(range(6, latest_version() + 1))
    assert {name for name, _ in columns(collector_store, "llm_calls")} >= set(COLUMNS_0006)
    assert collector_store.rows("SELECT span_id, input_tokens, cost_usd FROM llm_calls ORDER BY span_id") == before
    # the older rows' new columns hold nothing (not a cost the table's defaults would compute today)
    assert collector_store.rows("SELECT countIf(cost_computed), countIf(cache_write_tokens IS NOT NULL), countIf(cost_amount IS NOT NULL),"
                                " countIf(cost_source IS NOT NULL), countIf(cost_currency IS NOT NULL) FROM llm_calls") == [(0, 0, 0, 0, 0)]
    rows = collector_rows(12, 1)
    rows[0][11] = {**rows[0][11], "gen_ai.usage.cache_creation.input_tokens": "64"}
    insert_as_collector(collector_store, rows)
    assert collector_store.rows("SELECT cache_write_tokens FROM llm_calls WHERE span_id = {s:String}", {"s": f"{13:016x}"}) == [(64,)]


# --- 0008 and 0009: llm_calls' view made to cost less per insert, every value the same -----------

COLUMNS_0007 = Path(__file__).with_name("llm_calls_columns_0007.sql").read_text(encoding="utf-8")


BACKFILL_0007 = """INSERT INTO llm_calls SELECT * FROM ({include: llm_calls_select})
WHERE (trace_id, span_id) NOT IN (SELECT trace_id, span_id FROM llm_calls)"""


@contextlib.contextmanager
def as_at(version: int, older: dict[str, str]) -> Iterator[None]:
    """Migrations as driftline had them at schema `version`: those up to it, with the `older` text of
    the files it names."""
    read, known = _migrate._read, migrations()[:version]
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(_migrate, "_read", lambda name: older.get(name) or read(name))
        patched.setattr(_migrate, "migrations", lambda: known)
        yield


def before_0008() -> contextlib.AbstractContextManager[None]:
    """At schema version 7: the older llm_calls_columns.sql (which priced calls itself) and its backfill."""
    return as_at(7, {"llm_calls_columns.sql": COLUMNS_0007, "llm_calls_backfill.sql": BACKFILL_0007})


def varied_rows(first: int, count: int) -> list[list[Any]]:
    """collector_rows whose calls in turn are left to the price table, carry a cost, and bill tokens after a cancel."""
    extras = ({}, {"gen_ai.usage.cost": "0.002"}, {"gen_ai.request.stream": "true", "driftline.stream.tokens_after_cancel": "40"})
    rows = collector_rows(first, count)
    for i, row in enumerate(rows):
        if "gen_ai.system" in row[11]:
            row[11] = {**row[11], **extras[i % len(extras)]}
    return rows


def test_migrations_since_0007_keep_every_call_once_and_every_value(collector_store: Store) -> None:
    with before_0008():
        assert [m.version for m in migrate(collector_store)] == list(range(1, 8))
        older = calls_select(collector_store)
    load_prices(collector_store)
    insert_as_collector(collector_store, varied_rows(8, 8))  # through the version-7 view
    kept = collector_store.rows("SELECT * FROM llm_calls ORDER BY span_id")
    collector_store.command("DROP VIEW llm_calls_mv SYNC")  # as 0008 does first: spans written then
    insert_as_collector(collector_store, varied_rows(16, 4))  # reach llm_calls by its backfill
    assert [m.version for m in migrate(collector_store)] == list(range(8, latest_version() + 1))
    view = collector_store.rows("SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'llm_calls_mv'")[0][0]
    assert "reported_cost_usd" in view and "joinGet" not in view  # 0009: the table prices calls, not the view
    insert_as_collector(collector_store, varied_rows(20, 8))  # through the new view
    since = {"id": f"{16 + 1:016x}"}
    newer = collector_store.rows(f"SELECT * FROM ({older}) WHERE span_id >= {{id:String}} ORDER BY span_id", since)
    assert collector_store.rows("SELECT * FROM llm_calls ORDER BY span_id") == kept + newer
    assert collector_store.rows("SELECT count(), countIf(cost_computed) > 0, countIf(cancellation_cost_usd > 0) > 0 FROM llm_calls") == [(21, True, True)]


# Span attributes combined every way (one dict from each list): costs given or not, known and unknown
# models, token counts of every convention, streams and cancellations, rate-limit errors.
VARIANTS = {
    "cost": [{}, {"driftline.cost": 0.01}, {"driftline.cost": "abc"}, {"gen_ai.usage.cost.amount": 0.2, "gen_ai.usage.cost.currency": "EUR"},
             {"gen_ai.usage.cost.amount": 0.3, "gen_ai.usage.cost.source": "vendor"}, {"gen_ai.usage.cost": 0}, {"gen_ai.usage.cost": 0.04}],
    "model": [{"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.request.model": "gpt-4o"},
              {"gen_ai.response.model": "nope-1", "gen_ai.request.model": "gpt-4o-mini"}, {"gen_ai.request.model": "nope"},
              {"llm.model_name": "gpt-4o", "llm.provider": "openai"}],
    "tokens": [{}, {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 50},
               {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 400,
                "gen_ai.usage.cache_creation.input_tokens": 100, "gen_ai.usage.output_tokens": 7},
               {"llm.usage.total_tokens": 90, "gen_ai.usage.prompt_tokens": 30}, {"gen_ai.usage.output_tokens": 5}],
    "stream": [{}, {"gen_ai.request.stream": True, "driftline.stream.tokens_after_cancel": 40, "driftline.stream.cancelled": True},
               {"gen_ai.is_streaming": True, "gen_ai.response.finish_reasons": ["stop"]},
               {"llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}', "openinference.span.kind": "LLM"}],
    "error": [{}, {"error.type": "<class 'openai.RateLimitError'>", "http.response.status_code": 429}],
}  # fmt: skip


def varied_spans() -> tuple[ReadableSpan, ...]:
    """One ended span per combination of VARIANTS, some with exception or first-chunk events, some failed."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "varied"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openlit.instrumentation.openai")
    for i, parts in enumerate(itertools.product(*VARIANTS.values())):
        attributes = {"gen_ai.provider.name": "openai" if i % 3 else "OpenAI", "gen_ai.operation.name": "chat"}
        for part in parts:
            attributes.update(part)
        with tracer.start_as_current_span("chat", attributes=attributes) as span:
            if i % 5 == 0:
                span.add_event("exception", {"exception.type": "APIError", "exception.message": "Error code: 503 - x"})
            if i % 7 == 0:
                span.add_event("gen_ai.content.completion.chunk", {})
            if parts[-1] and i % 2:
                span.set_status(2, "Error code: 429 - slow down")
    return exporter.get_finished_spans()


def test_llm_calls_view_gives_every_column_the_value_the_sql_before_0008_gave(store: Store) -> None:
    load_prices(store)
    StoreSpanExporter(store).export(varied_spans())
    with before_0008():
        older = calls_select(store)
    stored = store.rows("SELECT * FROM llm_calls ORDER BY span_id")
    assert len(stored) == 1120 and stored == store.rows(f"SELECT * FROM ({older}) ORDER BY span_id")
    sources = store.rows("SELECT groupUniqArray(ifNull(cost_source, '')), countIf(cancellation_cost_usd > 0) FROM llm_calls")[0]
    assert {"app", "reported", "vendor", "openlit", ""} < set(sources[0]) and any(s.startswith("genai-prices") for s in sources[0]) and sources[1] > 0


# --- 0011: first_seen's view groups the calls before spreading them into a row per dimension -----

FIRST_SEEN_0010 = Path(__file__).with_name("first_seen_select_0010.sql").read_text(encoding="utf-8")


def test_first_seen_counts_every_call_once_across_0011_as_the_view_before_it_did(collector_store: Store) -> None:
    with as_at(10, {"first_seen_select.sql": FIRST_SEEN_0010}):
        assert [m.version for m in migrate(collector_store)] == list(range(1, 11))
    spans = varied_spans()
    StoreSpanExporter(collector_store).export(spans[:500])  # through version 10's view: a row per call and dimension
    assert [m.version for m in migrate(collector_store)] == [11]
    StoreSpanExporter(collector_store).export(spans[500:])  # through 0011's
    (older,) = Migration(0, "view", FIRST_SEEN_0010).statements(ttl_days=0, database=collector_store.client.database)
    every = "dimension, scope, value, service"
    stored = collector_store.rows(f"SELECT {every}, min(first_seen), max(last_seen), sum(calls) FROM first_seen GROUP BY {every} ORDER BY {every}")
    assert stored == collector_store.rows(f"SELECT * FROM ({older}) ORDER BY {every}")
    assert {row[0] for row in stored} == {"request_model", "response_model", "service_version"}
    assert sum(row[-1] for row in stored if row[0] == "request_model") == len(spans) + 6  # and the Collector's six calls


def schema(store: Store) -> dict[str, str]:
    """Every table and view of the store's database as its CREATE statement, the database's name left out."""
    rows = store.rows("SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()")
    return {str(name): str(query).replace(f"{store.client.database}.", "") for name, query in rows}


def test_a_new_store_skips_the_upgrade_only_migrations_and_gets_the_schema_running_each_in_turn_gives(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrations()
    assert [m.version for m in every if m.upgrade_only] == [6, 8, 9, 11]
    with connect(store_url) as new, connect(f"{store_url}_stepped") as stepped:
        assert [m.version for m in migrate(new)] == [m.version for m in every]
        for version in range(1, len(every) + 1):  # one at a time: only the first finds the store empty
            monkeypatch.setattr(_migrate, "migrations", lambda version=version: every[:version])
            migrate(stepped)
        monkeypatch.undo()
        assert pending(new) == pending(stepped) == []
        assert schema(new) == schema(stepped)
        for opened in (new, stepped):
            opened.command(f"DROP DATABASE IF EXISTS {opened.client.database}")


def storage(store: Store, table: str) -> list[str]:
    """The storage type of each active part of a table: Packed (one file) or Full (a file per stream)."""
    rows = store.rows("SELECT part_storage_type FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active", {"t": table})
    return [str(kind) for (kind,) in rows]


def test_an_embedded_store_writes_each_small_insert_as_packed_parts_and_a_server_skips_that_migration(store: Store, store_url: str) -> None:
    rows = collector_rows(0, 40)
    insert_as_collector(store, rows)
    for table in ("otel_traces", "otel_traces_trace_id_ts", "llm_calls", "first_seen"):
        kinds = storage(store, table)
        assert kinds and set(kinds) == {"Packed"}, table
    assert store.rows("SELECT count() FROM llm_calls") == [(len([r for r in rows if "gen_ai.system" in r[11]]),)]
    with connect(store_url + "_server") as opened:  # the same engine, taken for a ClickHouse server
        server = Store(opened.client, opened.url, replace(opened.capabilities, embedded=False))
        assert [m.version for m in migrate(server)] == list(range(1, latest_version() + 1))
        assert "min_bytes_for_full_part_storage" not in schema(server)["otel_traces"]
        insert_as_collector(server, rows)
        assert set(storage(server, "otel_traces")) == set(storage(server, "llm_calls")) == {"Full"}
        server.command(f"DROP DATABASE IF EXISTS {server.client.database}")


def test_pending_never_writes(store_url: str) -> None:
    with connect(store_url) as fresh:
        assert [m.version for m in pending(fresh)] == list(range(1, latest_version() + 1))
        assert fresh.rows("SELECT count() FROM system.tables WHERE database = currentDatabase()") == [(0,)]
        fresh.command(f"DROP DATABASE IF EXISTS {fresh.client.database}")


def test_migrate_with_ttl_days_sets_retention_on_raw_and_typed_tables(store_url: str) -> None:
    with connect(store_url) as fresh:
        migrate(fresh, ttl_days=30)
        ddl = dict(fresh.rows("SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"))
        for table in ("otel_traces", "llm_calls", "llm_scores"):
            assert "TTL" in ddl[table] and "toIntervalDay(30)" in ddl[table], table
        fresh.command(f"DROP DATABASE IF EXISTS {fresh.client.database}")


def test_migrate_rejects_negative_ttl(store: Store) -> None:
    with pytest.raises(ConfigError, match="ttl_days"):
        migrate(store, ttl_days=-1)


def test_migrations_are_numbered_without_gaps() -> None:
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
