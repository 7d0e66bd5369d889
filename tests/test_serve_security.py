"""`driftline serve` against a hostile client (issue 13): one test per attack, each on a real serve
subprocess on loopback (tests/serve_process.py), ingest through the real OTel SDK exporters.

Every test asserts what the attack was after did not happen (no file written or read, no
connection made, ingest still flowing), not only the status code.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import ServeProcess, wait_for
from test_serve import otlp_json, post, send_with, status_message, traces_body

pytestmark = pytest.mark.slow

SECRET = "s3cret-token-do-not-leak"


# --- helpers ---------------------------------------------------------------------------------------


def ask(server: Any, sql: str | None = None, *, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    """One request to the query endpoint; (status, body) whatever the status."""
    query = urlencode({**({"query": sql} if sql is not None else {}), **(params or {})})
    conn = http.client.HTTPConnection("127.0.0.1", server.ready["query_port"], timeout=60)
    try:
        auth = {"X-ClickHouse-Key": server.token} if server.token else {}
        conn.request(method, f"/?{query}", body=body, headers={**auth, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw_exchange(port: int, request: bytes, *, timeout: float = 30) -> bytes:
    """Send `request` as is and read until the server closes or the first response is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


class Listener:
    """A loopback TCP port that records whether anything connected to it (outbound-request probes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def reached(self) -> bool:
        try:
            self.sock.accept()[0].close()
        except BlockingIOError:
            return False
        return True


@pytest.fixture
def serve(serve: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """conftest's `serve`, and afterwards each server's peak RSS under the attack: recorded as the test's
    `peak_rss_mib` property (`--junitxml` with `-o junit_family=legacy` writes them) and held under 1 GiB."""
    started: list[ServeProcess] = []

    def start(*extra: str, **kwargs: Any) -> ServeProcess:
        process: ServeProcess = serve(*extra, **kwargs)
        started.append(process)
        return process

    yield start
    peaks = [p.rss_bytes("VmHWM") for p in started if p.proc is not None and p.proc.poll() is None]
    if peaks:
        request.node.user_properties.append(("peak_rss_mib", max(peaks) >> 20))
        assert max(peaks) < 1 << 30


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the serving user may write and read: no statement may change or show it."""
    path = tmp_path / "victim.txt"
    path.write_text(SECRET)
    return path


# --- 1. the query endpoint is read-only in the engine's terms -----------------------------------------


