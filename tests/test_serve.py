"""`driftline serve` end to end: real OTel SDK exporters -> a real serve subprocess -> rows in chDB.

Every test starts its own server on free loopback ports (the `serve` fixture) and reads the
rows back through serve's own read-only ClickHouse HTTP endpoint, as another process would.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import ServeProcess, wait_for

from driftline.analyzers._cli import cli

pytestmark = pytest.mark.slow


# --- helpers ---------------------------------------------------------------------------------------


def make_spans(count: int, *, service: str = "svc", start: int = 0) -> list[ReadableSpan]:
    """`count` finished GenAI spans from the real SDK, numbered by the `n` attribute."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    for n in range(start, start + count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "n": n, "ok": True,
                                 "gen_ai.usage.input_tokens": 100 + n, "temperature": 0.25, "tags": ["a", "b"]})  # fmt: skip
    provider.shutdown()
    return list(exporter.get_finished_spans())


def send_with(exporter: SpanExporter, count: int, *, batch: int = 512, start: int = 0, service: str = "svc") -> None:
    """Send through the SDK's BatchSpanProcessor, as an app does; shutdown flushes."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch, schedule_delay_millis=50))
    tracer = provider.get_tracer("tests")
    for n in range(start, start + count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "n": n})
    provider.shutdown()


def otlp_json(message: Any) -> bytes:
    """OTLP/JSON as the spec spells it: the SDK's own encoder output, ids in hex (not base64)."""
    data = json_format.MessageToDict(message)

    def hexify(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (__import__("base64").b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [hexify(v) for v in node]
        return node

    return json.dumps(hexify(data)).encode()


def post(server: ServeProcess, path: str, body: bytes, content_type: str = "application/x-protobuf",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One POST; returns (status, headers, body) whatever the status."""
    request = urllib.request.Request(f"{server.http}{path}", data=body, method="POST",
                                     headers={"Content-Type": content_type, **server.auth_headers(), **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def status_message(body: bytes) -> str:
    status = status_pb2.Status()
    status.ParseFromString(body)
    return status.message


def traces_body(count: int, **kw: Any) -> bytes:
    return bytes(encode_spans(make_spans(count, **kw)).SerializeToString())


# --- OTLP, both transports ---------------------------------------------------------------------------


def test_sdk_http_protobuf_exporter_spans_all_become_rows(serve: Any) -> None:
    server = serve()
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 3000)
    assert server.wait_rows("otel_traces", 3000) == 3000
    assert server.rows("SELECT count(DISTINCT SpanAttributes['n']), countIf(SpanKind = 'Internal') FROM otel_traces") == [(3000, 3000)]
    assert server.wait_rows("llm_calls", 3000) == 3000  # the materialized views fill from serve's inserts
    metrics = server.metrics()
    assert metrics["driftline_serve_received_total"] == metrics["driftline_serve_stored_total"] == 3000


def test_sdk_grpc_exporter_spans_all_become_rows(serve: Any) -> None:
    server = serve()
    send_with(GrpcSpanExporter(endpoint=server.grpc, insecure=True), 2000)
    assert server.wait_rows("otel_traces", 2000) == 2000
    assert server.count("otel_traces", "SpanAttributes['n'] = '1999'") == 1


def test_otlp_json_body_from_the_sdk_encoder_is_stored_like_protobuf(serve: Any) -> None:
    server = serve()
    spans = make_spans(50)
    status, headers, body = post(server, "/v1/traces", otlp_json(encode_spans(spans)), "application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {}
    server.wait_rows("otel_traces", 50)
    expected = {(format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in spans}
    assert set(server.rows("SELECT TraceId, SpanId FROM otel_traces")) == expected


def test_gzip_body_sent_chunked_without_content_length_is_accepted(serve: Any) -> None:
    server = serve()
    body = gzip.compress(traces_body(200))
    conn = http.client.HTTPConnection("127.0.0.1", server.ready["http_port"], timeout=30)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    conn.request("POST", "/v1/traces", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"})  # fmt: skip
    response = conn.getresponse()
    assert response.status == 200
    ExportTraceServiceResponse().ParseFromString(response.read())
    conn.request("POST", "/v1/traces", body=traces_body(10), headers={"Content-Type": "application/x-protobuf"})
    assert conn.getresponse().status == 200  # the same keep-alive connection goes on working
    assert server.wait_rows("otel_traces", 210) == 210


def test_evaluation_log_events_reach_llm_scores(serve: Any) -> None:
    server = serve()
    provider = LoggerProvider(resource=Resource.create({"service.name": "judge"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(HttpLogExporter(endpoint=f"{server.http}/v1/logs")))
    logger = provider.get_logger("evals")
    from opentelemetry._logs import LogRecord

    for n in range(20):
        logger.emit(LogRecord(event_name="gen_ai.evaluation.result", body="judged",
                              attributes={"gen_ai.evaluation.name": "faithfulness", "gen_ai.evaluation.score.value": n / 20}))  # fmt: skip
    logger.emit(LogRecord(body="an ordinary log line", attributes={"k": "v"}))
    provider.shutdown()
    assert server.wait_rows("otel_logs", 21) == 21
    assert server.wait_rows("llm_scores", 20) == 20
    assert server.rows("SELECT evaluation, service, round(sum(score), 3) FROM llm_scores GROUP BY ALL") == [("faithfulness", "judge", 9.5)]


def test_logs_over_grpc_are_stored(serve: Any) -> None:
    server = serve()
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    provider = LoggerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=server.grpc, insecure=True)))
    from opentelemetry._logs import LogRecord, SeverityNumber

    for n in range(30):
        provider.get_logger("x").emit(LogRecord(body=f"line {n}", severity_number=SeverityNumber.WARN, severity_text="WARN"))
    provider.shutdown()
    assert server.wait_rows("otel_logs", 30) == 30
    assert server.rows("SELECT DISTINCT SeverityNumber, SeverityText, ServiceName FROM otel_logs") == [(13, "WARN", "svc")]


def test_metrics_are_refused_with_an_otlp_partial_success(serve: Any) -> None:
    server = serve()
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="latency")
    for value in range(7):
        metric.gauge.data_points.add(as_double=value)
    status, _, body = post(server, "/v1/metrics", request.SerializeToString())
    response = ExportMetricsServiceResponse()
    response.ParseFromString(body)
    assert status == 200
    assert response.partial_success.rejected_data_points == 7
    assert "does not store metrics" in response.partial_success.error_message
    status, _, body = post(server, "/v1/metrics", otlp_json(request), "application/json")
    assert json.loads(body)["partialSuccess"]["rejectedDataPoints"] == "7"
    assert server.metrics()['driftline_serve_rejected_total{reason="metrics_not_stored",signal="metrics"}'] == 14
