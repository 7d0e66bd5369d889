"""A read-only ClickHouse HTTP interface onto the embedded store `driftline serve` holds.

chDB allows one process per data directory, so while `serve` ingests, every other process
(the CLI, Grafana, a notebook) reads through this endpoint with an ordinary
`http://127.0.0.1:PORT/DB` store URL. It speaks as much of the ClickHouse HTTP protocol as
clickhouse-connect and Grafana's ClickHouse data source use: the query in the URL and/or body
(plain or form-encoded), `database`, `param_*` bound values, `default_format` or a trailing
FORMAT clause, request bodies in gzip/deflate/lz4/zstd, and gzip or lz4 responses.

Read-only, in the engine's terms (see `_query_gate`): each statement is parsed by the engine and
only reads of the store's tables and harmless table functions run, on chDB handles with
`readonly = 2`. Settings come from URL parameters on an allow-list, are set for one request and
reset after it; time, memory and result-size limits are set on every handle and a request can
only lower them. Who may ask: requests with a Host (and, from browsers, an Origin) naming
loopback or a configured name, no cross-site browser fetches, and the token (checked before the
body is read) when serve has one. Bodies are bounded as sent and as decompressed.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from ._http import BadLength, BoundedServer, HttpHandler, TooLarge, bearer_ok, read_body
from ._query_gate import Refused, Statement, denied_table_functions, vet

if TYPE_CHECKING:  # chdb is the `embedded` extra, imported when a proxy starts
    from chdb.state.sqlitelike import Connection

__all__ = ["LOOPBACK_NAMES", "QueryEndpoint", "QueryLimits"]

_TRANSPORT_PARAMS: Final = frozenset({
    "query", "database", "default_format", "user", "password", "session_id", "session_timeout", "session_check",
    "query_id", "quota_key", "compress", "decompress", "wait_end_of_query", "client_protocol_version", "role",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "enable_http_compression", "buffer_size",
})  # fmt: skip
_SETTINGS: Final = frozenset({
    "cancel_http_readonly_queries_on_client_close", "max_result_rows", "result_overflow_mode", "max_block_size",
    "max_threads", "extremes", "join_use_nulls", "date_time_output_format", "session_timezone", "max_rows_to_read",
    "max_bytes_to_read", "read_overflow_mode", "timeout_overflow_mode", "prefer_column_name_to_alias",
    "enable_analyzer", "allow_experimental_analyzer", "use_client_time_zone",
})  # fmt: skip
"""URL settings a request may set (for itself only); others are ignored, as a read needs none of them."""
_SETTING_PREFIXES: Final = ("output_format_",)
_SETTINGS_DENIED: Final = frozenset({"output_format_schema"})
"""output_format_schema names a file the engine writes the schema to."""
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT: Final = re.compile(r"\s*INSERT\b", re.IGNORECASE)
_READ_ONLY: Final = (
    "driftline serve's query endpoint is read-only (write statements are refused); to write to a served "
    "embedded store, stop `driftline serve` first, or send the data to serve as OTLP"
)
_HIDDEN_DATABASES: Final = frozenset({"system", "information_schema"})
_MAX_QUERY: Final = 8 << 20
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host and Origin names the endpoint answers by default (DNS rebinding gets a name of its own)."""


@dataclass(frozen=True)
class QueryLimits:
    """Limits every query runs under (a request may lower, never raise them), and who may ask."""

    timeout_seconds: int = 30
    max_memory: int = 512 << 20
    max_result: int = 32 << 20  # result blocks; the formatted answer is held twice (engine, Python), text ~3x the blocks
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def ceilings(self) -> dict[str, int]:
        """The engine settings these limits are, by name."""
        return {"max_execution_time": self.timeout_seconds, "max_memory_usage": self.max_memory, "max_result_bytes": self.max_result}