@pytest.mark.parametrize("template", [
    "SELECT 'x' INTO OUTFILE '{path}'",
    "SELECT 'x' INTO OUTFILE '{path}' TRUNCATE",
    "SELECT 'x' INTO OUTFILE '{path}' APPEND FORMAT CSV",
    "select/**/'x'/**/into/**/outfile/**/'{path}'/**/truncate",
    "SELECT 'x' INTO OUTFILE '{path}' AND STDOUT",
    "SHOW TABLES INTO OUTFILE '{path}' TRUNCATE",
    "DESCRIBE TABLE otel_traces INTO OUTFILE '{path}' TRUNCATE",
    "EXISTS TABLE otel_traces INTO OUTFILE '{path}' TRUNCATE",
])  # fmt: skip
def test_into_outfile_writes_no_file_by_get_or_form_post(serve: Any, tmp_path: Path, victim: Path, template: str) -> None:
    server = serve()
    fresh = tmp_path / "fresh.txt"
    for path in (victim, fresh):
        sql = template.format(path=path)
        assert ask(server, sql)[0] == 403  # an <img src=...> is a GET
        form = urlencode({"query": sql}).encode()
        assert ask(server, method="POST", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 403
    assert victim.read_text() == SECRET and not fresh.exists()


@pytest.mark.parametrize("template", [
    "SELECT * FROM file/**/('{path}', 'LineAsString')",
    "SELECT * FROM `file`('{path}', 'LineAsString')",
    'SELECT * FROM "file"(\'{path}\', \'LineAsString\')',
    "SELECT file('{path}')",
    "SELECT * FROM fiLE('{path}', 'LineAsString')",
    "SELECT 1 IN file('{path}', 'LineAsString')",
    "DESCRIBE TABLE file('{path}', 'LineAsString')",
    "SELECT * FROM view(SELECT * FROM file('{path}', 'LineAsString'))",
    "WITH t AS (SELECT * FROM file('{path}', 'LineAsString')) SELECT * FROM t",
    "SELECT (SELECT any(line) FROM file('{path}', 'LineAsString'))",
    "SELECT * FROM filesystem('{dir}')",
    "SELECT * FROM input('line String')",
    "SELECT * FROM executable('cat {path}', 'LineAsString', 'line String')",
    "SELECT * FROM merge('system', 'disks')",
    "SELECT * FROM system.disks",
    "SELECT * FROM `system`.`processes`",
    "SELECT 1 IN system.disks",
    "SELECT $$x$$ FROM file('{path}', 'LineAsString')",
])  # fmt: skip
def test_no_spelling_of_a_table_function_reads_host_files(serve: Any, victim: Path, template: str) -> None:
    server = serve()
    status, reply = ask(server, template.format(path=victim, dir=victim.parent))
    assert status == 403 and SECRET.encode() not in reply, reply


@pytest.mark.parametrize("template", [
    "SELECT * FROM url/**/('http://127.0.0.1:{port}/x', 'CSV', 'a String')",
    "SELECT * FROM `url`('http://127.0.0.1:{port}/x', 'CSV', 'a String')",
    "SELECT 1 IN url('http://127.0.0.1:{port}/x', 'CSV', 'a String')",
    "SELECT * FROM remote/**/('127.0.0.1:{port}', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1:{port}', system.one)",
    "SELECT * FROM mysql/**/('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql/**/('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
    "SELECT * FROM s3('http://127.0.0.1:{port}/b/k', 'CSV', 'a String')",
    "SELECT * FROM cosn('http://127.0.0.1:{port}/b/k', 'CSV', 'a String')",
    "SELECT * FROM oss('http://127.0.0.1:{port}/b/k', 'CSV', 'a String')",
    "SELECT * FROM cluster('default', system.one)",
])  # fmt: skip
def test_no_table_function_reaches_the_network(serve: Any, template: str) -> None:
    server = serve()
    listener = Listener()
    status, _ = ask(server, template.format(port=listener.port))
    assert status == 403 and not listener.reached()


@pytest.mark.parametrize("statement", [
    "CREATE TEMPORARY TABLE x (a String) ENGINE = File(CSV)",
    "CREATE TEMPORARY TABLE x (a String) ENGINE = URL('http://127.0.0.1:{port}/x', CSV)",
    "CREATE TEMPORARY TABLE x (a String) ENGINE = Memory",
    "SET limit = 1",
    "USE system",
    "KILL QUERY WHERE 1",
    "SYSTEM STOP MERGES",
    "SYSTEM SHUTDOWN",
    "OPTIMIZE TABLE otel_traces FINAL",
    "SELECT 1 SETTINGS max_execution_time = 100000",
    "SELECT 1 UNION ALL SELECT 2 SETTINGS readonly = 0",
    "EXPLAIN SELECT 1",
])  # fmt: skip
def test_session_and_system_statements_are_refused_and_ingest_goes_on(serve: Any, statement: str) -> None:
    server = serve()
    listener = Listener()
    status, reply = ask(server, statement.format(port=listener.port))
    assert status == 403 and b"read-only" in reply, reply
    assert not listener.reached()
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 50)  # nothing killed or stopped the writer
    assert server.wait_rows("otel_traces", 50) == 50


def test_url_settings_apply_to_one_request_only(serve: Any, tmp_path: Path) -> None:
    server = serve()
    schema = tmp_path / "written.proto"
    when = "SELECT toDateTime('2024-01-01 00:00:00', 'UTC')"
    for _ in range(4):  # more requests than pooled handles: every handle has served one with settings
        assert ask(server, when, params={"date_time_output_format": "unix_timestamp"}) == (200, b"1704067200\n")
        assert ask(server, "SELECT count() FROM numbers(10)", params={"limit": "1", "readonly": "0"}) == (200, b"10\n")
        assert ask(server, "SELECT 1", params={"output_format_schema": str(schema), "default_format": "Protobuf"})[0] == 403
    for _ in range(4):
        assert ask(server, when) == (200, b"2024-01-01 00:00:00\n")
        assert ask(server, "SELECT getSetting('limit'), getSetting('readonly')") == (200, b"0\t2\n")
    assert not schema.exists()  # output_format_schema is not one of the settings a request may set
    assert ask(server, "SELECT 1", params={"max_threads": "many"})[0] == 400
    assert ask(server, "SELECT 1") == (200, b"1\n")


