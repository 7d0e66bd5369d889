"""Each GenAI convention in use lands in the same typed llm_calls columns.

Every span here is built with the real OpenTelemetry SDK carrying exactly the attribute set that
instrumentation writes (OTel GenAI current and legacy, OpenInference, OpenLLMetry, OpenLIT), is
exported by the real StoreSpanExporter into otel_traces, and is read back from llm_calls, which
the materialized view filled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from driftline.collector import Store, StoreSpanExporter
from driftline.collector.store._prices import load_prices

T0 = 1_790_000_000_000_000_000
"""A fixed span start (ns since the epoch), so durations and TTFT are exact."""

CALL_COLUMNS = (
    "operation", "provider", "request_model", "response_model", "system_fingerprint", "response_id",
    "conversation_id", "server_address", "prompt_name", "prompt_version", "input_tokens", "output_tokens",
    "total_tokens", "cached_tokens", "reasoning_tokens", "duration_s", "ttft_s", "time_per_output_token_s",
    "stream", "finish_reason", "cancelled", "status", "error_type", "http_status", "rate_limited", "cost_usd",
    "service", "service_version", "span_name",
)  # fmt: skip


def emit(
    provider: TracerProvider,
    name: str,
    attributes: Mapping[str, Any],
    *,
    duration_s: float = 1.5,
    events: Sequence[tuple[str, float]] = (),
    error: str | None = None,
    scope: str = "third.party.instrumentation",
) -> str:
    """End one span made by `scope`'s tracer; returns its span id as stored (16 hex digits)."""
    span = provider.get_tracer(scope).start_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes), start_time=T0)
    for event_name, offset_s in events:
        span.add_event(event_name, timestamp=T0 + int(offset_s * 1e9))
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=T0 + int(duration_s * 1e9))
    return format(span.get_span_context().span_id, "016x")


def call_row(store: Store, span_id: str) -> dict[str, Any]:
    """The llm_calls row of one span; fails unless there is exactly one."""
    rows = store.rows(f"SELECT {', '.join(CALL_COLUMNS)} FROM llm_calls WHERE span_id = {{s:String}}", {"s": span_id})
    assert len(rows) == 1, f"expected one llm_calls row for span {span_id}, got {len(rows)}"
    return dict(zip(CALL_COLUMNS, rows[0]))


def test_otel_genai_current_fills_every_typed_column(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ("length", "stop"), "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 164, "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.usage.reasoning.output_tokens": 64, "openai.response.system_fingerprint": "fp_abc",
        "gen_ai.conversation.id": "conv-7", "server.address": "api.openai.com", "gen_ai.request.stream": True,
        "gen_ai.response.time_to_first_chunk": 0.42, "gen_ai.prompt.name": "answer", "gen_ai.prompt.version": "v8",
    })  # fmt: skip
    row = call_row(store, span_id)
    assert row == {
        "operation": "chat", "provider": "openai", "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_abc", "response_id": "chatcmpl-1", "conversation_id": "conv-7",
        "server_address": "api.openai.com", "prompt_name": "answer", "prompt_version": "v8",
        "input_tokens": 812, "output_tokens": 164, "total_tokens": 976, "cached_tokens": 512, "reasoning_tokens": 64,
        "duration_s": 1.5, "ttft_s": 0.42, "time_per_output_token_s": None, "stream": True, "finish_reason": "length",
        "cancelled": False, "status": "Unset", "error_type": None, "http_status": None, "rate_limited": False,
        "cost_usd": None, "service": "test-svc", "service_version": "9.9.9", "span_name": "chat gpt-4o",
    }  # fmt: skip


