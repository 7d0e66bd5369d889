"""OTLP/HTTP receiver: POST /v1/traces, /v1/logs, /v1/metrics; GET /healthz and /metrics.

The standard library's ThreadingHTTPServer is enough here: OTLP clients send few, large
requests, so per-request overhead is noise next to decoding (see bench/bench_serve.py).

Outcomes, per the OTLP/HTTP specification:
    200  accepted (durable in the spool); body is the Export*ServiceResponse, with a partial
         success for refused metrics
    400  malformed protobuf or JSON, ids of the wrong length or times the store cannot hold (the
         field is named in the google.rpc.Status body), a bad Content-Length or chunk framing, a
         truncated compressed body
    401  --token set and no matching `Authorization: Bearer` header (checked before the body is read)
    404  unknown path          405  wrong method          411  no length and not chunked
    408  the body did not arrive within --request-timeout of the request's first byte
    413  body over --max-body (by its Content-Length, before reading), or decompressing past
         --max-decoded (stopped there: no bombs)
    415  content type other than application/x-protobuf / application/json, or unknown encoding
    429  too many requests being decoded (Retry-After); a slot is taken once the body is in
    503  spool full or failing, or bodies being received past their memory budget (Retry-After)
429 and 503 read (and drop) a Content-Length body so the connection stays open: clients retry on it.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2

from ._ingest import Ingester, Overloaded, Unavailable
from ._otlp_decode import BadPayload
from ._otlp_service import ENDPOINTS, export

__all__ = ["BadLength", "BoundedServer", "HttpHandler", "HttpLimits", "OtlpHttpServer", "TooLarge", "bearer_ok", "content_length", "read_body"]

_log = logging.getLogger("driftline.serve.http")

_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_GRPC_CODE: Final = {400: 3, 401: 16, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 429: 8, 503: 14}


@dataclass(frozen=True)
class HttpLimits:
    """Size and concurrency bounds of the HTTP receiver, in bytes and requests."""

    max_body: int = 16 << 20
    max_decoded: int = 64 << 20
    max_in_flight: int = 8
    retry_after_seconds: int = 2
    request_seconds: float = 30.0  # from a request's first byte to its whole body, however it trickles in
    max_connections: int = 512
    max_connections_per_client: int = 128
    receive_budget: int = 256 << 20  # bytes of bodies held at once, received and not yet spooled


class TooLarge(ValueError):
    """The body (or what it decompresses to) is over its limit."""


class BadLength(ValueError):
    """Content-Length is not a non-negative decimal number, or the chunked framing is malformed: 400."""


def bearer_ok(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the token (constant-time comparison)."""
    if token is None:
        return True
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class Busy(Exception):
    """Bodies being received take more memory than the receive budget allows: 503, retry later."""