def test_no_request_leaves_schema_files_on_the_serving_host(serve: Any) -> None:
    """Protobuf output makes the engine write its generated schema to temporary files, two per
    failing request, never removed: a client could fill the disk. Serve's temporary folder is its
    workdir here (tests/serve_process.py)."""
    server = serve()
    attempts = [("SELECT 1", {"default_format": "Protobuf"}), ("SELECT 1 FORMAT ProtobufSingle", {}),
                ("SELECT number AS n FROM numbers(2) FORMAT ProtobufList", {}), ("SELECT 1", {"default_format": "protobuf"}),
                ("SELECT formatRow('Protobuf', 1)", {}), ("SELECT FormatRowNoNewline('JSONEachRow', 1 AS n)", {})]  # fmt: skip
    for sql, params in attempts * 3:
        status, reply = ask(server, sql, params=params)
        assert status == 403 and b"files on this host" in reply, (sql, params, reply)
    assert not list(server.workdir.glob("*.proto"))
    assert ask(server, "SELECT number AS n FROM numbers(2)", params={"default_format": "CSVWithNames"}) == (200, b'"n"\n0\n1\n')


def test_a_query_cannot_raise_its_time_or_memory_limit(serve: Any) -> None:
    server = serve("--query-timeout", "2", "--query-max-memory-mb", "128")
    status, reply = ask(server, "SELECT count() FROM numbers_mt(10000000000000)", params={"max_execution_time": "3600"})
    assert status == 400 and b"TIMEOUT_EXCEEDED" in reply
    status, reply = ask(server, "SELECT groupArray(number) FROM numbers(1000000000)", params={"max_memory_usage": "0"})
    assert status == 400 and b"MEMORY_LIMIT_EXCEEDED" in reply
    status, reply = ask(server, "SELECT number FROM numbers(100000000000)", params={"max_result_bytes": "0", "max_execution_time": "0"})
    assert status == 400 and b"TOO_MANY_ROWS_OR_BYTES" in reply  # --query-max-result-mb at most, whatever the request asks
    assert ask(server, "SELECT getSetting('max_execution_time')", params={"max_execution_time": "1"}) == (200, b"1\n")  # lower: fine
    assert ask(server, "SELECT 1") == (200, b"1\n")
    assert server.rss_bytes() < 1 << 30


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Host": "attacker.example"}, 403),
    ({"Host": "attacker.example:8124"}, 403),
    ({"Host": "127.0.0.1", "Origin": "http://attacker.example"}, 403),
    ({"Host": "localhost", "Origin": "null"}, 403),
    ({"Host": "127.0.0.1", "Sec-Fetch-Site": "cross-site"}, 403),
    ({"Host": "localhost:8124", "Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}, 403),
    ({"Host": "localhost:8124"}, 200),
    ({"Host": "[::1]:8124", "Origin": "http://127.0.0.1:8124", "Sec-Fetch-Site": "same-origin"}, 200),
    ({"Host": "grafana-host:8124", "Origin": "http://grafana-host:3000"}, 200),
])  # fmt: skip
def test_a_web_page_cannot_reach_the_query_endpoint(serve: Any, headers: dict[str, str], expected: int) -> None:
    server = serve("--allow-host", "grafana-host")
    assert ask(server, "SELECT 1", headers=headers)[0] == expected


def test_the_query_token_is_checked_before_the_body_is_read(serve: Any) -> None:
    server = serve(token="tok")
    request = (b"POST /?query=SELECT HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n"
               b"Content-Encoding: gzip\r\n\r\n")  # fmt: skip
    reply = raw_exchange(server.ready["query_port"], request)  # the body never comes
    assert reply.startswith(b"HTTP/1.1 401")
    assert ask(server, "SELECT 1") == (200, b"1\n")


