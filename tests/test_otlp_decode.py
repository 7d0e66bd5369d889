"""The OTLP decoders, property-tested: any bytes get a clean verdict; valid requests decode to the
same rows the direct exporter writes; the documented rules for hostile values hold."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from driftline.collector.receiver._http import TooLarge, decode_content
from driftline.collector.receiver._otlp_decode import (
    BadPayload,
    count_items,
    logs_to_columns,
    parse_request,
    traces_to_columns,
)
from driftline.collector.receiver._otlp_sql import insert_file, length_delimited, write_schema
from driftline.collector.store._spans import attribute_string, spans_to_columns
from driftline.collector.store._store import Store

REQUESTS = [ExportTraceServiceRequest, ExportLogsServiceRequest]

scalars = st.one_of(st.text(max_size=30), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=10))  # fmt: skip
attribute_values = st.one_of(scalars, st.lists(st.text(max_size=5), max_size=4), st.lists(st.integers(-5, 5), max_size=4))
attributes = st.dictionaries(st.text(min_size=1, max_size=12), attribute_values, max_size=6)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=400), cls=st.sampled_from(REQUESTS))
def test_any_bytes_parse_or_give_a_reason(body: bytes, cls: type) -> None:
    try:
        message, payload = parse_request(body, cls, json_body=False)
        count_items(message)  # the verdict's second half: ids and times the store can keep
    except BadPayload as exc:
        assert str(exc)
        return
    assert cls.FromString(payload) == message  # what gets spooled parses again to the same request


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId",
       "resourceLogs", "scopeLogs", "logRecords", "body", "attributes", "name", "x"]), inner, max_size=3), max_leaves=20).map(json.dumps)),
       cls=st.sampled_from(REQUESTS))  # fmt: skip
def test_any_json_parses_or_gives_a_reason(text: str, cls: type) -> None:
    try:
        message, _ = parse_request(text.encode("utf-8", "surrogatepass"), cls, json_body=True)
        count_items(message)
    except BadPayload as exc:
        assert str(exc)


@settings(max_examples=200)
@given(body=st.binary(max_size=2000), encoding=st.sampled_from(["gzip", "deflate", "", "identity"]))
def test_content_decoding_never_exceeds_its_limit(body: bytes, encoding: str) -> None:
    for data in (body, gzip.compress(body), zlib.compress(body)):
        try:
            out = decode_content(data, encoding, 1000)
        except (BadPayload, TooLarge):
            continue
        assert len(out) <= 1000


def test_a_decompression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\x00" * (100 << 20))
    with pytest.raises(TooLarge):
        decode_content(bomb, "gzip", 1 << 20)


def sdk_spans(attrs: dict, events: int = 1, links: int = 1) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "deploy": "blue"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope", "1.2")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        link = [Link(parent.get_span_context(), {"why": "retry", "n": 2})] * links
        with tracer.start_as_current_span("chat", kind=SpanKind.CLIENT, links=link, attributes=attrs) as span:
            for n in range(events):
                span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.score.value": n / 3})
            span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


@settings(max_examples=150, deadline=None)
@given(attrs=attributes, events=st.integers(0, 2), links=st.integers(0, 1))
def test_received_spans_decode_to_the_rows_the_direct_exporter_writes(attrs: dict, events: int, links: int) -> None:
    spans = sdk_spans(attrs, events, links)
    _, payload = parse_request(encode_spans(spans).SerializeToString(), ExportTraceServiceRequest, json_body=False)
    received = traces_to_columns([payload])
    assert received.rows == len(spans) and received.truncated == 0
    assert received.data == spans_to_columns(spans)


def _plain(value: object) -> bool:
    """Values the engine's decoder must handle itself (everything else may go back to the Python one)."""
    if isinstance(value, float):
        return value == 0 or 1e-3 <= abs(value) < 1e15
    if isinstance(value, list):
        return all(isinstance(v, int) or not any(c in v for c in '"\\') and all(c >= " " for c in v) for v in value)
    return True


def _stored_rows(store: Store) -> list[tuple]:
    return store.rows("SELECT * EXCEPT (ResourceAttributeItems, SpanAttributeItems) FROM otel_traces ORDER BY SpanId")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attrs=attributes, events=st.integers(0, 2), links=st.integers(0, 1), limit=st.sampled_from([8, 65_536]))