class ReceiveBudget:
    """Bytes of request bodies held at once, across connections, counted as they arrive: a client that
    trickles holds little, and many fast large bodies at once get 503 instead of the process's memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            if self.used + size > self.limit:
                raise Busy(f"request bodies being received are at the server's limit of {self.limit} bytes; retry later")
            self.used += size

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


def read_body(rfile: Any, headers: Any, limit: int, budget: ReceiveBudget | None = None) -> bytes:
    """The request body, Content-Length or chunked; raises TooLarge past `limit` bytes, BadLength for
    bad framing, Busy past the budget. With a budget, the body's bytes stay taken from it: the caller
    gives them back once done with the body."""
    taken = [0]
    try:
        if _chunked(headers):
            return _read_chunked(rfile, limit, budget, taken)
        length = content_length(headers)
        if length > limit:
            raise TooLarge(f"body of {length} bytes is over the limit of {limit}")
        return _read_exactly(rfile, length, budget, taken)
    except BaseException:
        if budget is not None:
            budget.give(taken[0])
        raise


def _read_exactly(rfile: Any, length: int, budget: ReceiveBudget | None, taken: list[int]) -> bytes:
    """`length` bytes, read as they arrive (64 KiB at a time, each taken from the budget)."""
    parts: list[bytes] = []
    remaining = length
    while remaining:
        size = min(remaining, 1 << 16)
        if budget is not None:
            budget.take(size)
            taken[0] += size
        chunk = rfile.read(size)
        if not chunk:
            raise BadLength(f"the body ended after {length - remaining} of {length} bytes")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def content_length(headers: Any) -> int:
    """The declared body length, 0 when absent; BadLength for anything but one decimal number (a negative
    one made `read` take everything the client sent)."""
    values = headers.get_all("Content-Length") or []
    text = values[0].strip() if len(values) == 1 else "0" if not values else "x"
    if not text.isascii() or not text.isdigit():
        raise BadLength(f"bad Content-Length {', '.join(values)[:40]!r}: send one non-negative decimal number")
    return int(text)


def _read_chunked(rfile: Any, limit: int, budget: ReceiveBudget | None, taken: list[int]) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        if not line:
            raise BadLength("the chunked body ended before its last chunk")
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise BadLength(f"bad chunk size {line[:40]!r}") from None
        if size < 0:
            raise BadLength(f"bad chunk size {line[:40]!r}")
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > limit:
            raise TooLarge(f"chunked body is over the limit of {limit} bytes")
        parts.append(_read_exactly(rfile, size, budget, taken))
        rfile.readline(1024)


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo gzip/deflate, stopping as soon as the output passes `limit` (decompression bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise TooLarge(f"body is over the limit of {limit} bytes")
        return body
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadPayload(f"cannot decompress the {encoding} body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"body decompresses past the limit of {limit} bytes")
    if not inflater.eof:
        raise BadPayload(f"the {encoding} body is truncated (it ends before the compressed stream does)")
    return out


class BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on connections, in all and per client address: a thread
    each, so a flood of connections must not take the process's threads (or its memory) with it.
    Connections past a cap are closed at once, before anything is read."""

    daemon_threads = True
    request_queue_size = 128
    max_connections = 512
    max_connections_per_client = 128
    request_seconds = 30.0

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: Counter[str] = Counter()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        with self._connections_lock:
            admitted = self._connections.total() < self.max_connections and self._connections[client] < self.max_connections_per_client
            if admitted:
                self._connections[client] += 1
        if not admitted:
            _log.info("connection refused: at the connection cap", extra={"client": client})
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or timed out) mid-answer is routine, at info; anything else is a bug."""
        if isinstance(sys.exc_info()[1], OSError):
            _log.info("connection ended early", extra={"client": str(client_address[0]), "error": str(sys.exc_info()[1])})
        else:
            _log.exception("request failed", extra={"client": str(client_address[0])})

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections[str(client_address[0])] -= 1
                if self._connections[str(client_address[0])] <= 0:
                    del self._connections[str(client_address[0])]


class OtlpHttpServer(BoundedServer):
    """The OTLP/HTTP listener; one thread per connection, bounded work in flight."""

    def __init__(self, address: tuple[str, int], ingester: Ingester, *, token: str | None, limits: HttpLimits,
                 health: Callable[[], dict[str, Any]]) -> None:  # fmt: skip
        self.ingester = ingester
        self.token = token
        self.limits = limits
        self.health = health
        self.in_flight = threading.BoundedSemaphore(limits.max_in_flight)
        self.budget = ReceiveBudget(limits.receive_budget)
        self.max_connections = limits.max_connections
        self.max_connections_per_client = limits.max_connections_per_client
        self.request_seconds = limits.request_seconds
        super().__init__(address, _Handler)


class _DeadlineReader(io.RawIOBase):
    """A connection's reads, each allowed only what is left of the request's deadline. A socket timeout
    alone restarts with every byte, so a client trickling a byte at a time could hold a request for
    ever; here the clock starts at the request's first byte (idle keep-alive waits get `idle`)."""

    def __init__(self, sock: socket.socket, idle: float, request_seconds: float) -> None:
        super().__init__()
        self.sock, self.idle, self.request_seconds = sock, idle, request_seconds
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(self.idle if self.deadline is None else self.deadline - now)
        received = self.sock.recv_into(buffer)
        if received and self.deadline is None:
            self.deadline = now + self.request_seconds
        return received