def test_query_bodies_are_bounded_as_sent_and_as_decompressed(serve: Any) -> None:
    server = serve()
    port = server.ready["query_port"]
    rss_before = server.rss_bytes()
    bomb = gzip.compress(b" " * (1 << 30))  # 1 GiB of spaces in about 1 MiB
    assert ask(server, method="POST", body=bomb, headers={"Content-Encoding": "gzip"})[0] == 413
    assert server.rss_bytes() - rss_before < 200 << 20
    truncated = gzip.compress(b"SELECT 1 AS one, 2 AS two")[:-12]
    status, reply = ask(server, method="POST", body=truncated, headers={"Content-Encoding": "gzip"})
    assert status == 400 and b"truncated" in reply
    for length in (b"-1", b"1e3", b"+5", b"0x10"):
        reply = raw_exchange(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + length + b"\r\n\r\nSELECT 1")
        assert reply.startswith(b"HTTP/1.1 400"), (length, reply)
    assert raw_exchange(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9999999999\r\n\r\n").startswith(b"HTTP/1.1 413")


def test_a_curl_style_form_body_runs_as_the_query(serve: Any) -> None:
    server = serve()
    assert ask(server, method="POST", body=b"SELECT 41 + 1", headers={"Content-Type": "application/x-www-form-urlencoded"}) == (200, b"42\n")


GRAFANA_METADATA = [
    "SELECT version()",
    "SELECT timezone()",
    "SELECT name FROM system.databases",
    "SELECT name FROM system.tables WHERE database = 'default' ORDER BY name",
    "DESC TABLE otel_traces",
    "SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'otel_traces'",
    "SHOW DATABASES",
    "SELECT name FROM system.functions WHERE name = 'toStartOfInterval'",
]


def test_grafana_and_clickhouse_connect_still_read_through_the_gate(serve: Any) -> None:
    from driftline.collector import connect
    from driftline.dashboards import _check as dashboards

    server = serve()
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 200)
    server.wait_rows("otel_traces", 200)
    for sql in GRAFANA_METADATA:  # the data source's own queries, as its HTTP client sends them
        status, reply = ask(server, method="POST", body=sql.encode(), params={"default_format": "JSONCompact"},
                            headers={"X-ClickHouse-User": "default", "Accept-Encoding": "gzip"})  # fmt: skip
        assert status == 200, (sql, reply)
    end = datetime.now(UTC).replace(microsecond=0)
    with connect(server.query_url) as store:  # every shipped panel, variable and annotation query
        report = dashboards.check(store, start=end - timedelta(hours=2), end=end)
    failed = [q for q in report.queries if q.problem and q.problem.startswith("query failed")]
    assert report.queries and not failed, failed[:3]
    assert server.rows("SELECT count() FROM otel_traces WHERE SpanAttributes['n'] = {n:String}", {"n": "7"}) == [(1,)]


def test_healthy_ingest_is_unaffected_by_a_refused_query(serve: Any) -> None:
    server = serve()
    assert ask(server, "SELECT * FROM file('/etc/passwd', 'LineAsString')")[0] == 403
    assert post(server, "/v1/traces", traces_body(5))[0] == 200
    assert server.wait_rows("otel_traces", 5) == 5


# --- 2. no request can stop ingest -----------------------------------------------------------------------