def test_otel_genai_legacy_names_normalise_to_current_columns(store: Store, traced: TracerProvider) -> None:
    # opentelemetry-instrumentation-openai-v2 before the gen_ai.provider.name / usage renames.
    span_id = emit(traced, "chat gpt-4o-mini", {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.prompt_tokens": 40,
        "gen_ai.usage.completion_tokens": 9, "gen_ai.openai.response.system_fingerprint": "fp_legacy",
        "gen_ai.response.finish_reasons": ("stop",),
    })  # fmt: skip
    row = call_row(store, span_id)
    assert (row["provider"], row["request_model"], row["response_model"]) == ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (40, 9, 49)
    assert row["system_fingerprint"] == "fp_legacy"
    assert row["finish_reason"] == "stop"


def test_openinference_llm_span_normalises(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06", "llm.provider": "openai",
        "llm.system": "openai", "llm.token_count.prompt": 300, "llm.token_count.completion": 45,
        "llm.token_count.total": 345, "llm.token_count.prompt_details.cache_read": 128,
        "llm.token_count.completion_details.reasoning": 12, "llm.prompt_template.version": "v3",
        "llm.finish_reason": "stop",
    }, events=[("First Token Stream Event", 0.25)], scope="openinference.instrumentation.openai")  # fmt: skip
    row = call_row(store, span_id)
    assert row["operation"] == "chat"
    assert (row["provider"], row["request_model"], row["response_model"]) == ("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (300, 45, 345)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (128, 12)
    assert row["prompt_version"] == "v3"
    assert row["finish_reason"] == "stop"
    assert row["ttft_s"] == pytest.approx(0.25)
    assert row["cancelled"] is False


def test_openllmetry_span_normalises(store: Store, traced: TracerProvider) -> None:
    # Traceloop's OpenLLMetry: capitalised gen_ai.system, llm.request.type, total only, tool_call.
    span_id = emit(traced, "openai.chat", {
        "gen_ai.system": "OpenAI", "llm.request.type": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-05-13", "gen_ai.usage.prompt_tokens": 200,
        "llm.usage.total_tokens": 260, "gen_ai.usage.cache_read.input_tokens": 64, "llm.is_streaming": True,
        "gen_ai.completion.0.finish_reason": "tool_call",
    }, scope="opentelemetry.instrumentation.openai.v1")  # fmt: skip
    row = call_row(store, span_id)
    assert (row["operation"], row["provider"]) == ("chat", "openai")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"], row["cached_tokens"]) == (200, 60, 260, 64)
    assert row["stream"] is True
    assert row["finish_reason"] == "tool_calls"
    assert row["cancelled"] is False


def test_openlit_span_normalises(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "chat gpt-4o", {
        "gen_ai.system": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 150,
        "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cost": 0.00123, "gen_ai.server.time_to_first_token": 0.31,
        "gen_ai.server.time_per_output_token": 0.02, "gen_ai.request.is_stream": True,
        "gen_ai.response.finish_reasons": ("stop",),
    }, scope="openlit.otel.tracing")  # fmt: skip
    row = call_row(store, span_id)
    assert row["cost_usd"] == pytest.approx(0.00123)
    assert row["ttft_s"] == pytest.approx(0.31)
    assert row["time_per_output_token_s"] == pytest.approx(0.02)
    assert (row["stream"], row["cancelled"], row["finish_reason"]) == (True, False, "stop")


def test_python_class_repr_error_type_is_cleaned_and_counts_as_rate_limited(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "error.type": "<class 'openai.RateLimitError'>",
    }, error="Error code: 429 - {'error': ...}")  # fmt: skip
    row = call_row(store, span_id)
    assert (row["status"], row["error_type"], row["rate_limited"]) == ("Error", "openai.RateLimitError", True)
    assert row["http_status"] == 429  # the status the provider SDK's message names


def test_http_429_counts_as_rate_limited(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "chat claude", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude",
        "error.type": "429", "http.response.status_code": 429,
    }, error="overloaded")  # fmt: skip
    row = call_row(store, span_id)
    assert (row["http_status"], row["rate_limited"], row["error_type"]) == (429, True, "429")