class _Writer(io.BufferedIOBase):
    """Whole writes to the connection (sendall), with the idle timeout, not what is left of a deadline."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__()
        self.sock, self.timeout = sock, timeout

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)
        return len(data)


class HttpHandler(BaseHTTPRequestHandler):
    """What serve's HTTP listeners share: HTTP/1.1 keep-alive, access lines at debug, one way to answer."""

    protocol_version = "HTTP/1.1"
    server_version = "driftline"
    timeout = 60  # seconds a connection may sit idle or stall mid-body before it is closed
    disable_nagle_algorithm = True  # headers and body go out as two writes: with Nagle, the body waited ~40 ms for an ACK

    server: BoundedServer

    def setup(self) -> None:
        """The socket's reads go through the request deadline (see _DeadlineReader)."""
        self.connection = self.request
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.reader = _DeadlineReader(self.connection, float(self.timeout or 60), self.server.request_seconds)
        self.rfile = io.BufferedReader(self.reader, 1 << 16)
        self.wfile = _Writer(self.connection, float(self.timeout or 60))

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.reader.deadline = None  # the next request's clock starts at its first byte

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug(format, *args)

    def log_error(self, format: str, *args: Any) -> None:
        """The standard library's words for a client that timed out or sent a bad request line: the
        client's problem, at info (never a traceback)."""
        _log.info(format, *args)

    def timed_out(self) -> None:
        """408 for a request whose body did not arrive by its deadline, then close."""
        _log.info("request timed out", extra={"client": self.client_address[0], "path": self.path})
        self.close_connection = True
        try:
            self.send(408, b"request timed out\n", {"Content-Type": "text/plain"})
        except OSError:
            pass

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _Handler(HttpHandler):
    server: OtlpHttpServer

    def do_GET(self) -> None:
        if self.path == "/healthz":
            health = self.server.health()
            if not bearer_ok(self.headers.get("Authorization"), self.server.token):  # engine errors and sizes are for the token's holders
                health = {"status": health["status"]}
            self._send(200 if health["status"] != "failing" else 503, json.dumps(health).encode(), _JSON)
        elif self.path == "/metrics":
            if not bearer_ok(self.headers.get("Authorization"), self.server.token):
                return self._fail(401, "missing or wrong bearer token", json_body=True, close=False)
            self._send(200, self.server.ingester.metrics.render().encode(), "text/plain; version=0.0.4")
        else:
            self._fail(404, f"no such path {self.path!r}", json_body=True, close=False)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        endpoint = ENDPOINTS.get(path[len("/v1/"):]) if path.startswith("/v1/") else None
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        json_body = content_type == _JSON
        signal = endpoint.name if endpoint else "unknown"
        if endpoint is None:
            return self._refuse(404, "not_found", signal, f"no such path {path!r}: use /v1/traces, /v1/logs or /v1/metrics", json_body)
        if not bearer_ok(self.headers.get("Authorization"), self.server.token):
            return self._refuse(401, "unauthorized", signal, "missing or wrong bearer token", json_body)
        if content_type not in (_PROTOBUF, _JSON):
            return self._refuse(415, "unsupported_media_type", signal, f"unsupported Content-Type {content_type!r}: use {_PROTOBUF} or {_JSON}", json_body)
        if "Content-Length" not in self.headers and not _chunked(self.headers):
            return self._refuse(411, "length_required", signal, "send Content-Length or a chunked body", json_body)
        if _declared_length(self.headers) > self.server.limits.max_body:  # never 503: a retry cannot help
            return self._refuse(413, "too_large", signal, f"body of {_declared_length(self.headers)} bytes is over the limit of "
                                f"{self.server.limits.max_body}", json_body)  # fmt: skip
        if self.server.ingester.saturated(max(0, _declared_length(self.headers))):
            return self._refuse(503, "spool_full", signal, "spool backlog at its limit; retry later", json_body,
                                close=not self._skip_body(), retry_after=self.server.limits.retry_after_seconds)  # fmt: skip
        raw = self._receive(signal, json_body)
        if raw is None:
            return
        try:
            self._decode_and_export(endpoint, raw, json_body)
        finally:
            self.server.budget.give(len(raw))

    def _receive(self, signal: str, json_body: bool) -> bytes | None:
        """The body as sent, holding no slot while it arrives (slow clients cost a thread, not a slot);
        None once a refusal is answered."""
        try:
            return read_body(self.rfile, self.headers, self.server.limits.max_body, self.server.budget)
        except TimeoutError:
            self.server.ingester.metrics.reject("timeout", signal)
            self.timed_out()
        except TooLarge as exc:
            self._refuse(413, "too_large", signal, str(exc), json_body)
        except BadLength as exc:
            self._refuse(400, "bad_request", signal, str(exc), json_body)
        except Busy as exc:
            self._refuse(503, "busy", signal, str(exc), json_body, retry_after=self.server.limits.retry_after_seconds)
        return None

    def _decode_and_export(self, endpoint: Any, raw: bytes, json_body: bool) -> None:
        """Decompress, parse and spool, inside one of --max-in-flight slots (the CPU- and memory-heavy part)."""
        if not self.server.in_flight.acquire(blocking=False):
            return self._refuse(429, "too_many_requests", endpoint.name, "too many requests in flight; retry later", json_body, close=False)
        try:
            self._export(endpoint, raw, json_body)
        except Exception:  # noqa: BLE001 - a bug must cost one request an answer, never the process or other clients
            _log.exception("request failed", extra={"path": self.path})
            self._refuse(500, "internal_error", endpoint.name, "internal error; see the server log", json_body)
        finally:
            self.server.in_flight.release()

    def _skip_body(self) -> bool:
        """Read and drop a Content-Length body within the limit, so a client told to back off keeps its
        connection: under a flood, accepting reconnections (a thread each) is what the server ran out of.
        False (the caller closes) for chunked or oversized bodies, or one that does not arrive in time."""
        remaining = _declared_length(self.headers)
        if not 0 <= remaining <= self.server.limits.max_body:
            return False
        try:
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))  # small: a flood may hold many connections
                if not chunk:
                    return False
                remaining -= len(chunk)
        except TimeoutError:
            return False
        return True

    def _export(self, endpoint: Any, raw: bytes, json_body: bool) -> None:
        limits, signal = self.server.limits, endpoint.name
        try:
            body = decode_content(raw, self.headers.get("Content-Encoding") or "", limits.max_decoded)
            response = export(self.server.ingester, endpoint, body, json_body=json_body)
        except TooLarge as exc:
            return self._refuse(413, "too_large", signal, str(exc), json_body, close=False)
        except BadPayload as exc:
            return self._refuse(400, "bad_payload", signal, str(exc), json_body, close=False)
        except ValueError as exc:  # unknown Content-Encoding
            return self._refuse(415, "unsupported_media_type", signal, str(exc), json_body, close=False)
        except Overloaded as exc:
            return self._refuse(503, "spool_full", signal, str(exc), json_body, close=False, retry_after=exc.retry_after, counted=True)
        except Unavailable as exc:
            return self._refuse(503, "unavailable", signal, str(exc), json_body, close=False, retry_after=limits.retry_after_seconds, counted=True)
        self._send(200, _encode(response, json_body), _JSON if json_body else _PROTOBUF)

    def _refuse(self, status: int, reason: str, signal: str, message: str, json_body: bool, *, close: bool = True,
                retry_after: int | None = None, counted: bool = False) -> None:  # fmt: skip
        """Count (unless the ingester did, per item) and answer a refusal. An unread body means closing."""
        if not counted:
            self.server.ingester.metrics.reject(reason, signal)
        if status == 429:
            retry_after = self.server.limits.retry_after_seconds
        self._fail(status, message, json_body=json_body, close=close, retry_after=retry_after)

    def _fail(self, status: int, message: str, *, json_body: bool, close: bool, retry_after: int | None = None) -> None:
        body = _encode(status_pb2.Status(code=_GRPC_CODE.get(status, 2), message=message), json_body)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="driftline"'
        self.close_connection = close or self.close_connection
        self._send(status, body, _JSON if json_body else _PROTOBUF, headers)
        if close:
            self._linger()

    def _linger(self) -> None:
        """After refusing a body we did not read: stop sending and drain briefly (bounded in time and
        memory), so the client reads the answer instead of a connection reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send(status, body, {"Content-Type": content_type, **(headers or {})})


def _declared_length(headers: Any) -> int:
    """The Content-Length of a body sent whole, else -1 (chunked, missing or malformed)."""
    length = headers.get("Content-Length") or ""
    return int(length) if length.strip().isdigit() and not _chunked(headers) else -1


def _chunked(headers: Any) -> bool:
    return "chunked" in (headers.get("Transfer-Encoding") or "").lower()


def _encode(message: Message, json_body: bool) -> bytes:
    if json_body:
        return str(json_format.MessageToJson(message, indent=None)).encode()
    return bytes(message.SerializeToString())
