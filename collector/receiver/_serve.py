"""`driftline serve`: wire the store, the spool, the OTLP receivers and the query endpoint.

Start order: open the store (embedded: migrate it; it is ours), start the writer (it replays any
spool backlog first), then listen. Stop order (SIGTERM/SIGINT): stop listening, let in-flight
requests finish, close the spool to new batches, let the writer store the backlog (up to the
drain timeout; what is left stays spooled for the next start), then release the store.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from driftline.collector._config import store_url as resolve_store_url
from driftline.collector._errors import ConfigError, StoreUnavailable
from driftline.collector._redaction import RedactionPolicy, redactor
from driftline.collector.store._migrate import migrate, require_schema
from driftline.collector.store._prices import refresh_prices
from driftline.collector.store._store import Store, announce_endpoint, connect, embedded_database, redact_url

from ._ingest import Ingester, IngestLimits
from ._metrics import ServeMetrics
from ._otlp_redact import OtlpRedactor

__all__ = ["JsonLogFormatter", "ServeConfig", "Server", "default_spool_dir", "run"]

_log = logging.getLogger("driftline.serve")

_STANDARD_LOG_FIELDS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@dataclass(frozen=True)
class ServeConfig:
    """Everything `driftline serve` takes; ports of 0 pick a free port."""

    store_url: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 4318
    grpc_port: int = 4317
    query_port: int = 8124
    token: str | None = None
    spool_dir: Path | None = None
    limits: IngestLimits = field(default_factory=IngestLimits)
    max_body: int = 16 << 20
    max_decoded: int = 64 << 20
    max_in_flight: int = 8
    request_seconds: float = 30.0
    max_connections: int = 512
    max_connections_per_client: int = 128
    drain_seconds: float = 30.0
    fault_file: Path | None = None
    ready_file: Path | None = None
    query_timeout_seconds: int = 30
    query_max_memory: int = 512 << 20
    query_max_result: int = 32 << 20
    allowed_hosts: frozenset[str] = frozenset()
    replay_dead_letters: bool = False
    insecure: bool = False
    redaction: RedactionPolicy | str | Path | bool | None = None
    """The policy applied before the spool: a policy or file, False for none, None for $DRIFTLINE_REDACTION or the default."""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD_LOG_FIELDS})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class Server:
    """A running `driftline serve`: start() listens, stop() drains."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.url = resolve_store_url(config.store_url)
        self.metrics = ServeMetrics()
        self.ports: dict[str, int] = {}
        self.query_url: str | None = None
        self._threads: list[threading.Thread] = []
        self._store: Store | None = None
        self._ingester: Ingester | None = None
        self._redaction: OtlpRedactor | None = None
        self._http: Any = None
        self._grpc: Any = None
        self._query: Any = None

    def start(self) -> None:
        _check_exposure(self.config)
        redacting = redactor(self.config.redaction)  # a bad policy stops serve before it listens or opens anything
        self._redaction = OtlpRedactor(redacting) if redacting is not None else None
        store = self._open_store()
        spool_dir = self.config.spool_dir or default_spool_dir(store)
        self._ingester = Ingester(self.url, spool_dir, limits=self.config.limits, metrics=self.metrics,
                                  fault_file=self.config.fault_file, store=store, redaction=self._redaction)  # fmt: skip
        if self.config.replay_dead_letters:
            self._ingester.replay_dead_letters()
        self._ingester.start()
        self._start_http()
        self._start_grpc()
        if store.capabilities.embedded and self.config.query_port >= 0:
            self._start_query(store)
        self._write_ready_file()
        _log.info("listening", extra={"host": self.config.host, **self.ports, "store": redact_url(self.url),
                                      "query_url": self.query_url, "spool": str(spool_dir), "auth": self.config.token is not None,
                                      "redaction": self._redaction is not None})  # fmt: skip

    def _open_store(self) -> Store:
        if self.url.startswith("chdb:"):
            _bound_engine_allocator()
        store = connect(self.url)
        if self.url.startswith("chdb:") and not store.capabilities.embedded:  # reached through another serve
            store.close()
            raise StoreUnavailable(
                f"the embedded store {redact_url(self.url)} is already served by another `driftline serve` "
                f"(read-only at {store.url}); send OTLP to that one, or stop it first"
            )
        if store.capabilities.embedded:
            migrate(store)
            refresh_prices(store)  # the table the llm_calls view prices calls from (prices extra)
        else:
            require_schema(store)
        self._store = store
        return store

    def _start_http(self) -> None:
        from ._http import HttpLimits, OtlpHttpServer

        assert self._ingester is not None
        limits = HttpLimits(max_body=self.config.max_body, max_decoded=self.config.max_decoded,
                            max_in_flight=self.config.max_in_flight, retry_after_seconds=self.config.limits.retry_after_seconds,
                            request_seconds=self.config.request_seconds, max_connections=self.config.max_connections,
                            max_connections_per_client=self.config.max_connections_per_client)  # fmt: skip
        self._http = OtlpHttpServer((self.config.host, self.config.http_port), self._ingester, token=self.config.token,
                                    limits=limits, health=self._ingester.health)  # fmt: skip
        self.ports["http_port"] = self._http.server_address[1]
        self._spawn(self._http.serve_forever, "driftline-http")

    def _start_grpc(self) -> None:
        if self.config.grpc_port < 0:
            return
        from ._grpc import start_grpc

        assert self._ingester is not None
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self._grpc, self.ports["grpc_port"] = start_grpc(
            f"{host}:{self.config.grpc_port}", self._ingester, token=self.config.token, max_message=self.config.max_decoded,
            max_in_flight=self.config.max_in_flight, retry_after_seconds=self.config.limits.retry_after_seconds,
        )

    def _start_query(self, store: Store) -> None:
        from ._query_proxy import QueryEndpoint, QueryLimits

        assert store.capabilities.data_dir is not None
        limits = QueryLimits(timeout_seconds=self.config.query_timeout_seconds, max_memory=self.config.query_max_memory,
                             max_result=self.config.query_max_result, allowed_hosts=self.config.allowed_hosts)  # fmt: skip
        self._query = QueryEndpoint(("127.0.0.1", self.config.query_port), store.capabilities.data_dir, token=self.config.token, limits=limits)
        port = self._query.server_address[1]
        self.ports["query_port"] = port
        database = embedded_database(self.url)
        self.query_url = f"http://127.0.0.1:{port}" + (f"/{database}" if database else "")
        announce_endpoint(store, self.query_url)
        self._spawn(self._query.serve_forever, "driftline-query")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _write_ready_file(self) -> None:
        if self.config.ready_file is None:
            return
        data = {"pid": os.getpid(), **self.ports, "query_url": self.query_url}
        tmp = self.config.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.config.ready_file)

    def stop(self) -> bool:
        """Stop listening, drain the spool into the store; True if nothing was left spooled."""
        _log.info("stopping: draining the spool", extra={"timeout_s": self.config.drain_seconds})
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait()
        drained = self._ingester.drain(self.config.drain_seconds) if self._ingester is not None else True
        if self._query is not None:
            self._query.close()
        if self._store is not None:
            self._store.close()
        _log.info("stopped", extra={"drained": drained, "left_in_spool": self._ingester.spool.backlog_items if self._ingester else 0})
        return drained