@pytest.mark.parametrize("stream_attribute", ["gen_ai.request.stream", "llm.is_streaming", "gen_ai.request.is_stream"])
def test_stream_ended_without_finish_reason_counts_as_cancelled(store: Store, traced: TracerProvider, stream_attribute: str) -> None:
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", stream_attribute: True}
    cut_off = emit(traced, "chat gpt-4o", base)
    finished = emit(traced, "chat gpt-4o", {**base, "gen_ai.response.finish_reasons": ("stop",)})
    failed = emit(traced, "chat gpt-4o", base, error="connection reset")
    not_streamed = emit(traced, "chat gpt-4o", {**base, stream_attribute: False})
    assert call_row(store, cut_off)["cancelled"] is True
    assert call_row(store, finished)["cancelled"] is False
    assert call_row(store, failed)["cancelled"] is False
    assert call_row(store, not_streamed)["cancelled"] is False


def test_interrupted_end_reason_counts_as_cancelled(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.agent.invocation.end_reason": "interrupted", "gen_ai.response.finish_reasons": ("stop",),
    })  # fmt: skip
    assert call_row(store, span_id)["cancelled"] is True


def test_missing_values_stay_null_never_zero(store: Store, traced: TracerProvider) -> None:
    span_id = emit(traced, "embeddings text-embedding-3-small", {"gen_ai.operation.name": "embeddings"})
    row = call_row(store, span_id)
    present = {"operation": "embeddings", "duration_s": 1.5, "cancelled": False, "status": "Unset", "rate_limited": False,
               "service": "test-svc", "service_version": "9.9.9", "span_name": "embeddings text-embedding-3-small"}  # fmt: skip
    assert {k: v for k, v in row.items() if k not in present} == {k: None for k in CALL_COLUMNS if k not in present}
    assert {k: row[k] for k in present} == present


def test_non_genai_spans_stay_out_of_llm_calls(store: Store, traced: TracerProvider) -> None:
    emit(traced, "GET /health", {"http.request.method": "GET", "http.response.status_code": 200})
    emit(traced, "retrieve", {"openinference.span.kind": "RETRIEVER"})
    assert store.rows("SELECT count() FROM otel_traces")[0][0] == 2
    assert store.rows("SELECT count() FROM llm_calls")[0][0] == 0


def test_attribute_values_are_stored_as_the_collector_stringifies_them(store: Store, traced: TracerProvider) -> None:
    # pcommon AsString: booleans lower-case, floats in plain decimal (shortest round-trip digits), arrays as JSON.
    values = {"b": True, "i": 42, "f": 0.1, "tiny": 1e-05, "big": 1.5e20, "s": "x", "strs": ("a", "é"), "ints": (1, 2), "bools": (True, False)}
    span_id = emit(traced, "GET /", values)
    (stored,) = store.rows("SELECT SpanAttributes FROM otel_traces WHERE SpanId = {s:String}", {"s": span_id})[0]
    assert stored == {"b": "true", "i": "42", "f": "0.1", "tiny": "0.00001", "big": "150000000000000000000", "s": "x",
                      "strs": '["a","é"]', "ints": "[1,2]", "bools": "[true,false]"}  # fmt: skip


@pytest.mark.parametrize("key", ["deployment.environment.name", "deployment.environment"])
def test_environment_comes_from_the_current_or_legacy_resource_attribute(store: Store, key: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "env-svc", key: "staging"}))
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    span_id = emit(provider, "chat gpt-4o", {"gen_ai.operation.name": "chat"})
    assert store.rows("SELECT service, environment FROM llm_calls WHERE span_id = {s:String}", {"s": span_id}) == [("env-svc", "staging")]


def test_proposed_cost_attributes_keep_their_currency_and_source(store: Store, traced: TracerProvider) -> None:
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    usd = emit(traced, "chat gpt-4o", {**base, "gen_ai.usage.cost.amount": 0.25, "gen_ai.usage.cost.currency": "USD",
                                       "gen_ai.usage.cost.source": "provider"})  # fmt: skip
    eur = emit(traced, "chat gpt-4o", {**base, "gen_ai.usage.cost.amount": 0.5, "gen_ai.usage.cost.currency": "EUR"})
    columns = "cost_usd, cost_amount, cost_currency, cost_source, cost_computed"
    read = f"SELECT {columns} FROM llm_calls WHERE span_id = {{s:String}}"
    assert store.rows(read, {"s": usd}) == [(0.25, 0.25, "USD", "provider", False)]
    assert store.rows(read, {"s": eur}) == [(None, 0.5, "EUR", "reported", False)]  # not in cost_usd: it is no dollar amount