def sdk_spans(names: list[str], *, start_ns: list[int] | None = None, service: str = "svc") -> list[ReadableSpan]:
    """Finished spans from the real SDK, one per name, at the given start times (default: now)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    for index, name in enumerate(names):
        start = start_ns[index] if start_ns else time.time_ns()
        span = tracer.start_span(name, start_time=start, attributes={"n": index})
        span.end(end_time=start + 1_000_000)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def run_in_store(url: str, sql: str) -> None:
    """A statement on an embedded store no serve holds, from a process of its own (chDB: one per directory)."""
    script = "import sys\nfrom driftline.collector import connect, migrate\nstore = connect(sys.argv[1])\nmigrate(store)\nstore.command(sys.argv[2])"
    subprocess.run([sys.executable, "-c", script, url, sql], check=True, capture_output=True, timeout=120)


def test_a_batch_spanning_101_days_is_stored_and_ingest_goes_on(serve: Any) -> None:
    server = serve()
    first = int(datetime(2025, 1, 1, 12, tzinfo=UTC).timestamp() * 1e9)
    days = sdk_spans([f"day {d}" for d in range(101)], start_ns=[first + d * 86_400 * 10**9 for d in range(101)])
    assert HttpSpanExporter(endpoint=f"{server.http}/v1/traces").export(days) == SpanExportResult.SUCCESS  # one request
    send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 50)
    assert server.wait_rows("otel_traces", 151) == 151
    assert server.rows("SELECT uniqExact(toDate(Timestamp)) FROM otel_traces WHERE SpanName LIKE 'day %'") == [(101,)]
    assert server.metrics()["driftline_serve_dead_letter_items"] == 0


def test_a_batch_the_store_keeps_refusing_is_set_aside_counted_and_replayable(serve: Any, tmp_path: Path) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    run_in_store(store, "ALTER TABLE otel_traces ADD CONSTRAINT no_poison CHECK SpanName != 'poison'")
    server = serve(store=store)
    exporter = HttpSpanExporter(endpoint=f"{server.http}/v1/traces")
    assert exporter.export(sdk_spans(["before"] * 10)) == SpanExportResult.SUCCESS
    assert exporter.export(sdk_spans(["ok", "poison", "ok"])) == SpanExportResult.SUCCESS  # acknowledged: it is durable
    send_with(exporter, 200)  # everything behind it flows
    assert server.wait_rows("otel_traces", 210) == 210
    # the spool's checkpoint moves past the set-aside batch just after it is dead-lettered: wait for both
    metrics = wait_for(lambda: (m := server.metrics())["driftline_serve_dead_letter_items"] == 3 and m["driftline_serve_queue_items"] == 0 and m,
                       what="the batch set aside and the queue drained")  # fmt: skip
    assert metrics["driftline_serve_dead_lettered_total"] == 3
    [reason] = [json.loads(p.read_text())["reason"] for p in (tmp_path / "store.spool" / "dead-letter").glob("*.json")]
    assert "no_poison" in reason
    assert server.stop() == 0
    run_in_store(store, "ALTER TABLE otel_traces DROP CONSTRAINT no_poison")  # the operator fixes the cause
    replayed = serve("--replay-dead-letters", store=store, workdir=tmp_path / "again")
    assert replayed.wait_rows("otel_traces", 213) == 213
    assert replayed.count("otel_traces", "SpanName = 'poison'") == 1
    assert replayed.metrics()["driftline_serve_dead_letter_items"] == 0


def test_a_store_refusing_everything_fills_the_dead_letters_to_their_limit_then_holds_batches(serve: Any, tmp_path: Path) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    run_in_store(store, "ALTER TABLE otel_traces ADD CONSTRAINT nothing CHECK SpanName = 'never sent'")
    server = serve("--spool-max-mb", "1", store=store)
    body = traces_body(400)  # ~90 KB
    assert post(server, "/v1/traces", body)[0] == 200
    wait_for(lambda: server.metrics()["driftline_serve_dead_letter_items"] == 400, what="the first batch set aside")

    def dead_bytes() -> int:
        return sum(p.stat().st_size for p in (tmp_path / "store.spool" / "dead-letter").glob("*.pb"))

    def refused_at_last() -> bool:
        return post(server, "/v1/traces", body)[0] == 503 and dead_bytes() > (1 << 20) - 2 * len(body)

    wait_for(refused_at_last, what="the dead letters full, then the spool")
    assert dead_bytes() <= 1 << 20
    assert server.health()["status"] == "degraded" and server.count("otel_traces") == 0


# --- 3. bounded resources per client ----------------------------------------------------------------------


OTLP_HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"


@pytest.mark.parametrize(("length", "status"), [
    (b"-1", b"400"), (b"abc", b"400"), (b"1e3", b"400"), (b" +7", b"400"),
    (b"1073741824", b"413"), (b"99999999999999999999", b"413"),
])  # fmt: skip
def test_bad_content_length_is_400_and_a_huge_one_413_never_503(serve: Any, length: bytes, status: bytes) -> None:
    server = serve("--max-body-mb", "1")
    rss_before = server.rss_bytes()
    reply = raw_exchange(server.ready["http_port"], OTLP_HEAD + b"Content-Length: " + length + b"\r\n\r\n")  # no body follows
    assert reply.startswith(b"HTTP/1.1 " + status) and b"Retry-After" not in reply, reply
    assert server.rss_bytes() - rss_before < 100 << 20
    assert post(server, "/v1/traces", traces_body(2))[0] == 200


def test_two_content_lengths_are_400(serve: Any) -> None:
    server = serve()
    reply = raw_exchange(server.ready["http_port"], OTLP_HEAD + b"Content-Length: 5\r\nContent-Length: 50\r\n\r\nabcde")
    assert reply.startswith(b"HTTP/1.1 400")


def test_truncated_gzip_is_400_not_part_of_the_data(serve: Any) -> None:
    server = serve()
    deflater = zlib.compressobj(wbits=31)  # gzip
    first_half = deflater.compress(traces_body(50)) + deflater.flush(zlib.Z_FULL_FLUSH)  # inflates to a whole request
    whole = first_half + deflater.compress(traces_body(50, start=50)) + deflater.flush()
    assert post(server, "/v1/traces", first_half, headers={"Content-Encoding": "gzip"})[0] == 400  # cut where it still parses
    status, _, _ = post(server, "/v1/traces", whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert post(server, "/v1/traces", traces_body(1))[0] == 200
    assert server.wait_rows("otel_traces", 1) == 1 and server.count("otel_traces") == 1


def test_grpc_decompression_is_bounded(serve: Any) -> None:
    import grpc

    server = serve("--max-decoded-mb", "4")
    rss_before = server.rss_bytes()
    export = grpc.insecure_channel(server.grpc, compression=grpc.Compression.Gzip).unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as refused:
        export(b"\x00" * (256 << 20), timeout=60)  # a quarter GiB that gzips to a few hundred KiB
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.rss_bytes() - rss_before < 200 << 20


def slow_client(port: int) -> socket.socket:
    """A connection that sends its headers and the start of a body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(OTLP_HEAD + b"Content-Length: 100000\r\n\r\npartial")
    return sock


