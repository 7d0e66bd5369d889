"""The hooks, end to end: hook -> span -> otel_traces -> typed column, for every attribute.

Round trips use the `traced` provider (ReleaseContextProcessor + the real StoreSpanExporter into
a fresh store); the processor and instrument() semantics are checked on spans captured in memory.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from driftline.collector import (
    ConfigError,
    ReleaseContextProcessor,
    Store,
    annotate,
    connect,
    current_release,
    instrument,
    llm_call,
    record_confidence,
    record_score,
    release,
    tag_retrieval,
)
from driftline.collector.store._prices import load_prices

T0 = 1_790_000_000_000_000_000
MS = 1_000_000


def ticks(*offsets_ms: float) -> Iterator[int]:
    """A deterministic clock: each call returns the next moment, T0 + offset."""
    return iter(T0 + int(o * MS) for o in offsets_ms)


def clock(*offsets_ms: float) -> Any:
    return ticks(*offsets_ms).__next__


def only_call(store: Store, *columns: str) -> dict[str, Any]:
    """The single llm_calls row, as a dict of the columns asked for (names from this module)."""
    rows = store.rows(f"SELECT {', '.join(columns)} FROM llm_calls")
    assert len(rows) == 1, f"expected one llm_calls row, got {len(rows)}"
    return dict(zip(columns, rows[0]))


def span_ids(call_span: Any) -> tuple[str, str]:
    ctx = call_span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# --- llm_call and response --------------------------------------------------------------------


def test_llm_call_round_trips_every_request_and_response_attribute(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", operation="chat", server_address="api.openai.com",
                  conversation_id="conv-1", clock=clock(0, 1200), tracer_provider=traced) as call:  # fmt: skip
        call.response(model="gpt-4o-2024-08-06", response_id="resp-1", fingerprint="fp_1", finish_reason="stop",
                      input_tokens=812, output_tokens=164, cached_tokens=512, reasoning_tokens=32, cost=0.0037)  # fmt: skip
        call.validation("schema_error")
    row = only_call(store, "span_name", "operation", "provider", "request_model", "server_address", "conversation_id",
                    "response_model", "response_id", "system_fingerprint", "finish_reason", "input_tokens",
                    "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "validation",
                    "duration_s", "stream", "cancelled", "status", "service", "service_version")  # fmt: skip
    assert row == {
        "span_name": "chat gpt-4o", "operation": "chat", "provider": "openai", "request_model": "gpt-4o",
        "server_address": "api.openai.com", "conversation_id": "conv-1", "response_model": "gpt-4o-2024-08-06",
        "response_id": "resp-1", "system_fingerprint": "fp_1", "finish_reason": "stop", "input_tokens": 812,
        "output_tokens": 164, "total_tokens": 976, "cached_tokens": 512, "reasoning_tokens": 32, "cost_usd": 0.0037,
        "validation": "schema_error", "duration_s": 1.2, "stream": False, "cancelled": False, "status": "Unset",
        "service": "test-svc", "service_version": "9.9.9",
    }  # fmt: skip


def test_llm_call_writes_the_latest_conventions_cache_writes_and_the_apps_cost(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="anthropic", model="claude-sonnet-4-5", tracer_provider=traced) as call:
        call.response(input_tokens=3000, cached_tokens=1000, cache_write_tokens=2000, output_tokens=50, cost=0.0123)
    row = only_call(store, "cached_tokens", "cache_write_tokens", "cost_usd", "cost_amount", "cost_currency", "cost_source", "cost_computed")
    assert row == {"cached_tokens": 1000, "cache_write_tokens": 2000, "cost_usd": 0.0123, "cost_amount": 0.0123, "cost_currency": "USD",
                   "cost_source": "app", "cost_computed": False}  # fmt: skip


def test_a_call_the_app_did_not_price_is_priced_from_the_stores_price_table_and_marked_computed(store: Store, traced: TracerProvider) -> None:
    load_prices(store)
    with llm_call(provider="openai", model="gpt-4o-mini", tracer_provider=traced) as call:
        call.response(model="gpt-4o-mini-2024-07-18", input_tokens=1000, cached_tokens=400, output_tokens=100)
    row = only_call(store, "cost_usd", "cost_currency", "cost_source", "cost_computed")
    # genai-prices 0.2.3 for gpt-4o-mini: $0.15 per million input tokens, cached ones at their own $0.075, output $0.60.
    assert row["cost_usd"] == pytest.approx((600 * 0.15 + 400 * 0.075 + 100 * 0.60) / 1e6)
    assert (row["cost_currency"], row["cost_source"], row["cost_computed"]) == ("USD", "genai-prices 0.2.3", True)


def test_instrument_on_an_embedded_store_loads_the_price_table_so_its_calls_get_a_computed_cost(store_url: str) -> None:
    handle = instrument("priced-app", store=store_url)  # a new store: no `db migrate` loaded prices into it
    with llm_call(provider="openai", model="gpt-4o-mini") as call:
        call.response(model="gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=100)
    handle.shutdown()
    with connect(store_url) as store:
        row = only_call(store, "cost_usd", "cost_source", "cost_computed")
    assert row == {"cost_usd": pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6), "cost_source": "genai-prices 0.2.3", "cost_computed": True}


def test_the_cancellation_tax_is_priced_at_the_output_rate(store: Store, traced: TracerProvider) -> None:
    load_prices(store)
    with llm_call(provider="openai", model="gpt-4o-mini", stream=True, tracer_provider=traced) as call:
        for chunk in call.stream(range(100)):
            if chunk == 9:
                break
        call.response(input_tokens=200, output_tokens=40)
    row = only_call(store, "tokens_after_cancel", "cancellation_cost_usd", "cost_computed")
    assert row == {"tokens_after_cancel": 30, "cancellation_cost_usd": pytest.approx(30 * 0.60 / 1e6), "cost_computed": True}


def test_a_model_the_price_table_does_not_know_has_no_cost(store: Store, traced: TracerProvider) -> None:
    load_prices(store)
    with llm_call(provider="openai", model="in-house-finetune", tracer_provider=traced) as call:
        call.response(input_tokens=1000, output_tokens=100)
    assert only_call(store, "cost_usd", "cost_source", "cost_computed") == {"cost_usd": None, "cost_source": None, "cost_computed": False}


def test_llm_call_extra_attributes_reach_the_span(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", attributes={"driftline.route": "/extra"}, tracer_provider=traced):
        pass
    assert only_call(store, "route")["route"] == "/extra"


def test_llm_call_exception_records_error_type_and_http_status_and_propagates(store: Store, traced: TracerProvider) -> None:
    class RateLimitError(Exception):
        status_code = 429

    with pytest.raises(RateLimitError):
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            raise RateLimitError("slow down")
    row = only_call(store, "status", "error_type", "http_status", "rate_limited")
    assert row == {"status": "Error", "error_type": f"{__name__}.{RateLimitError.__qualname__}", "http_status": 429, "rate_limited": True}


def test_llm_call_failed_records_a_handled_provider_error(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="anthropic", model="claude", tracer_provider=traced) as call:
        call.failed(error_type="overloaded_error", http_status=529, message="overloaded")
    row = only_call(store, "status", "error_type", "http_status", "rate_limited")
    assert row == {"status": "Error", "error_type": "overloaded_error", "http_status": 529, "rate_limited": False}


def test_llm_call_validation_rejects_unknown_outcome(traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced) as call:
        with pytest.raises(ValueError, match="parse_error"):
            call.validation("kinda_ok")


# --- stream recorder --------------------------------------------------------------------------


def test_stream_records_ttft_time_per_output_token_and_longest_stall(store: Store, traced: TracerProvider) -> None:
    # start 0; chunks at 300, 350, 900 (a 550 ms stall), 1000; end 1100.
    with llm_call(provider="openai", model="gpt-4o", stream=True, clock=clock(0, 300, 350, 900, 1000, 1100),
                  tracer_provider=traced) as call:  # fmt: skip
        received = list(call.stream(["a", "b", "c", "d"]))
        call.response(finish_reason="stop", output_tokens=4)
    assert received == ["a", "b", "c", "d"]
    row = only_call(store, "stream", "ttft_s", "time_per_output_token_s", "longest_stall_s", "tokens_delivered",
                    "cancelled", "tokens_after_cancel", "duration_s")  # fmt: skip
    assert row == {"stream": True, "ttft_s": 0.3, "time_per_output_token_s": pytest.approx(0.7 / 3), "longest_stall_s": 0.55,
                   "tokens_delivered": 4, "cancelled": False, "tokens_after_cancel": None, "duration_s": 1.1}  # fmt: skip


def test_stream_counts_tokens_per_chunk_with_the_tokens_callback(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
        for _ in call.stream(["ab", "cde"], tokens=len):
            pass
        call.response(finish_reason="stop")
    assert only_call(store, "tokens_delivered")["tokens_delivered"] == 5


def test_stream_stopped_early_counts_cancelled_and_tokens_billed_after(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
        for chunk in call.stream(range(100)):
            if chunk == 9:
                break
        call.response(output_tokens=40)
    row = only_call(store, "cancelled", "tokens_delivered", "tokens_after_cancel")
    assert row == {"cancelled": True, "tokens_delivered": 10, "tokens_after_cancel": 30}


def test_stream_left_unfinished_while_still_referenced_counts_cancelled(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
        chunks = call.stream(range(100))
        next(chunks)
        call.response(output_tokens=40, finish_reason="stop")
    row = only_call(store, "cancelled", "tokens_delivered", "tokens_after_cancel")
    assert row == {"cancelled": True, "tokens_delivered": 1, "tokens_after_cancel": 39}


def test_stream_consumed_to_the_end_without_finish_reason_is_not_cancelled(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
        list(call.stream(["a", "b"]))
    assert only_call(store, "cancelled", "tokens_delivered") == {"cancelled": False, "tokens_delivered": 2}


def test_stream_the_provider_broke_is_an_error_not_a_cancel(store: Store, traced: TracerProvider) -> None:
    def broken() -> Iterator[str]:
        yield "a"
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
            list(call.stream(broken()))
    row = only_call(store, "status", "error_type", "cancelled", "tokens_delivered")
    assert row == {"status": "Error", "error_type": "ConnectionResetError", "cancelled": False, "tokens_delivered": 1}


async def _chunks(*items: str) -> AsyncIterator[str]:
    for item in items:
        await asyncio.sleep(0)
        yield item


def test_astream_records_an_async_stream_like_a_sync_one(store: Store, traced: TracerProvider) -> None:
    async def call_model() -> list[str]:
        with llm_call(provider="openai", model="gpt-4o", stream=True, clock=clock(0, 250, 300, 700, 800), tracer_provider=traced) as call:
            received = [chunk async for chunk in call.astream(_chunks("a", "b", "c"))]
            call.response(finish_reason="stop", output_tokens=3)
        return received

    assert asyncio.run(call_model()) == ["a", "b", "c"]
    row = only_call(store, "ttft_s", "longest_stall_s", "time_per_output_token_s", "tokens_delivered", "cancelled", "duration_s")
    assert row == {"ttft_s": 0.25, "longest_stall_s": 0.4, "time_per_output_token_s": pytest.approx(0.225), "tokens_delivered": 3,
                   "cancelled": False, "duration_s": 0.8}  # fmt: skip


def test_astream_stopped_early_counts_cancelled(store: Store, traced: TracerProvider) -> None:
    async def call_model() -> None:
        with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
            async for chunk in call.astream(_chunks("a", "b", "c", "d")):
                if chunk == "b":
                    break
            call.response(output_tokens=4)

    asyncio.run(call_model())
    assert only_call(store, "cancelled", "tokens_delivered", "tokens_after_cancel") == {"cancelled": True, "tokens_delivered": 2, "tokens_after_cancel": 2}


def test_stream_cancel_marks_a_stream_the_user_left(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", stream=True, tracer_provider=traced) as call:
        list(call.stream(["a", "b"]))
        call.cancel()
    assert only_call(store, "cancelled")["cancelled"] is True


# --- release context, retrieval, confidence ---------------------------------------------------


def test_release_context_round_trips_every_field(store: Store, traced: TracerProvider) -> None:
    with release(prompt_name="answer", prompt_version="v8", index_name="kb", index_version="2026-11-20",
                 route="/chat/answer", tenant="acme"):  # fmt: skip
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            pass
    row = only_call(store, "prompt_name", "prompt_version", "index_name", "index_version", "route", "tenant")
    assert row == {"prompt_name": "answer", "prompt_version": "v8", "index_name": "kb", "index_version": "2026-11-20",
                   "route": "/chat/answer", "tenant": "acme"}  # fmt: skip


def test_release_nested_overrides_and_restores() -> None:
    with release(route="/a", tenant="t1"):
        with release(tenant="t2"):
            assert dict(current_release()) == {"driftline.route": "/a", "driftline.tenant": "t2"}
        assert dict(current_release()) == {"driftline.route": "/a", "driftline.tenant": "t1"}
    assert dict(current_release()) == {}


def test_tag_retrieval_round_trips_every_field(store: Store, traced: TracerProvider) -> None:
    with release(route="/r"):
        tag_retrieval(index_name="kb-docs", index_version="v41", documents=6, embedding_model="text-embedding-3-small")
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            pass
    row = only_call(store, "index_name", "index_version", "retrieved_documents", "embedding_model")
    assert row == {"index_name": "kb-docs", "index_version": "v41", "retrieved_documents": 6, "embedding_model": "text-embedding-3-small"}


def test_tag_retrieval_inside_the_call_stamps_the_current_genai_span(store: Store, traced: TracerProvider) -> None:
    with release():
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            tag_retrieval(index_name="kb", index_version="7")
    assert only_call(store, "index_name", "index_version") == {"index_name": "kb", "index_version": "7"}


def test_record_confidence_from_words_round_trips_summary(store: Store, traced: TracerProvider) -> None:
    words = [0.95, 0.4, 0.8, 0.55, 1.0]
    with release():
        record_confidence(words=words, threshold=0.6, engine="whisper-large-v3")
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            pass
    row = only_call(store, "confidence_mean", "confidence_min", "confidence_low_words", "confidence_engine")
    assert row == {"confidence_mean": pytest.approx(sum(words) / len(words)), "confidence_min": 0.4,
                   "confidence_low_words": 2, "confidence_engine": "whisper-large-v3"}  # fmt: skip


def test_record_confidence_accepts_summary_values(store: Store, traced: TracerProvider) -> None:
    with release():
        record_confidence(mean=0.71, minimum=0.2, low_words=3, engine="tesseract-5")
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced):
            pass
    row = only_call(store, "confidence_mean", "confidence_min", "confidence_low_words", "confidence_engine")
    assert row == {"confidence_mean": 0.71, "confidence_min": 0.2, "confidence_low_words": 3, "confidence_engine": "tesseract-5"}


@pytest.mark.parametrize("kwargs", [{"words": [0.5, 1.2]}, {"mean": -0.1}, {"minimum": 1.5}, {"words": []}])
def test_record_confidence_rejects_values_outside_zero_to_one(kwargs: dict[str, Any]) -> None:
    with release(), pytest.raises(ValueError, match="confidence"):
        record_confidence(**kwargs)
    assert dict(current_release()) == {}


# --- scores -----------------------------------------------------------------------------------


def test_record_score_in_the_call_files_it_under_that_span(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced) as call:
        record_score("faithfulness", value=0.82, label="pass", explanation="grounded in 3 sources")
    trace_id, span_id = span_ids(call.span)
    rows = store.rows("SELECT trace_id, span_id, service, evaluation, score, label, explanation FROM llm_scores")
    assert rows == [(trace_id, span_id, "test-svc", "faithfulness", 0.82, "pass", "grounded in 3 sources")]


def test_record_score_later_is_filed_under_the_judged_trace_and_span(store: Store, traced: TracerProvider) -> None:
    with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced) as call:
        pass
    trace_id, span_id = span_ids(call.span)
    record_score("thumbs", label="down", trace_id=trace_id, span_id=span_id, tracer_provider=traced)
    rows = store.rows("SELECT trace_id, span_id, evaluation, score, label FROM llm_scores")
    assert rows == [(trace_id, span_id, "thumbs", None, "down")]
    assert store.rows("SELECT count() FROM llm_calls")[0][0] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": 1.0}, "outside a recording span"),
        ({}, "value, a label"),
        ({"value": 1.0, "trace_id": "ab" * 16}, "both trace_id and span_id"),
        ({"value": 1.0, "trace_id": "xyz", "span_id": "ab" * 8}, "trace_id must be 32 hex"),
        ({"value": 1.0, "trace_id": "ab" * 16, "span_id": "0" * 16}, "span_id must be 16 hex"),
    ],
)
def test_record_score_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record_score("q", **kwargs)


# --- change annotations -----------------------------------------------------------------------


def test_annotate_round_trips_into_changes(store: Store, traced: TracerProvider) -> None:
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    annotate("index", "kb-docs", version="v42", description="rebuilt from the Nov crawl", author="ana", at=at, tracer_provider=traced)
    rows = store.rows("SELECT time, kind, target, version, description, author, service FROM changes")
    assert rows == [(at.replace(tzinfo=None), "index", "kb-docs", "v42", "rebuilt from the Nov crawl", "ana", "test-svc")]
    assert store.rows("SELECT count() FROM llm_calls")[0][0] == 0


def test_annotate_rejects_unknown_kind_and_empty_target() -> None:
    with pytest.raises(ValueError, match="change kind must be one of"):
        annotate("vibes", "x")
    with pytest.raises(ValueError, match="needs a target"):
        annotate("deploy", "")


# --- ReleaseContextProcessor on third-party spans ---------------------------------------------


@pytest.fixture
def captured() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(ReleaseContextProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


THIRD_PARTY_STARTS = {
    # instrumentation scope -> (span name, attributes it passes when starting the span)
    "opentelemetry.instrumentation.openai_v2": ("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}),
    "opentelemetry.instrumentation.openai.v1": ("openai.chat", {"gen_ai.system": "OpenAI", "llm.request.type": "chat"}),
    "openinference.instrumentation.openai": ("ChatCompletion", {"openinference.span.kind": "LLM"}),
    # OpenLIT starts `{operation} {model}` spans bare and sets every attribute after the response.
    "openlit.otel.tracing": ("chat gpt-4o", {}),
}


@pytest.mark.parametrize("scope", sorted(THIRD_PARTY_STARTS))
def test_release_context_is_stamped_on_third_party_genai_spans(captured: tuple[TracerProvider, InMemorySpanExporter], scope: str) -> None:
    provider, exporter = captured
    name, attributes = THIRD_PARTY_STARTS[scope]
    with release(prompt_version="v8", route="/chat", tenant="acme"):
        with provider.get_tracer(scope).start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
            pass
    (span,) = exporter.get_finished_spans()
    assert {k: span.attributes[k] for k in ("gen_ai.prompt.version", "driftline.route", "driftline.tenant")} == {
        "gen_ai.prompt.version": "v8", "driftline.route": "/chat", "driftline.tenant": "acme",
    }  # fmt: skip


def test_release_context_is_not_stamped_on_non_genai_spans(captured: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = captured
    with release(route="/chat", tenant="acme"):
        with provider.get_tracer("opentelemetry.instrumentation.requests").start_as_current_span("GET", attributes={"http.request.method": "GET"}):
            pass
        with provider.get_tracer("app").start_as_current_span("load user"):
            pass
    assert [dict(s.attributes or {}) for s in exporter.get_finished_spans()] == [{"http.request.method": "GET"}, {}]


def test_release_context_never_overwrites_what_the_span_already_says(captured: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = captured
    with release(prompt_version="v8", tenant="acme"):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.prompt.version": "v9-canary"}
        with provider.get_tracer("x").start_as_current_span("chat m", attributes=attrs):
            pass
    (span,) = exporter.get_finished_spans()
    assert (span.attributes["gen_ai.prompt.version"], span.attributes["driftline.tenant"]) == ("v9-canary", "acme")


def _tenants(spans: tuple[ReadableSpan, ...]) -> dict[str, Any]:
    return {s.name: (s.attributes or {}).get("driftline.tenant") for s in spans}


def test_release_context_follows_each_asyncio_task(captured: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = captured
    tracer = provider.get_tracer("x")

    async def handle(tenant: str) -> None:
        with release(tenant=tenant):
            await asyncio.sleep(0)
            child = asyncio.create_task(call(f"child-of-{tenant}"))
            await call(f"chat {tenant}")
            await child

    async def call(name: str) -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span(name, attributes={"gen_ai.operation.name": "chat"}):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"), call("chat outside"))

    asyncio.run(main())
    assert _tenants(exporter.get_finished_spans()) == {"chat a": "a", "chat b": "b", "child-of-a": "a", "child-of-b": "b", "chat outside": None}


def test_release_decorator_applies_to_sync_and_async_functions(captured: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = captured
    tracer = provider.get_tracer("x")

    @release(tenant="sync-tenant")
    def sync_handler() -> None:
        with tracer.start_as_current_span("chat sync", attributes={"gen_ai.operation.name": "chat"}):
            pass

    @release(tenant="async-tenant")
    async def async_handler() -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span("chat async", attributes={"gen_ai.operation.name": "chat"}):
            pass

    sync_handler()
    sync_handler()
    asyncio.run(async_handler())
    assert _tenants(exporter.get_finished_spans()) == {"chat sync": "sync-tenant", "chat async": "async-tenant"}
    assert len(exporter.get_finished_spans()) == 3
    assert dict(current_release()) == {}


# --- instrument() -----------------------------------------------------------------------------


def test_instrument_joins_an_existing_sdk_provider_instead_of_replacing_it() -> None:
    app_exporter, driftline_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    trace.set_tracer_provider(app_provider)

    handle = instrument("ignored-name", exporter=driftline_exporter)
    with release(tenant="acme"):
        with llm_call(provider="openai", model="gpt-4o"):
            pass
    handle.force_flush()

    assert trace.get_tracer_provider() is app_provider
    assert (handle.tracer_provider, handle.created_provider) == (app_provider, False)
    (app_span,) = app_exporter.get_finished_spans()
    (ours,) = driftline_exporter.get_finished_spans()
    assert app_span.context.span_id == ours.context.span_id
    assert app_span.attributes["driftline.tenant"] == "acme"


def test_instrument_creates_the_global_provider_when_none_is_set() -> None:
    exporter = InMemorySpanExporter()
    handle = instrument("support-bot", service_version="1.4.2", environment="prod", exporter=exporter)
    with llm_call(provider="openai", model="gpt-4o"):
        pass
    handle.force_flush()
    assert trace.get_tracer_provider() is handle.tracer_provider and handle.created_provider
    (span,) = exporter.get_finished_spans()
    resource = dict(span.resource.attributes)
    assert (resource["service.name"], resource["service.version"], resource["deployment.environment.name"]) == ("support-bot", "1.4.2", "prod")


def test_instrument_rejects_two_destinations_and_unknown_protocol() -> None:
    with pytest.raises(ConfigError, match="not several"):
        instrument("x", store="chdb:///tmp/never", endpoint="http://127.0.0.1:4318")
    with pytest.raises(ConfigError, match="protocol"):
        instrument("x", endpoint="http://127.0.0.1:4318", protocol="carrier-pigeon")


# --- process exit flushes ---------------------------------------------------------------------


def _run(code: str, env_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "OTEL_"))}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, timeout=120, cwd=env_dir, env=env)


@pytest.mark.slow
def test_process_exit_flushes_spans_to_the_embedded_store(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'store'}"
    writer = _run(f"""
        from driftline.collector import instrument, llm_call, release
        instrument("exit-app", store={url!r})
        with release(tenant="acme"):
            for i in range(25):
                with llm_call(provider="openai", model="gpt-4o") as call:
                    call.response(output_tokens=i)
        # no shutdown(), no force_flush(): the interpreter exits with spans still queued
    """, tmp_path)  # fmt: skip
    assert writer.returncode == 0, writer.stderr
    reader = _run(f"""
        from driftline.collector import connect
        with connect({url!r}) as store:
            print(store.rows("SELECT count(), countIf(tenant = 'acme') FROM llm_calls WHERE service = 'exit-app'")[0])
    """, tmp_path)  # fmt: skip
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "(25, 25)"


def test_annotate_at_a_past_moment_keeps_that_time(store: Store, traced: TracerProvider) -> None:
    at = datetime.now(UTC) - timedelta(minutes=15)
    annotate("deploy", "support-bot", version="1.4.3", at=at, tracer_provider=traced)
    (when,) = store.rows("SELECT time FROM changes")[0]
    assert abs(when.replace(tzinfo=UTC) - at) < timedelta(microseconds=1)


class _OtlpSink(http.server.BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP protobuf posts and hands each decoded request to the test's queue."""

    received: queue.Queue[tuple[str, ExportTraceServiceRequest]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put((self.path, ExportTraceServiceRequest.FromString(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_instrument_endpoint_sends_spans_over_otlp_http() -> None:
    received: queue.Queue[tuple[str, ExportTraceServiceRequest]] = queue.Queue()
    handler = type("Sink", (_OtlpSink,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        handle = instrument("otlp-app", endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        with release(tenant="acme"):
            with llm_call(provider="openai", model="gpt-4o"):
                pass
        assert handle.force_flush()
        path, request = received.get(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert path == "/v1/traces"
    (resource_spans,) = request.resource_spans
    (span,) = resource_spans.scope_spans[0].spans
    attributes = {kv.key: kv.value.string_value for kv in span.attributes}
    assert (span.name, attributes["gen_ai.provider.name"], attributes["driftline.tenant"]) == ("chat gpt-4o", "openai", "acme")
