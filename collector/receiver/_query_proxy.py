"""A read-only ClickHouse HTTP interface onto the embedded store `driftline serve` holds.

chDB allows one process per data directory, so while `serve` ingests, every other process
(the CLI, Grafana, a notebook) reads through this endpoint with an ordinary
`http://127.0.0.1:PORT/DB` store URL. It speaks as much of the ClickHouse HTTP protocol as
clickhouse-connect uses: the query in the URL and/or body (plain or form-encoded), `database`,
`param_*` bound values, `default_format` or a trailing FORMAT clause, request bodies in
gzip/deflate/lz4/zstd, and gzip or lz4 responses.

Read-only, enforced by the engine: queries run on chDB handles with `readonly = 2` (reads and
setting changes only; `readonly` itself cannot be changed back), so INSERT, DDL and ALTER fail
whatever their spelling, also inside multi-statement bodies. Table functions that reach files,
processes or the network (file, url, s3, remote, executable, ...) are refused as well, so the
endpoint cannot read the serving user's files. It listens on loopback only, behind --token.
"""

from __future__ import annotations

import base64
import hmac
import queue
import re
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlsplit

from ._http import HttpHandler, TooLarge, bearer_ok, read_body

if TYPE_CHECKING:  # chdb is the `embedded` extra, imported when a proxy starts
    from chdb.state.sqlitelike import Connection

__all__ = ["QueryEndpoint"]

_TRANSPORT_PARAMS: Final = frozenset({
    "query", "database", "default_format", "user", "password", "session_id", "session_timeout", "session_check",
    "query_id", "quota_key", "compress", "decompress", "wait_end_of_query", "client_protocol_version", "role",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "enable_http_compression", "buffer_size",
})  # fmt: skip
_TRAILING_FORMAT: Final = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_SETTING: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OUTSIDE_FUNCTIONS: Final = re.compile(
    r"\b(file|url|urlCluster|s3|s3Cluster|gcs|hdfs|hdfsCluster|azureBlobStorage|azureBlobStorageCluster|remote|"
    r"remoteSecure|cluster|clusterAllReplicas|mysql|postgresql|sqlite|mongodb|redis|executable|jdbc|odbc|input|"
    r"python|iceberg|deltaLake|hudi|fileCluster|loop)\s*\(",
    re.IGNORECASE,
)
_STRINGS_AND_COMMENTS: Final = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|/\*.*?\*/", re.DOTALL)
_MORE_STATEMENTS: Final = re.compile(r";\s*\S")
_READONLY_CODE: Final = 164
_INSERT: Final = re.compile(r"\s*INSERT\b", re.IGNORECASE)
_READ_ONLY: Final = (
    "driftline serve's query endpoint is read-only (write statements are refused); to write to a served "
    "embedded store, stop `driftline serve` first, or send the data to serve as OTLP"
)
_MAX_QUERY: Final = 8 << 20