def _check_exposure(config: ServeConfig) -> None:
    """Listening beyond loopback without a token lets anyone who can reach the port write spans (and read
    /healthz, /metrics): refuse, unless the operator says --insecure, and then say so in the log."""
    if config.token is not None or _loopback(config.host):
        return
    if not config.insecure:
        raise ConfigError(f"refusing to listen on {config.host} without a token: give --token or --token-file "
                          "(or --insecure, if the network in front of serve does the authentication)")  # fmt: skip
    _log.warning("listening beyond loopback without a token (--insecure): anyone who reaches the ports can send data",
                 extra={"host": config.host})  # fmt: skip


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_spool_dir(store: Store) -> Path:
    """Next to the embedded store's directory, or ./.driftline/spool for a server store."""
    data_dir = store.capabilities.data_dir
    if data_dir is not None:
        return data_dir.parent / f"{data_dir.name}.spool"
    return Path(".driftline").resolve() / "spool"


_ENGINE_ALLOCATOR: Final = "dirty_decay_ms:1000"


def _bound_engine_allocator() -> None:
    """Have the engine's jemalloc return freed pages after 1 s instead of 5: an insert frees several
    times its group, and five seconds of that stayed resident (peak RSS 948 -> 886 MiB in bench_serve).
    jemalloc reads it once, when chdb loads; a JE_MALLOC_CONF already set wins."""
    if "chdb" not in sys.modules:
        os.environ.setdefault("JE_MALLOC_CONF", _ENGINE_ALLOCATOR)


def run(config: ServeConfig) -> bool:
    """Serve until SIGTERM or SIGINT, then drain; returns whether the spool was emptied."""
    stop = threading.Event()
    server = Server(config)
    try:
        server.start()
    except BaseException as exc:
        server.stop()
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot listen: {exc.strerror or exc}") from None
        raise
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    return server.stop()