def test_a_hundred_slow_clients_cannot_starve_real_exporters(serve: Any) -> None:
    server = serve("--max-in-flight", "2", "--request-timeout", "5")
    slow = [slow_client(server.ready["http_port"]) for _ in range(100)]
    try:
        send_with(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 2000, batch=200)
        assert server.wait_rows("otel_traces", 2000) == 2000
        assert not any(k.startswith('driftline_serve_rejected_total{reason="too_many_requests"') for k in server.metrics())
        for sock in slow[:3]:  # each is cut at its deadline with a 408
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()
    log = server.log_path.read_text()
    assert "request timed out" in log and '"level": "error"' not in log and "Traceback" not in log


def test_a_trickling_client_is_cut_at_the_request_deadline(serve: Any) -> None:
    import select

    server = serve("--request-timeout", "2")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.ready["http_port"]), timeout=30) as sock:
        sock.sendall(OTLP_HEAD + b"Content-Length: 100000\r\n\r\n")
        while not select.select([sock], [], [], 0.25)[0]:  # a byte whenever the server has not answered yet
            sock.sendall(b"x")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 10


def test_connections_past_the_per_client_cap_are_closed(serve: Any) -> None:
    server = serve("--max-connections-per-client", "4")
    port = server.ready["http_port"]
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert extra.recv(4096) == b""  # closed without an answer
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: server.health() is not None, what="a connection admitted once the others closed")


# --- 4. input validated ------------------------------------------------------------------------------------


def one_span_request(**fields: Any) -> bytes:
    """One SDK span, encoded by the SDK's encoder, with `fields` of the span overwritten on the wire message."""
    request = encode_spans(sdk_spans(["s"]))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for name, value in fields.items():
        setattr(span, name, value)
    return bytes(request.SerializeToString())


@pytest.mark.parametrize(("fields", "named"), [
    ({"trace_id": b"\x01" * 15}, "spans[0].trace_id: 15 bytes"),
    ({"trace_id": b""}, "spans[0].trace_id: 0 bytes"),
    ({"span_id": b"\x01" * 9}, "spans[0].span_id: 9 bytes"),
    ({"parent_span_id": b"\x01" * 3}, "spans[0].parent_span_id: 3 bytes"),
    ({"start_time_unix_nano": int(datetime(2300, 1, 1, tzinfo=UTC).timestamp()) * 10**9}, "spans[0].start_time_unix_nano"),
    ({"end_time_unix_nano": 2**64 - 1}, "spans[0].end_time_unix_nano"),
])  # fmt: skip
def test_wrong_ids_and_out_of_range_times_get_400_naming_the_field(serve: Any, fields: dict[str, Any], named: str) -> None:
    server = serve()
    status, _, reply = post(server, "/v1/traces", one_span_request(**fields))
    assert status == 400 and named in status_message(reply), status_message(reply)
    as_json = otlp_json(ExportTraceServiceRequest.FromString(one_span_request(**fields)))
    status, _, reply = post(server, "/v1/traces", as_json, "application/json")
    assert status == 400 and named in json.loads(reply)["message"]
    assert post(server, "/v1/traces", one_span_request())[0] == 200
    assert server.wait_rows("otel_traces", 1) == 1 and server.count("otel_traces") == 1  # nothing of the bad ones stored


