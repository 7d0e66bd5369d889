"""Data protection through the store: `instrument()` masks before the insert, retention by TTL,
erasure by tenant, user and conversation (the store, serve's spool and its dead letters), counts
in `driftline db status`, and the analyzers still working on masked data."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from incident_scenarios import NEW_MODEL, silent_provider_update
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import DRIFTLINE, wait_for

from driftline.analyzers.cli import cli
from driftline.collector import Store, StoreSpanExporter, connect, instrument, llm_call, migrate, release
from driftline.collector.receiver._dead_letter import DeadLetters
from driftline.collector.receiver._spool import Record

EMAIL, KEY = "pat.doe@example.org", "sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0Aa"


def db(*args: str) -> Any:
    return CliRunner().invoke(cli, ["db", *args])


def test_instrument_masks_content_before_the_insert_and_db_status_counts_it(store_url: str) -> None:
    handle = instrument("support-bot", store=store_url)
    with release(tenant="acme"), llm_call(provider="openai", model="gpt-4o", attributes={
        "gen_ai.input.messages": json.dumps([{"role": "user", "content": f"I am {EMAIL}, key {KEY}"}]),
    }) as call:  # fmt: skip
        call.response(model="gpt-4o-2024-08-06", input_tokens=10, output_tokens=5)
        trace.get_current_span().add_event("gen_ai.content.completion", {"gen_ai.completion": f"noted {EMAIL}"})
    handle.shutdown()
    with connect(store_url) as store:
        stored = repr(store.rows("SELECT SpanAttributes, Events.Attributes FROM otel_traces"))
        assert EMAIL not in stored and KEY not in stored
        assert stored.count("[REDACTED:email]") == 2 and "[REDACTED:api_key]" in stored and "gpt-4o-2024-08-06" in stored
        assert store.rows("SELECT tenant, response_model FROM llm_calls") == [("acme", "gpt-4o-2024-08-06")]
    status = db("status", "--json", "--store", store_url)
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["redactions"] == {"api_key": 1, "email": 2}
    assert "values redacted, by rule: api_key 1, email 2" in db("status", "--store", store_url).output


def test_the_exporter_without_redaction_stores_content_as_sent(store: Store) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store, owns_store=False, redaction=False)))
    with provider.get_tracer("t").start_as_current_span("chat", attributes={"gen_ai.input.messages": EMAIL}):
        pass
    assert store.rows("SELECT SpanAttributes['gen_ai.input.messages'] FROM otel_traces") == [(EMAIL,)]


def with_content(span: ReadableSpan) -> ReadableSpan:
    """The span as an app recording content would have made it: the prompt, with a planted e-mail."""
    attributes = {**(span.attributes or {}), "gen_ai.input.messages": json.dumps([{"role": "user", "content": f"reach me at {EMAIL}"}])}
    return ReadableSpan(name=span.name, context=span.context, parent=span.parent, resource=span.resource, attributes=attributes,
                        events=span.events, links=span.links, kind=span.kind, status=span.status, start_time=span.start_time,
                        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)  # fmt: skip


def test_the_incident_report_and_the_overview_dashboard_work_on_masked_data(store: Store) -> None:
    scenario = silent_provider_update()
    assert StoreSpanExporter(store, owns_store=False).export([with_content(s) for s in scenario.spans()]).name == "SUCCESS"
    assert "[REDACTED:email]" in store.rows("SELECT any(SpanAttributes['gen_ai.input.messages']) FROM otel_traces")[0][0]
    assert store.rows("SELECT countIf(position(toString(SpanAttributes), {e:String}) > 0) FROM otel_traces", {"e": EMAIL}) == [(0,)]
    result = CliRunner().invoke(cli, ["incident", "report", "--since", "3h", "--store", store.url])
    assert result.exit_code == 0, result.output
    summary = next(line for line in result.stdout.splitlines() if line.startswith("> "))
    assert "quality:faithfulness down" in summary and f"response_model={NEW_MODEL}" in summary
    checked = CliRunner().invoke(cli, ["dashboards", "check", "--store", store.url, "--since", "3h", "--dashboard", "llm-overview.json"])
    assert checked.exit_code == 0, checked.output  # every panel's query runs and has data of the right shape


# --- retention -------------------------------------------------------------------------------------


def old_and_new_calls(store: Store) -> None:
    """Two GenAI spans: one 40 days old, one now."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    now = time.time_ns()
    for start in (now - 40 * 86_400 * 10**9, now):
        provider.get_tracer("t").start_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}, start_time=start).end(end_time=start + 10**9)
    StoreSpanExporter(store, owns_store=False).export(exporter.get_finished_spans())