class QueryError(Exception):
    """A ClickHouse-style error: code, HTTP status, message."""

    def __init__(self, code: int, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class QueryEndpoint(ThreadingHTTPServer):
    """The read endpoint; a small pool of read-only chDB handles on the store's directory."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], data_dir: Path, *, token: str | None, handles: int = 2) -> None:
        self.token = token
        self.data_dir = data_dir
        self._handles: queue.Queue[Connection] = queue.Queue()
        for _ in range(handles):
            self._handles.put(self._open())
        self._current_db: dict[int, str] = {}
        super().__init__(address, _QueryHandler)

    def _open(self) -> Connection:
        from chdb.state import connect  # what chdb.connect calls; this one is annotated

        conn = connect(str(self.data_dir))
        conn.query("SET readonly = 2")
        return conn

    @contextmanager
    def handle(self) -> Iterator[Connection]:
        """A pooled handle; one that saw an error is replaced, so no state leaks to the next query."""
        conn = self._handles.get()
        try:
            yield conn
        except Exception:
            self._current_db.pop(id(conn), None)
            conn.close()
            conn = self._open()
            raise
        finally:
            self._handles.put(conn)

    def run(self, sql: str, *, database: str | None, params: dict[str, str], settings: dict[str, str], fmt: str) -> bytes:
        """Run one read-only statement; raises QueryError the way ClickHouse would answer."""
        if _MORE_STATEMENTS.search(_STRINGS_AND_COMMENTS.sub("''", sql)):
            raise QueryError(62, 400, "Syntax error: multi-statements are not allowed")
        if _OUTSIDE_FUNCTIONS.search(sql):
            raise QueryError(_READONLY_CODE, 403, "driftline serve's query endpoint refuses table functions that read files, processes or the network")
        clause = ", ".join(f"{k} = '{_quote(v)}'" for k, v in settings.items())
        with self.handle() as conn:
            try:
                if database and self._current_db.get(id(conn)) != database:
                    conn.query(f"USE `{database}`")
                    self._current_db[id(conn)] = database
                if clause:
                    conn.query(f"SET {clause}")
                return bytes(conn.query(sql, fmt, params=params).bytes() or b"")
            except Exception as exc:  # noqa: BLE001 - chDB raises plain errors carrying ClickHouse's text
                raise _as_query_error(str(exc)) from None

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        while not self._handles.empty():
            self._handles.get().close()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _as_query_error(text: str) -> QueryError:
    text = text[text.find("Code: "):] if "Code: " in text else text
    match = re.match(r"Code: (\d+)", text)
    code = int(match.group(1)) if match else 1000
    if code == _READONLY_CODE:
        return QueryError(code, 403, f"{_READ_ONLY}: {text}")
    return QueryError(code, 400 if code in (47, 60, 62, 36, 43, 46, 49, 53, 16, 81, 215) else 500, text)


class _QueryHandler(HttpHandler):
    server: QueryEndpoint

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/ping", "/") and "query=" not in self.path:
            return self.send(200, b"Ok.\n", {"Content-Type": "text/plain"})
        self._query(b"")

    def do_POST(self) -> None:
        try:
            body = read_body(self.rfile, self.headers, _MAX_QUERY)
        except TooLarge as exc:
            self.close_connection = True
            return self._error(QueryError(1000, 413, str(exc)))
        self._query(body)

    def _query(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if not self._authorized(params):
            return self._error(QueryError(516, 401, "driftline serve: authentication failed: pass the serve token as the password or a bearer token"))
        try:
            if _INSERT.match(params.get("query", "")):  # refused before its (binary) data is decoded
                raise QueryError(_READONLY_CODE, 403, _READ_ONLY)
            sql, params = self._statement(body, params)
            if _INSERT.match(_STRINGS_AND_COMMENTS.sub(" ", sql)):
                raise QueryError(_READONLY_CODE, 403, _READ_ONLY)
            fmt_match = _TRAILING_FORMAT.search(sql)
            fmt = fmt_match.group(1) if fmt_match else params.get("default_format", "TabSeparated")
            if fmt_match:
                sql = sql[: fmt_match.start()]
            bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
            settings = {k: v for k, v in params.items() if k not in _TRANSPORT_PARAMS and not k.startswith("param_") and _SETTING.match(k)}
            database = params.get("database") or (parts.path.strip("/") or None)
            if database is not None and not _SETTING.match(database):
                raise QueryError(81, 400, f"bad database name {database!r}")
            result = self.server.run(sql, database=database, params=bound, settings=settings, fmt=fmt)
        except QueryError as exc:
            return self._error(exc)
        self._respond(result, fmt, params)

    def _authorized(self, params: dict[str, str]) -> bool:
        token = self.server.token
        if token is None:
            return True
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                password = base64.b64decode(auth[6:].strip()).decode().partition(":")[2]
            except ValueError:
                return False
            return hmac.compare_digest(password.encode(), token.encode())
        if auth:
            return bearer_ok(auth, token)
        key = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        return hmac.compare_digest(key.encode(), token.encode())

    def _statement(self, body: bytes, params: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The SQL text: URL `query` followed by the body (as ClickHouse does), or form fields."""
        body = _decompress(body, self.headers.get("Content-Encoding") or "")
        content_type = (self.headers.get("Content-Type") or "").lower()
        if content_type.startswith("application/x-www-form-urlencoded"):
            params = {**params, **dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))}
            body = b""
        elif content_type.startswith("multipart/"):
            raise QueryError(1000, 400, "driftline serve's query endpoint does not take multipart requests")
        text = params.get("query", "")
        if body:
            text = f"{text}\n{body.decode('utf-8', 'replace')}" if text else body.decode("utf-8", "replace")
        if not text.strip():
            raise QueryError(62, 400, "empty query")
        return text, params

    def _respond(self, result: bytes, fmt: str, params: dict[str, str]) -> None:
        headers = {"Content-Type": "text/plain; charset=UTF-8" if fmt.startswith(("TabSeparated", "TSV", "CSV")) else "application/octet-stream",
                   "X-ClickHouse-Format": fmt, "X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
                   "X-ClickHouse-Server-Display-Name": "driftline-serve", "X-ClickHouse-Summary": '{"read_rows":"0","written_rows":"0"}'}  # fmt: skip
        accepted = [e.strip().split(";")[0] for e in (self.headers.get("Accept-Encoding") or "").lower().split(",")]
        if params.get("enable_http_compression") == "1" or "enable_http_compression" not in params:
            result, encoding = _compress(result, accepted)
            if encoding:
                headers["Content-Encoding"] = encoding
        self.send(200, result, headers)

    def _error(self, exc: QueryError) -> None:
        message = str(exc) if str(exc).startswith("Code: ") else f"Code: {exc.code}. DB::Exception: {exc}"
        self.send(exc.status, (message + "\n").encode(), {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(exc.code)})


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "deflate"):
            return zlib.decompress(body, wbits=47)
        if encoding == "lz4":
            import lz4.frame

            return bytes(lz4.frame.decompress(body))
        if encoding == "zstd":
            from clickhouse_connect.driver.compression import _zstd_decompress

            return bytes(_zstd_decompress(body))
    except Exception as exc:  # noqa: BLE001 - each codec has its own error type; all mean a bad body
        raise QueryError(1000, 400, f"cannot decompress the {encoding} request body: {exc}") from None
    raise QueryError(1000, 415, f"unsupported Content-Encoding {encoding!r}")


def _compress(result: bytes, accepted: list[str]) -> tuple[bytes, str | None]:
    if "lz4" in accepted:
        try:
            import lz4.frame
        except ImportError:
            pass
        else:
            return lz4.frame.compress(result), "lz4"
    if "gzip" in accepted:
        deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
        return deflater.compress(result) + deflater.flush(), "gzip"
    return result, None