def test_grpc_log_records_with_wrong_ids_are_invalid_argument_naming_the_field(serve: Any) -> None:
    import grpc
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    server = serve()
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=time.time_ns(), trace_id=b"\x01" * 5)
    record.body.string_value = "hello"
    export = grpc.insecure_channel(server.grpc).unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
    with pytest.raises(grpc.RpcError) as refused:
        export(request.SerializeToString(), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "log_records[0].trace_id: 5 bytes, must be 0 or 16" in (refused.value.details() or "")


def test_deep_nesting_is_400_on_both_encodings(serve: Any) -> None:
    server = serve()
    deep_json = b'{"resourceSpans": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    status, _, reply = post(server, "/v1/traces", deep_json, "application/json")
    assert status == 400 and "nested too deeply" in json.loads(reply)["message"]
    request = ExportTraceServiceRequest.FromString(one_span_request())
    value = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
    for _ in range(200):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    status, _, reply = post(server, "/v1/traces", request.SerializeToString())
    assert status == 400 and "malformed protobuf" in status_message(reply)
    assert "Traceback" not in server.log_path.read_text()


# --- 5. safe defaults, said out loud -----------------------------------------------------------------------


def test_beyond_loopback_without_a_token_refuses_to_start_unless_insecure(serve: Any, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="refusing to listen on 0.0.0.0 without a token"):
        serve("--host", "0.0.0.0", workdir=tmp_path / "refused")
    insecure = serve("--host", "0.0.0.0", "--insecure", workdir=tmp_path / "insecure")
    assert "without a token (--insecure)" in insecure.log_path.read_text()
    tokened = serve("--host", "0.0.0.0", token="tok", workdir=tmp_path / "tokened")
    assert post(tokened, "/v1/traces", traces_body(1))[0] == 200


def test_healthz_without_the_token_says_only_ok_or_degraded(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "down"
    fault.touch()
    server = serve("--fault-file", str(fault), token="tok")
    assert post(server, "/v1/traces", traces_body(3))[0] == 200
    wait_for(lambda: server.health() == {"status": "degraded"}, what="a bare degraded")
    with urllib.request.urlopen(urllib.request.Request(f"{server.http}/healthz", headers=server.auth_headers()), timeout=10) as response:
        detail = json.loads(response.read())
    assert detail["status"] == "degraded" and "fault drill" in detail["store"] and detail["backlog_items"] == 3
    fault.unlink()
    wait_for(lambda: server.health() == {"status": "ok"}, what="a bare ok")


# --- 6. property-based: no input gets a 5xx, a crash or unbounded memory ---------------------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    """One serve for every generated input (and the file the generated queries aim at)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    (workdir / "victim.txt").write_text(SECRET)
    server = ServeProcess(workdir, "--max-body-mb", "1", "--max-decoded-mb", "2").start()
    try:
        yield server, workdir / "victim.txt"
    finally:
        assert server.proc is not None and server.proc.poll() is None  # never crashed
        assert server.rss_bytes("VmHWM") < 1 << 30
        server.kill9()


def _mutated(body: bytes, data: st.DataObject) -> bytes:
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(body) - 1, 0)), st.integers(0, 255)), max_size=6))
    out = bytearray(body)
    for index, value in flips:
        out[index] = value
    return bytes(out[: data.draw(st.integers(0, len(out)))])


JSON_KEYS = ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "startTimeUnixNano", "events", "links", "resourceLogs",
             "scopeLogs", "logRecords", "body", "attributes", "name", "value", "arrayValue"]  # fmt: skip