def test_retention_is_set_per_table_class_shown_by_status_and_drops_old_rows(store: Store) -> None:
    old_and_new_calls(store)
    assert store.rows("SELECT count() FROM otel_traces") == [(2,)] and store.rows("SELECT count() FROM llm_calls") == [(2,)]
    changed = db("retention", "--raw-days", "30", "--typed-days", "400", "--store", store.url)
    assert changed.exit_code == 0, changed.output
    assert "otel_traces: kept 30 days (raw)" in changed.output and "llm_calls: kept 400 days (typed)" in changed.output
    store.command("OPTIMIZE TABLE otel_traces FINAL")
    assert store.rows("SELECT count() FROM otel_traces") == [(1,)]  # the 40-day-old raw span is gone
    assert store.rows("SELECT count() FROM llm_calls") == [(2,)]  # its typed row stays
    status = json.loads(db("status", "--json", "--store", store.url).output)
    assert status["retention_days"] == {"otel_traces": 30, "otel_traces_trace_id_ts": 30, "otel_logs": 30, "llm_calls": 400, "llm_scores": 400}
    assert db("retention", "--raw-days", "0", "--store", store.url).exit_code == 0
    assert "otel_logs: kept forever (raw)" in db("retention", "--store", store.url).output


def test_migrate_sets_retention_too(store_url: str) -> None:
    result = db("migrate", "--raw-days", "7", "--store", store_url)
    assert result.exit_code == 0 and "otel_traces: kept 7 days (raw)" in result.output, result.output
    assert "llm_calls: kept" not in result.output  # only the class asked for changes


def test_the_embedded_engine_keeps_no_system_logs_of_its_own(store: Store) -> None:
    old_and_new_calls(store)
    assert json.loads(db("status", "--json", "--store", store.url).output)["system_log_bytes"] == 0


def test_bad_retention_is_a_usage_error_that_changes_nothing(store: Store) -> None:
    result = db("retention", "--raw-days", "-3", "--store", store.url)
    assert result.exit_code == 2 and "-3" in result.output
    assert json.loads(db("status", "--json", "--store", store.url).output)["retention_days"]["otel_traces"] == 0


# --- erasure -------------------------------------------------------------------------------------------


