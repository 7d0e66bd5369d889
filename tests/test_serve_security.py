"""`driftline serve` against a hostile client (issue 13): one test per attack, each on a real serve
subprocess on loopback (tests/serve_process.py), ingest through the real OTel SDK exporters.

Every test asserts what the attack was after did not happen (no file written or read, no
connection made, ingest still flowing), not only the status code.
"""

from __future__ import annotations

import gzip
import http.client
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from test_serve import post, send_with, traces_body

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


def test_url_settings_apply_to_one_request_only(serve: Any) -> None:
    server = serve()
    when = "SELECT toDateTime('2024-01-01 00:00:00', 'UTC')"
    for _ in range(4):  # more requests than pooled handles: every handle has served one with settings
        assert ask(server, when, params={"date_time_output_format": "unix_timestamp"}) == (200, b"1704067200\n")
        assert ask(server, "SELECT count() FROM numbers(10)", params={"limit": "1", "readonly": "0"}) == (200, b"10\n")
    for _ in range(4):
        assert ask(server, when) == (200, b"2024-01-01 00:00:00\n")
        assert ask(server, "SELECT getSetting('limit'), getSetting('readonly')") == (200, b"0\t2\n")


def test_a_query_cannot_raise_its_time_or_memory_limit(serve: Any) -> None:
    server = serve("--query-timeout", "2", "--query-max-memory-mb", "128")
    status, reply = ask(server, "SELECT count() FROM numbers_mt(10000000000000)", params={"max_execution_time": "3600"})
    assert status == 400 and b"TIMEOUT_EXCEEDED" in reply
    status, reply = ask(server, "SELECT groupArray(number) FROM numbers(1000000000)", params={"max_memory_usage": "0"})
    assert status == 400 and b"MEMORY_LIMIT_EXCEEDED" in reply
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