def _json_nodes(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=3)


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.sampled_from(["ab" * 8, "zz", "0" * 32])
json_bodies = st.recursive(json_leaves, _json_nodes, max_leaves=25).map(lambda v: json.dumps(v).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_otlp_body_gets_a_5xx(fuzzed: tuple[ServeProcess, Path], data: st.DataObject) -> None:
    server, _ = fuzzed
    kind = data.draw(st.sampled_from(["bytes", "mutated", "json"]))
    body = (data.draw(st.binary(max_size=600)) if kind == "bytes" else data.draw(json_bodies) if kind == "json"
            else _mutated(traces_body(3), data))  # fmt: skip
    encoding = data.draw(st.sampled_from(["", "gzip", "gzip-truncated", "deflate"]))
    if encoding.startswith("gzip"):
        body = gzip.compress(body)[: None if encoding == "gzip" else data.draw(st.integers(0, 30))]
    headers = {"Content-Encoding": encoding.split("-")[0]} if encoding else {}
    status, _, _ = post(server, "/v1/traces", body, "application/json" if kind == "json" else "application/x-protobuf", headers)
    event(f"{kind} {encoding or 'plain'}: {status}")
    assert status in (200, 400, 413, 415), (kind, encoding, body[:80])


sql_fragments = st.sampled_from([
    "SELECT", "1", "*", "count()", "FROM", "WHERE", "IN", "AS x", "UNION ALL", "(", ")", ",", ";", "--", "/*", "*/", "#", "\n", "'", "`",
    '"', "$$", "\\", "{p:String}", "numbers(3)", "system.one", "system.disks", "otel_traces", "file('{victim}', 'LineAsString')",
    "`file`('{victim}', 'LineAsString')", "url('http://127.0.0.1:1/x', 'CSV', 'a String')", "INTO OUTFILE '{out}'", "TRUNCATE",
    "SETTINGS max_threads = 1", "FORMAT JSON", "SET limit = 1", "USE system", "KILL QUERY WHERE 1", "SYSTEM STOP MERGES",
    "CREATE TEMPORARY TABLE t (a Int) ENGINE = File(CSV)", "DESCRIBE TABLE", "SHOW TABLES", "EXPLAIN", "WITH", "view(", "file(",
])  # fmt: skip


sources = st.sampled_from(["numbers(3)", "system.one", "system.disks", "system.tables", "otel_traces", "file('{victim}', 'LineAsString')",
                           "`url`('http://127.0.0.1:1/x', 'CSV', 'a String')", "(SELECT 1)", "view(SELECT * FROM file('{victim}'))",
                           "merge('system', 'disks')", "values('a Int', 1, 2)"])  # fmt: skip
expressions = st.sampled_from(["1", "*", "count()", "file('{victim}')", "{p:String}", "getSetting('readonly')", "1 IN system.disks",
                               "(SELECT 2)", "toString(now())"])  # fmt: skip
tails = st.sampled_from(["", "LIMIT 1", "FORMAT JSON", "INTO OUTFILE '{out}'", "INTO OUTFILE '{out}' TRUNCATE FORMAT CSV",
                         "SETTINGS readonly = 0", "UNION ALL SELECT 1", "/* c */", "-- c", "; SELECT 1", "WHERE 1"])  # fmt: skip
statements = st.one_of(
    st.builds("SELECT {} FROM {} {}".format, expressions, sources, tails),
    st.lists(st.one_of(sql_fragments, st.text(max_size=8)), min_size=1, max_size=10).map(" ".join),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements, post_it=st.booleans())
def test_no_statement_gets_a_5xx_writes_a_file_or_reads_one(fuzzed: tuple[ServeProcess, Path], statement: str, post_it: bool) -> None:
    server, victim = fuzzed
    out = victim.with_name("out.txt")
    sql = statement.replace("{victim}", str(victim)).replace("{out}", str(out))
    if post_it:
        status, reply = ask(server, method="POST", body=sql.encode("utf-8", "surrogatepass"), params={"param_p": "v"})
    else:
        status, reply = ask(server, sql.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), params={"param_p": "v"})
    event(f"status {status}")
    assert status in (200, 400, 403, 404), (sql, status, reply[:300])
    assert SECRET.encode() not in reply and not out.exists() and victim.read_text() == SECRET


def test_grpc_checks_the_token_before_it_takes_in_the_message(serve: Any) -> None:
    import grpc

    server = serve("--max-decoded-mb", "1", token="tok")
    export = grpc.insecure_channel(server.grpc).unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as refused:  # over the size limit too: the token is what it is refused for
        export(b"\x00" * (8 << 20), metadata=(("authorization", "Bearer wrong"),), timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as too_large:
        export(b"\x00" * (8 << 20), metadata=(("authorization", "Bearer tok"),), timeout=30)
    assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert export(traces_body(2), metadata=(("authorization", "Bearer tok"),), timeout=30) == b""
    assert server.wait_rows("otel_traces", 2) == 2