def calls_of(tenants: dict[str, int], *, start: int = 0) -> tuple[ReadableSpan, ...]:
    """GenAI calls per tenant, each under a request span without the tenant (as a web framework makes
    it); user u-<n>, conversation c-<n>."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer, n = provider.get_tracer("t"), start
    for tenant, count in tenants.items():
        for _ in range(count):
            with tracer.start_as_current_span("POST /chat"), release(tenant=tenant):
                attributes = {"user.id": f"u-{n}", "gen_ai.conversation.id": f"c-{n}", "n": n}
                with llm_call(provider="openai", model="gpt-4o", attributes=attributes, tracer_provider=provider) as call:
                    call.response(input_tokens=1, output_tokens=1)
            n += 1
    return exporter.get_finished_spans()


def test_forget_a_tenant_deletes_its_whole_traces_from_every_table(store: Store) -> None:
    StoreSpanExporter(store, owns_store=False).export(calls_of({"acme": 3, "globex": 2}))
    result = db("forget", "--tenant", "acme", "--json", "--store", store.url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"otel_traces": 6, "otel_traces_trace_id_ts": 3, "otel_logs": 0, "llm_calls": 3, "llm_scores": 0}
    assert store.rows("SELECT count(), uniqExact(TraceId) FROM otel_traces") == [(4, 2)]
    assert store.rows("SELECT DISTINCT tenant FROM llm_calls") == [("globex",)]


@pytest.mark.parametrize(("option", "value", "left"), [("--user", "u-1", 4), ("--conversation", "c-4", 4)])
def test_forget_a_user_or_a_conversation(store: Store, option: str, value: str, left: int) -> None:
    StoreSpanExporter(store, owns_store=False).export(calls_of({"acme": 3, "globex": 2}))
    result = db("forget", option, value, "--store", store.url)
    assert result.exit_code == 0 and "otel_traces" in result.output, result.output
    assert store.rows("SELECT count() FROM llm_calls") == [(left,)]


def test_forget_without_a_subject_is_a_usage_error(store: Store) -> None:
    result = db("forget", "--store", store.url)
    assert result.exit_code == 2 and "a tenant, a user id or a conversation id" in result.output


def test_forget_reaches_the_spool_and_the_dead_letters(serve: Any, tmp_path: Path) -> None:
    workdir, fault = tmp_path / "served", tmp_path / "store-down"
    server = serve("--fault-file", str(fault), workdir=workdir)
    HttpSpanExporter(endpoint=f"{server.http}/v1/traces").export(calls_of({"acme": 2, "globex": 1}))  # stored
    server.wait_rows("otel_traces", 6)
    fault.touch()
    HttpSpanExporter(endpoint=f"{server.http}/v1/traces").export(calls_of({"acme": 2, "globex": 2}, start=10))  # only spooled
    wait_for(lambda: server.health()["backlog_items"] == 8, what="8 spans in the spool")
    server.kill9()
    spool = workdir / "store.spool"
    refused = encode_spans(calls_of({"acme": 1, "globex": 1}, start=20)).SerializeToString()
    DeadLetters(spool / "dead-letter", max_bytes=1 << 20).put(Record(1, 999, 4, refused), refused, "refused by the store")

    forgot = subprocess.run([DRIFTLINE, "db", "forget", "--tenant", "acme", "--json", "--store", f"chdb://{workdir / 'store'}"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    assert forgot.returncode == 0, forgot.stderr
    assert json.loads(forgot.stdout) == {"otel_traces": 4, "otel_traces_trace_id_ts": 2, "otel_logs": 0, "llm_calls": 2,
                                         "llm_scores": 0, "spool": 8, "dead letters": 2}  # fmt: skip
    # spool: the 4 acme spans waiting, and the 4 already stored (their segment stays until a newer one starts)
    entry = DeadLetters(spool / "dead-letter", max_bytes=1 << 20).entries()[0]
    assert entry.items == 2 and b"acme" not in entry.payload()
    fault.unlink()
    restarted = serve(workdir=workdir)
    assert restarted.wait_rows("otel_traces", 6) == 6
    wait_for(lambda: restarted.health()["backlog_items"] == 0, what="the spool drained")
    assert restarted.rows("SELECT DISTINCT tenant FROM llm_calls") == [("globex",)] and restarted.count("otel_traces") == 6


def test_forget_refuses_while_serve_holds_the_store(serve: Any) -> None:
    server = serve()
    forgot = subprocess.run([DRIFTLINE, "db", "forget", "--tenant", "acme", "--store", server.store], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert forgot.returncode == 3 and "stop it first" in forgot.stderr


def test_forget_refuses_a_spool_another_process_holds(tmp_path: Path) -> None:
    from driftline.collector.receiver._spool import locked

    spool = tmp_path / "spool"
    spool.mkdir()
    with locked(spool):
        forgot = subprocess.run([DRIFTLINE, "db", "forget", "--tenant", "acme", "--spool-dir", str(spool), "--store", f"chdb://{tmp_path / 'store'}"],
                                capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert forgot.returncode == 3 and "is in use by another process" in forgot.stderr and "Traceback" not in forgot.stderr


def test_a_fresh_store_forgets_nothing(store_url: str) -> None:
    with connect(store_url) as store:
        migrate(store)
    result = db("forget", "--tenant", "nobody", "--json", "--store", store_url)
    assert result.exit_code == 0 and set(json.loads(result.output).values()) == {0}
