"""`driftline serve` end to end: real OTel SDK exporters -> a real serve subprocess -> rows in chDB.

Every test starts its own server on free loopback ports (the `serve` fixture) and reads the
rows back through serve's own read-only ClickHouse HTTP endpoint, as another process would.
"""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import DRIFTLINE, ServeProcess, wait_for

from driftline.analyzers.cli import cli

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
    """Send through the SDK's BatchSpanProcessor, as an app does (its queue holds them all, so
    nothing is dropped client-side while the exporter retries); shutdown flushes."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max(count, 2048), max_export_batch_size=batch,
                                                   schedule_delay_millis=50, export_timeout_millis=180_000))  # fmt: skip
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
    wait_for(lambda: server.metrics()["driftline_serve_stored_total"] == 3000, what="stored counted")
    assert server.metrics()["driftline_serve_received_total"] == 3000


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


def gauge_points(count: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="latency")
    for value in range(count):
        metric.gauge.data_points.add(as_double=value)
    return request


def test_metrics_are_refused_with_an_otlp_partial_success(serve: Any) -> None:
    server = serve()
    request = gauge_points(7)
    status, _, body = post(server, "/v1/metrics", request.SerializeToString())
    response = ExportMetricsServiceResponse()
    response.ParseFromString(body)
    assert status == 200
    assert response.partial_success.rejected_data_points == 7
    assert "does not store metrics" in response.partial_success.error_message
    status, _, body = post(server, "/v1/metrics", otlp_json(request), "application/json")
    assert json.loads(body)["partialSuccess"]["rejectedDataPoints"] == "7"
    assert server.metrics()['driftline_serve_rejected_total{reason="metrics_not_stored",signal="metrics"}'] == 14


# --- nothing acknowledged is lost ---------------------------------------------------------------------


def test_store_outage_mid_send_loses_nothing_and_replays_in_order(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "store-down"
    server = serve("--fault-file", str(fault))
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 1000, start=0)
    server.wait_rows("otel_traces", 1000)
    fault.touch()  # the store goes away in the middle of the send
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 2000, start=1000)
    wait_for(lambda: (h := server.health()) and h["status"] == "degraded" and h["backlog_items"] == 2000, what="backlog while down")
    assert server.count("otel_traces") == 1000  # acknowledged, waiting in the spool
    fault.unlink()  # the store returns
    assert server.wait_rows("otel_traces", 3000) == 3000
    assert server.rows("SELECT count(DISTINCT SpanId), min(toUInt32(SpanAttributes['n'])), max(toUInt32(SpanAttributes['n'])) FROM otel_traces") == [(3000, 0, 2999)]
    wait_for(lambda: server.health()["backlog_items"] == 0, what="the backlog released")
    metrics = server.metrics()
    assert metrics["driftline_serve_replayed_total"] == 2000 and metrics["driftline_serve_insert_failures_total"] >= 1


def test_kill_9_mid_load_then_restart_replays_the_spool_without_duplicates(serve: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "crashy"
    fault = tmp_path / "slow-store"
    server = serve("--fault-file", str(fault), workdir=workdir)
    fault.touch()  # keep acknowledged batches in the spool, so the kill hits a real backlog
    acked: list[int] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            try:
                status, _, _ = post(server, "/v1/traces", traces_body(100, start=n))
            except (OSError, http.client.HTTPException):  # the server died mid-request: not acknowledged
                return
            if status == 200:
                acked.append(n)
            n += 100

    sender = threading.Thread(target=load)
    sender.start()
    wait_for(lambda: len(acked) >= 10, what="some acknowledged batches")
    fault.unlink()  # the writer starts inserting; kill it while it does
    wait_for(lambda: server.count("otel_traces") > 0, what="the first inserts")
    server.kill9()
    stop.set()
    sender.join()
    restarted = serve(workdir=workdir)
    assert restarted.wait_rows("otel_traces", 100 * len(acked)) >= 100 * len(acked)
    wait_for(lambda: restarted.health()["backlog_items"] == 0, what="the spool replayed")
    total, distinct = restarted.rows("SELECT count(), count(DISTINCT SpanId) FROM otel_traces")[0]
    assert total == distinct  # replays did not duplicate rows
    stored = {int(n) for (n,) in restarted.rows("SELECT DISTINCT toUInt32(SpanAttributes['n']) FROM otel_traces")}
    assert all(set(range(start, start + 100)) <= stored for start in acked)  # every acknowledged span is there
    assert restarted.count("llm_calls") == total  # and the views were not fed twice either


def test_a_group_replayed_after_it_was_inserted_adds_no_rows(serve: Any, tmp_path: Path) -> None:
    """kill -9 between an insert and its checkpoint: the restart re-inserts that group, deduplicated."""
    from driftline.collector.receiver._spool import Spool

    workdir = tmp_path / "dedup"
    server = serve(workdir=workdir)
    assert post(server, "/v1/traces", traces_body(300))[0] == 200
    server.wait_rows("otel_traces", 300)
    wait_for(lambda: server.health()["backlog_items"] == 0, what="the group released")
    assert server.stop() == 0
    spool = Spool(workdir / "store.spool", max_bytes=1 << 20)
    spool.begin(1, 1)  # the checkpoint as it was just before the release: "group 1..1 in flight"
    spool.close()
    restarted = serve(workdir=workdir)
    wait_for(lambda: restarted.metrics()["driftline_serve_stored_total"] == 300, what="the intent replayed")
    assert restarted.rows("SELECT count(), count(DISTINCT SpanId) FROM otel_traces") == [(300, 300)]
    assert restarted.count("llm_calls") == 300 and restarted.count("otel_traces_trace_id_ts") == 300


def test_sigterm_drains_the_spool_into_the_store_before_exit(serve: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "drain"
    fault = tmp_path / "down"
    server = serve("--fault-file", str(fault), workdir=workdir)
    fault.touch()
    for start in range(0, 1000, 100):
        assert post(server, "/v1/traces", traces_body(100, start=start))[0] == 200
    assert server.health()["backlog_items"] == 1000
    fault.unlink()
    assert server.stop() == 0  # SIGTERM: drain, then exit 0
    # Another process reads the drained directory: this one already runs the session's engine.
    result = subprocess.run([DRIFTLINE, "db", "status", "--json", "--store", f"chdb://{workdir / 'store'}"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {t["name"]: t["rows"] for t in json.loads(result.stdout)["tables"]}
    assert rows["otel_traces"] == 1000


# --- back-pressure -------------------------------------------------------------------------------------


def test_past_the_spool_limit_http_gets_503_and_grpc_unavailable_with_retry_hints(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "down"
    fault.touch()
    server = serve("--fault-file", str(fault), "--spool-max-mb", "1")
    body = traces_body(500)
    statuses = []
    for _ in range(40):
        status, headers, reply = post(server, "/v1/traces", body)
        statuses.append(status)
        if status != 200:
            break
    assert status == 503 and int(headers["Retry-After"]) > 0 and "spool" in status_message(reply)
    acked = statuses.count(200)
    channel = grpc.insecure_channel(server.grpc)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as refused:
        export(body, timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    fault.unlink()  # the store comes back: what was acknowledged goes in, and new batches are taken again
    assert server.wait_rows("otel_traces", 500 * acked) == 500 * acked
    wait_for(lambda: post(server, "/v1/traces", body)[0] == 200, what="accepting again")


def test_a_client_told_to_back_off_keeps_its_connection_and_gets_in_on_it(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "down"
    fault.touch()
    server = serve("--fault-file", str(fault), "--spool-max-mb", "1")
    conn = http.client.HTTPConnection("127.0.0.1", server.ready["http_port"], timeout=30)
    body = traces_body(500)

    def send() -> http.client.HTTPResponse:
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        return response

    statuses = [send().status for _ in range(40)]
    acked = statuses.index(503)
    sock = conn.sock
    response = send()
    assert response.status == 503 and response.getheader("Connection") != "close" and conn.sock is sock
    fault.unlink()
    wait_for(lambda: send().status == 200, what="the same connection to be accepted again")
    assert conn.sock is sock  # never reconnected: every refused body was read, not left on the wire
    assert server.wait_rows("otel_traces", 500 * (acked + 1)) == 500 * (acked + 1)
    conn.close()


def test_too_many_requests_in_flight_get_429_with_retry_after(serve: Any) -> None:
    server = serve("--max-in-flight", "1")
    body = traces_body(3000)

    def flood_round() -> dict[str, str] | None:
        replies: list[tuple[int, dict[str, str], bytes]] = []
        threads = [threading.Thread(target=lambda: replies.append(post(server, "/v1/traces", body))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {status for status, _, _ in replies} <= {200, 429}
        return next((headers for status, headers, _ in replies if status == 429), None)

    headers = wait_for(flood_round, what="429 while another request is being decoded")
    assert headers["Retry-After"] == "2"


def test_memory_stays_bounded_under_a_flood(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "down"
    fault.touch()
    server = serve("--fault-file", str(fault), "--spool-max-mb", "64")
    body = traces_body(2000)
    codes: list[int] = []

    def flood() -> None:
        for _ in range(60):
            codes.append(post(server, "/v1/traces", body)[0])

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(codes) <= {200, 429, 503} and 503 in codes
    assert server.rss_bytes() < 1 << 30


# --- bad input gets a clear answer and changes nothing ----------------------------------------------------


def test_bad_requests_get_their_status_and_reason_and_store_nothing(serve: Any) -> None:
    server = serve("--max-body-mb", "1", "--max-decoded-mb", "2")
    bomb = gzip.compress(b"\x00" * (50 << 20))  # 50 MiB of zeros in about 50 KiB
    cases = [
        ("/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", {}, 400, "malformed protobuf"),
        ("/v1/traces", b'{"resourceSpans": [', "application/json", {}, 400, "malformed JSON"),
        ("/v1/traces", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", {}, 400, "not hex"),
        ("/v1/traces", b"{}", "text/plain", {}, 415, "Content-Type"),
        ("/v1/traces", b"x", "application/x-protobuf", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        ("/v1/traces", b"\x00" * (2 << 20), "application/x-protobuf", {}, 413, "limit"),
        ("/v1/traces", bomb, "application/x-protobuf", {"Content-Encoding": "gzip"}, 413, "decompresses past"),
        ("/v1/traces", b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, "decompress"),
        ("/v1/nope", b"", "application/x-protobuf", {}, 404, "no such path"),
    ]
    rss_before = server.rss_bytes()
    for path, body, content_type, headers, expected, reason in cases:
        status, _, reply = post(server, path, body, content_type, headers)
        message = json.loads(reply)["message"] if content_type == "application/json" else status_message(reply)
        assert (status, reason in message) == (expected, True), (path, content_type, headers, status, message)
    assert server.rss_bytes() - rss_before < 200 << 20  # the bomb was not inflated in full
    assert post(server, "/v1/traces", traces_body(5))[0] == 200  # still serving
    assert server.wait_rows("otel_traces", 5) == 5
    rejected = {k: v for k, v in server.metrics().items() if k.startswith("driftline_serve_rejected_total")}
    assert rejected['driftline_serve_rejected_total{reason="too_large",signal="traces"}'] == 2
    assert rejected['driftline_serve_rejected_total{reason="bad_payload",signal="traces"}'] == 4


def test_grpc_malformed_message_is_invalid_argument(serve: Any) -> None:
    server = serve()
    export = grpc.insecure_channel(server.grpc).unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
    with pytest.raises(grpc.RpcError) as bad:
        export(b"\x0a\xff\xff\xff\xff\x0f", timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed protobuf" in (bad.value.details() or "")


def test_hostile_attribute_values_are_stored_intact_or_cut_by_the_rule(serve: Any) -> None:
    server = serve("--max-value-chars", "1000")
    hostile = {"quote": "it's \"quoted\" `back`", "sql": "'); DROP TABLE otel_traces; --", "nul": "a\x00b",
               "unicode": "naïve ✓ 𝔘", "long": "x" * 1_500_000}  # fmt: skip
    request = encode_spans(make_spans(1))
    attrs = request.resource_spans[0].scope_spans[0].spans[0].attributes
    for key, value in hostile.items():
        attrs.add(key=key).value.string_value = value
    raw = request.SerializeToString().replace(b"it's", b"\xff\xfe's")  # invalid UTF-8 in a string field, on the wire
    assert post(server, "/v1/traces", raw)[0] == 200
    server.wait_rows("otel_traces", 1)
    stored = server.rows("SELECT SpanAttributes FROM otel_traces")[0][0]
    assert stored["sql"] == hostile["sql"] and stored["nul"] == "a\x00b" and stored["unicode"] == hostile["unicode"]
    assert stored["quote"] == "\ufffd\ufffd's \"quoted\" `back`"  # bad bytes become U+FFFD
    assert stored["long"] == "x" * 1000  # cut to --max-value-chars
    assert server.count("otel_traces") == 1
    wait_for(lambda: server.metrics()["driftline_serve_truncated_values_total"] == 1, what="the cut counted")


def test_bearer_token_is_required_on_every_transport(serve: Any, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    server = serve("--token-file", str(secret), token="s3cret-token")
    body = traces_body(3)
    assert post(server, "/v1/traces", body, headers={"Authorization": "Bearer wrong"})[0] == 401
    status, headers, _ = post(server, "/v1/traces", body, headers={"Authorization": ""})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert post(server, "/v1/traces", body)[0] == 200  # with the right token
    channel = grpc.insecure_channel(server.grpc)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as refused:
        export(body, timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    send_with(GrpcSpanExporter(endpoint=server.grpc, insecure=True, headers={"authorization": "Bearer s3cret-token"}), 7)
    assert server.wait_rows("otel_traces", 10) == 10
    assert "s3cret" not in server.log_path.read_text()  # secrets never in logs


# --- query while it runs ------------------------------------------------------------------------------------


def test_commands_read_the_served_store_while_it_ingests(serve: Any) -> None:
    server = serve()
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 500)
    server.wait_rows("otel_traces", 500)
    runner = CliRunner()
    through_endpoint = runner.invoke(cli, ["db", "status", "--json", "--store", server.query_url])
    assert through_endpoint.exit_code == 0, through_endpoint.output
    assert {t["name"]: t["rows"] for t in json.loads(through_endpoint.output)["tables"]}["otel_traces"] == 500
    # pointed at the embedded directory serve holds, a command connects through serve by itself
    held_dir = runner.invoke(cli, ["db", "status", "--json", "--store", f"chdb://{server.workdir / 'store'}"])
    assert held_dir.exit_code == 0, held_dir.output
    assert json.loads(held_dir.output)["url"] == server.query_url
    # a write says why it cannot go through serve, and what to do instead
    refused = runner.invoke(cli, ["annotate", "deploy", "api", "--store", f"chdb://{server.workdir / 'store'}"])
    assert refused.exit_code != 0 and "read-only" in refused.output and "stop `driftline serve`" in refused.output
    # bound parameters, and the compressed Native results clickhouse-connect asks for
    assert server.rows("SELECT count() FROM otel_traces WHERE SpanAttributes['n'] = {n:String} AND ServiceName = {s:String}",
                       {"n": "42", "s": "svc"}) == [(1,)]  # fmt: skip


@pytest.mark.parametrize("statement", [
    "INSERT INTO otel_traces (SpanName) VALUES ('x')",
    "DROP TABLE otel_traces",
    "SELECT 1; DROP TABLE otel_traces",
    "ALTER TABLE otel_traces DELETE WHERE 1",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "INSERT INTO FUNCTION file('/tmp/out.csv', 'CSV') SELECT 1",
])  # fmt: skip
def test_the_query_endpoint_refuses_writes(serve: Any, statement: str) -> None:
    from driftline.collector import StoreError, connect

    server = serve()
    assert post(server, "/v1/traces", traces_body(3))[0] == 200
    server.wait_rows("otel_traces", 3)
    with connect(server.query_url) as store, pytest.raises(StoreError, match="(?i)read-only|refuses|multi-statements"):
        store.command(statement)
    assert server.count("otel_traces") == 3


def test_the_query_endpoint_wants_the_token(serve: Any) -> None:
    from driftline.collector import StoreUnavailable, connect

    server = serve(token="tok")
    assert server.count("otel_traces") == 0  # with the token as the password
    with pytest.raises(StoreUnavailable, match="401|authentication"):
        connect(str(server.ready["query_url"]))


def test_grpc_metrics_are_refused_with_an_otlp_partial_success(serve: Any) -> None:
    server = serve()
    request = gauge_points(3)
    export = grpc.insecure_channel(server.grpc).unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
    response = ExportMetricsServiceResponse.FromString(export(request.SerializeToString(), timeout=30))
    assert response.partial_success.rejected_data_points == 3 and "does not store metrics" in response.partial_success.error_message


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_the_sdk_exporters_retry_when_refused_and_every_span_arrives(serve: Any, tmp_path: Path, transport: str) -> None:
    fault = tmp_path / "down"
    fault.touch()
    server = serve("--fault-file", str(fault), "--spool-max-mb", "1")
    exporter = (HttpSpanExporter(endpoint=f"{server.http}/v1/traces", timeout=120) if transport == "http"
                else GrpcSpanExporter(endpoint=server.grpc, insecure=True, timeout=120))  # fmt: skip
    sender = threading.Thread(target=send_with, args=(exporter, 20_000))
    sender.start()
    wait_for(lambda: server.metrics().get('driftline_serve_rejected_total{reason="spool_full",signal="traces"}', 0) > 0, what="a 503")
    fault.unlink()  # the store returns; the exporter's retries (503 / UNAVAILABLE) get in
    sender.join(180)
    assert server.wait_rows("otel_traces", 20_000) == 20_000
    assert server.rows("SELECT count(DISTINCT SpanAttributes['n']) FROM otel_traces") == [(20_000,)]


def test_a_second_serve_on_the_same_embedded_store_refuses_to_start(serve: Any, tmp_path: Path) -> None:
    first = serve(workdir=tmp_path / "one")
    with pytest.raises(RuntimeError, match="already served by another `driftline serve`"):
        serve(store=first.store, workdir=tmp_path / "two")