def test_the_engine_decodes_spans_to_the_rows_the_python_decoder_writes(store: Store, tmp_path: Path, attrs: dict, events: int,
                                                                       links: int, limit: int) -> None:  # fmt: skip
    """The embedded store's path (serve hands raw requests to ClickHouse's Protobuf format) against traces_to_columns."""
    _, payload = parse_request(encode_spans(sdk_spans(attrs, events, links)).SerializeToString(), ExportTraceServiceRequest, json_body=False)
    group = tmp_path / "group.pb"
    length_delimited([payload, payload], group)
    store.command("TRUNCATE TABLE otel_traces")
    by_engine = insert_file(store, group, schema=write_schema(tmp_path), limit=limit, settings={})
    event("decoded by the engine" if by_engine else "handed to the Python decoder")
    if not by_engine:
        assert limit == 8 or not all(map(_plain, attrs.values())), "only exotic or possibly cut values go to Python"
        assert _stored_rows(store) == []
        return
    by_engine = _stored_rows(store)
    store.command("TRUNCATE TABLE otel_traces")
    cols = traces_to_columns([payload, payload], limit=limit)
    store.insert(cols.table, cols.data, cols.names)
    assert cols.truncated == 0 and by_engine == _stored_rows(store)


def test_engine_inserted_spans_are_found_by_trace_id_before_and_after_their_parts_merge(store: Store, tmp_path: Path) -> None:
    """insert_file leaves skip indexes to merges: lookups must not depend on them, and merges must build them."""
    schema, group = write_schema(tmp_path), tmp_path / "group.pb"
    groups = [sdk_spans({"n": n}, 0, 0) for n in range(2)]  # two inserts: two parts, two traces
    for spans in groups:
        length_delimited([encode_spans(spans).SerializeToString()], group)
        assert insert_file(store, group, schema=schema, limit=65_536, settings={})
    wanted = groups[1][0].context.trace_id
    expected = [(sum(span.context.trace_id == wanted for spans in groups for span in spans),)]
    lookup = "SELECT count() FROM otel_traces WHERE TraceId = {t:String}"
    assert store.rows(lookup, {"t": f"{wanted:032x}"}) == expected
    store.command("OPTIMIZE TABLE otel_traces FINAL")
    indexed = store.rows("SELECT sum(secondary_indices_compressed_bytes) FROM system.parts"
                         " WHERE active AND database = currentDatabase() AND table = 'otel_traces'")  # fmt: skip
    assert indexed[0][0] > 0 and store.rows(lookup, {"t": f"{wanted:032x}"}) == expected


def test_kvlist_and_bytes_values_are_stringified_like_the_collector() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="s")
    kv = span.attributes.add(key="map").value.kvlist_value.values.add(key="a")
    kv.value.int_value = 1
    span.attributes.add(key="raw").value.bytes_value = b"\x00\x01"
    span.attributes.add(key="unset")
    attrs = traces_to_columns([request.SerializeToString()]).data[11][0]
    assert attrs == {"map": '{"a":1}', "raw": attribute_string(b"\x00\x01"), "unset": ""}


@given(value=st.text(min_size=0, max_size=300), limit=st.integers(16, 200))
def test_long_values_are_cut_to_the_limit_and_counted(value: str, limit: int) -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(event_name="e")
    record.body.string_value = value
    record.attributes.add(key="v").value.string_value = value
    cols = logs_to_columns([request.SerializeToString()], limit=limit)
    body, attrs = cols.data[7][0], cols.data[14][0]
    assert body == value[:limit] and attrs["v"] == value[:limit] and attrs["event.name"] == "e"
    assert cols.truncated == (2 if len(value) > limit else 0)


@given(good=st.text(max_size=20), bad=st.binary(min_size=1, max_size=8).filter(lambda b: not _is_utf8(b)))
def test_invalid_utf8_is_replaced_not_rejected(good: str, bad: bytes) -> None:
    placeholder = "M" + "\x07" * len(bad) + "R"  # same length as the bad bytes: no length prefix changes
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name=placeholder)
    span.attributes.add(key="k").value.string_value = good
    wire = request.SerializeToString().replace(placeholder.encode(), b"M" + bad + b"R")
    message, payload = parse_request(wire, ExportTraceServiceRequest, json_body=False)
    decoded = message.resource_spans[0].scope_spans[0].spans[0]
    assert decoded.name == "M" + bad.decode("utf-8", "replace") + "R" and "\ufffd" in decoded.name
    assert decoded.attributes[0].value.string_value == good
    ExportTraceServiceRequest.FromString(payload)  # the spooled bytes are valid UTF-8 now


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