def test_openlit_cost_is_marked_computed_and_its_zero_is_no_cost(store: Store, traced: TracerProvider) -> None:
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}  # fmt: skip
    priced = emit(traced, "chat gpt-4o", {**base, "gen_ai.usage.cost": 0.002}, scope="openlit.instrumentation.openai")
    unpriced = emit(traced, "chat gpt-4o", {**base, "gen_ai.usage.cost": 0}, scope="openlit.instrumentation.openai")
    read = "SELECT cost_usd, cost_source, cost_computed FROM llm_calls WHERE span_id = {s:String}"
    assert store.rows(read, {"s": priced}) == [(0.002, "openlit", True)]
    assert store.rows(read, {"s": unpriced}) == [(None, None, False)]


@pytest.mark.parametrize("name", ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens",
                                  "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.cache_write_input_tokens",
                                  "llm.token_count.prompt_details.cache_write"])  # fmt: skip
def test_cache_write_tokens_come_from_every_name_in_use(store: Store, traced: TracerProvider, name: str) -> None:
    span_id = emit(traced, "chat claude", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", name: 2048})
    assert store.rows("SELECT cache_write_tokens FROM llm_calls WHERE span_id = {s:String}", {"s": span_id}) == [(2048,)]


def test_openinference_metadata_gives_index_and_confidence(store: Store, traced: TracerProvider) -> None:
    metadata = '{"driftline.retrieval.index.name": "kb", "driftline.retrieval.index.version": "v42", "driftline.input.confidence.mean": 0.71}'
    span_id = emit(traced, "ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06", "metadata": metadata,
                                              "llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}'})  # fmt: skip
    row = store.rows("SELECT index_name, index_version, confidence_mean, request_model, stream FROM llm_calls WHERE span_id = {s:String}", {"s": span_id})
    assert row == [("kb", "v42", 0.71, "gpt-4o", True)]


def test_exception_event_gives_error_type_and_http_status(store: Store, traced: TracerProvider) -> None:
    span = traced.get_tracer("openinference.instrumentation.openai").start_span(
        "ChatCompletion", attributes={"openinference.span.kind": "LLM", "llm.invocation_parameters": '{"model": "gpt-4o"}'}
    )
    span.add_event("exception", {"exception.type": "openai.RateLimitError", "exception.message": "Error code: 429 - Rate limit reached"})
    span.set_status(Status(StatusCode.ERROR, "RateLimitError"))
    span.end()
    span_id = format(span.get_span_context().span_id, "016x")
    row = store.rows("SELECT error_type, http_status, rate_limited FROM llm_calls WHERE span_id = {s:String}", {"s": span_id})
    assert row == [("openai.RateLimitError", 429, True)]



def test_a_call_without_cost_is_priced_by_its_answering_model_else_its_requested_one(store: Store, traced: TracerProvider) -> None:
    load_prices(store)
    base = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    answered = emit(traced, "chat", {**base, "gen_ai.request.model": "my-alias", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"})
    requested = emit(traced, "chat", {**base, "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "unknown-snapshot"})
    read = "SELECT cost_usd, cost_source, cost_computed FROM llm_calls WHERE span_id = {s:String}"
    usd = (1000 * 0.15 + 100 * 0.60) / 1e6  # genai-prices 0.2.3: gpt-4o-mini, $ per million tokens
    for span_id in (answered, requested):
        ((cost, source, computed),) = store.rows(read, {"s": span_id})
        assert (cost, source, computed) == (pytest.approx(usd), "genai-prices 0.2.3", True)