class QueryError(Exception):
    """A ClickHouse-style error: code, HTTP status, message."""

    def __init__(self, code: int, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class QueryEndpoint(BoundedServer):
    """The read endpoint; a small pool of read-only chDB handles on the store's directory."""

    def __init__(self, address: tuple[str, int], data_dir: Path, *, token: str | None, limits: QueryLimits | None = None,
                 handles: int = 2) -> None:  # fmt: skip
        self.token = token
        self.data_dir = data_dir
        self.limits = limits or QueryLimits()
        self.hosts = LOOPBACK_NAMES | {h.lower() for h in self.limits.allowed_hosts}
        self._handles: queue.Queue[Connection] = queue.Queue()
        for _ in range(handles):
            self._handles.put(self._open())
        self._current_db: dict[int, str] = {}
        with self.handle() as conn:
            self._denied = denied_table_functions(_text(conn, "SELECT name FROM system.table_functions", {}).splitlines())
        super().__init__(address, _QueryHandler)

    def _open(self) -> Connection:
        from chdb.state import connect  # what chdb.connect calls; this one is annotated

        conn = connect(str(self.data_dir))
        conn.query("SET " + ", ".join(f"{k} = {v}" for k, v in self.limits.ceilings().items()))
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

    def run(self, sql: str, *, database: str | None, params: dict[str, str], settings: dict[str, str], fmt: str) -> tuple[bytes, str]:
        """Vet and run one statement; returns the result and its format, or raises QueryError the way
        ClickHouse would answer."""
        with self.handle() as conn:
            try:
                self._use(conn, database or "default")
                statement = vet(lambda q, p: _text(conn, q, p), sql, params, denied_functions=self._denied, default_format=fmt)
            except Refused as exc:  # nothing ran, nothing changed: the handle stays in the pool as it is
                refusal = QueryError(exc.code, 403, f"{_READ_ONLY}: {exc}")
            except Exception as exc:  # noqa: BLE001 - chDB raises plain errors carrying ClickHouse's text
                raise _as_query_error(str(exc)) from None
            else:
                return self._run_vetted(conn, statement, params, settings)
        raise refusal

    def _run_vetted(self, conn: Connection, statement: Statement, params: dict[str, str], settings: dict[str, str]) -> tuple[bytes, str]:
        """Run a vetted statement with the request's settings, set for it alone."""
        applied: list[str] = []
        try:
            applied = self._apply(conn, settings)
            return bytes(conn.query(statement.sql, statement.fmt, params=params).bytes() or b""), statement.fmt
        except Exception as exc:  # noqa: BLE001 - chDB raises plain errors carrying ClickHouse's text
            raise _as_query_error(str(exc)) from None
        finally:
            if applied:
                self._reset(conn, applied)

    def _use(self, conn: Connection, database: str) -> None:
        """Every request names its database (or gets `default`): a previous request's never carries over."""
        if self._current_db.get(id(conn)) != database:
            conn.query(f"USE `{database}`")
            self._current_db[id(conn)] = database

    def _apply(self, conn: Connection, settings: dict[str, str]) -> list[str]:
        """Set the request's allow-listed settings, limits clamped to the ceilings; returns their names."""
        ceilings = self.limits.ceilings()
        chosen: dict[str, str] = {}
        for name, value in settings.items():
            if name in ceilings:
                chosen[name] = str(_clamp(value, ceilings[name]))
            elif name in _SETTINGS or (name.startswith(_SETTING_PREFIXES) and name not in _SETTINGS_DENIED):
                chosen[name] = value
        if chosen:
            conn.query("SET " + ", ".join(f"{k} = '{_quote(v)}'" for k, v in chosen.items()))
        return list(chosen)

    def _reset(self, conn: Connection, names: list[str]) -> None:
        """Back to the handle's own settings, so nothing a request set reaches the next one."""
        ceilings = self.limits.ceilings()
        conn.query("SET " + ", ".join(f"{k} = {ceilings[k]}" if k in ceilings else f"{k} = DEFAULT" for k in names))

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        while not self._handles.empty():
            self._handles.get().close()


def _text(conn: Connection, sql: str, params: dict[str, str]) -> str:
    return bytes(conn.query(sql, "TSVRaw", params=params).bytes() or b"").decode("utf-8", "replace")


def _clamp(value: str, ceiling: int) -> int:
    """A requested limit, never above the ceiling (0, unlimited to ClickHouse, means the ceiling)."""
    try:
        requested = int(float(value))
    except ValueError:
        return ceiling
    return ceiling if requested <= 0 else min(requested, ceiling)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _as_query_error(text: str) -> QueryError:
    text = text[text.find("Code: "):] if "Code: " in text else text
    gate = text.find(": In scope SELECT formatQuerySingleLine(")  # a syntax error found by the gate: the query, not our wrapper
    if gate >= 0:
        text = text[:gate] + "." + text[text.rfind(" ("):]
    match = re.match(r"Code: (\d+)", text)
    code = int(match.group(1)) if match else 1000
    if code == 164:  # READONLY: the engine's own wall
        return QueryError(code, 403, f"{_READ_ONLY}: {text}")
    if code in (159, 241, 396, 307):  # TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, TOO_MANY_ROWS_OR_BYTES, TOO_MANY_BYTES
        return QueryError(code, 400, f"{text} (serve's query limits: see `driftline serve --help`)")
    return QueryError(code, 400, text)  # the engine refused this query (whatever its reason): the next one is unaffected


class _QueryHandler(HttpHandler):
    server: QueryEndpoint

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/ping", "/") and "query=" not in self.path:
            return self.send(200, b"Ok.\n", {"Content-Type": "text/plain"})
        self._serve(read=False)

    def do_POST(self) -> None:
        self._serve(read=True)

    def _serve(self, *, read: bool) -> None:
        """Who is asking first (Host, Origin, token), then the body, then the statement."""
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        try:
            self._check_caller(params)
            body = self._body() if read else b""
            self._query(body, params)
        except QueryError as exc:
            self._error(exc)
        except TimeoutError:
            self.timed_out()

    def _check_caller(self, params: dict[str, str]) -> None:
        """A web page must not reach the endpoint: by DNS rebinding (a Host of its own), by fetch or
        form (an Origin, Sec-Fetch-Site), or without the token."""
        host = _host_name(self.headers.get("Host") or "127.0.0.1")
        if host not in self.server.hosts:
            raise QueryError(516, 403, f"driftline serve: Host {host!r} is not allowed (loopback names, or serve --allow-host)")
        origin = self.headers.get("Origin")
        if origin is not None and (urlsplit(origin).hostname or "") not in self.server.hosts:
            raise QueryError(516, 403, f"driftline serve: Origin {origin[:100]!r} is not allowed (loopback names, or serve --allow-host)")
        if (self.headers.get("Sec-Fetch-Site") or "none") not in ("none", "same-origin"):
            raise QueryError(516, 403, "driftline serve: cross-site browser requests are not allowed")
        if not self._authorized(params):
            raise QueryError(516, 401, "driftline serve: authentication failed: pass the serve token as the password or a bearer token")

    def _body(self) -> bytes:
        """The request body, bounded as sent and as decompressed (the connection closes after a refusal)."""
        try:
            raw = read_body(self.rfile, self.headers, _MAX_QUERY)
            return _decompress(raw, self.headers.get("Content-Encoding") or "", _MAX_QUERY)
        except TooLarge as exc:
            self.close_connection = True
            raise QueryError(1000, 413, str(exc)) from None
        except BadLength as exc:
            self.close_connection = True
            raise QueryError(1000, 400, str(exc)) from None

    def _query(self, body: bytes, params: dict[str, str]) -> None:
        if _INSERT.match(params.get("query", "")):  # refused before its (binary) data is read as SQL
            raise QueryError(164, 403, _READ_ONLY)
        sql, params = self._statement(body, params)
        if _INSERT.match(sql):  # the gate refuses it too, or cannot parse its data: say why plainly
            raise QueryError(164, 403, _READ_ONLY)
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT_PARAMS and not k.startswith("param_")}
        database = params.get("database") or (urlsplit(self.path).path.strip("/") or None)
        if database is not None and (not _NAME.match(database) or database.lower() in _HIDDEN_DATABASES):
            raise QueryError(81, 400, f"database {database!r} is not served here")
        result, fmt = self.server.run(sql, database=database, params=bound, settings=settings, fmt=params.get("default_format", "TabSeparated"))
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
        """The SQL text: URL `query` followed by the body (as ClickHouse does), or form fields when the
        body is a form (curl's --data-binary 'SELECT 1' is labelled a form too, and is a query)."""
        content_type = (self.headers.get("Content-Type") or "").lower()
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if "query" in fields or any(k.startswith("param_") for k in fields):
                params, body = {**params, **fields}, b""
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


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo the request's Content-Encoding, stopping past `limit` bytes of output (bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        out = _inflate(body, encoding, limit)
    except (TooLarge, QueryError):
        raise
    except Exception as exc:  # noqa: BLE001 - each codec has its own error type; all mean a bad body
        raise QueryError(1000, 400, f"cannot decompress the {encoding} request body: {exc}") from None
    if len(out) > limit:
        raise TooLarge(f"request body decompresses past the limit of {limit} bytes")
    return out


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Up to limit + 1 bytes of output; raises on a truncated body (ClickHouse would not run half a query)."""
    if encoding in ("gzip", "deflate", "x-gzip"):
        decoder: Any = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
        out = decoder.decompress(body, limit + 1)
    elif encoding == "lz4":
        import lz4.frame

        decoder = lz4.frame.LZ4FrameDecompressor()
        out = decoder.decompress(body, max_length=limit + 1)
    elif encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompressor

        decoder = _zstd_decompressor()  # type: ignore[no-untyped-call]
        out = decoder.decompress(body, max_length=limit + 1)
    else:
        raise QueryError(1000, 415, f"unsupported Content-Encoding {encoding!r}")
    if len(out) <= limit and not decoder.eof:
        raise ValueError("the compressed body is truncated")
    return bytes(out)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


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
