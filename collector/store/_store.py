"""Open the store from one URL: `chdb:///dir` (embedded) or `http(s)://…` (a ClickHouse server).

Both go through clickhouse-connect, so the SQL, the parameter binding and the result types are
the same. Backend differences are fields of `Capabilities`, never isinstance checks.

Limits of the embedded engine (chDB): one process per data directory. driftline takes an
advisory lock file in the directory so a second process gets a clear message naming the holder
(and, when the holder is `driftline serve`, the http:// URL it serves the store on) instead of
the engine's opaque error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from driftline.collector._config import store_url
from driftline.collector._errors import ConfigError, StoreError, StoreUnavailable

if TYPE_CHECKING:
    import pandas
    from clickhouse_connect.driver.client import Client

__all__ = ["Capabilities", "Store", "connect", "redact_url"]

LOCK_FILE = "driftline.lock"
_EMBEDDED_EXTRA = "pip install 'driftline[embedded]'"
INSERT_SETTINGS: Mapping[str, Any] = {"query_plan_enable_optimizations": 0}
"""Under every insert's own settings. The materialized views run their SELECT over each inserted
block, planned anew each time: optimising those plans (filters pushed down, steps merged) cost
more than it saves on one block (about 6% of an export's CPU time, bench/bench_export.py)."""


@dataclass(frozen=True)
class Capabilities:
    """What the backend behind a Store can do; callers branch on these fields."""

    embedded: bool
    data_dir: Path | None
    server_version: str


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")  # text only: a malformed port must not raise here
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))


class Store:
    """A connection to the driftline store; the one way code talks to ClickHouse."""

    def __init__(self, client: Client, url: str, capabilities: Capabilities, lock: _DirLock | None = None) -> None:
        self.client = client
        self.url = redact_url(url)
        self.capabilities = capabilities
        self._lock = lock

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection and, for the embedded store, its directory lock."""
        self.client.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None, *, settings: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT … SELECT)."""
        with _wrapped(sql):
            return self.client.command(sql, parameters=dict(parameters or {}), settings=dict(settings or {}))

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query; values are bound server-side as {name:Type}."""
        with _wrapped(sql):  # result_rows reads the response lazily: keep it inside
            rows = self.client.query(sql, parameters=dict(parameters or {})).result_rows
            # The driver types rows as Sequence; they are tuples already, and tuple() of a tuple is itself.
            return [tuple(row) for row in rows]

    def df(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pandas.DataFrame:
        """Run a query and return a small aggregate as a DataFrame."""
        with _wrapped(sql):
            return self.client.query_df(sql, parameters=dict(parameters or {}))

    def insert(self, table: str, columns: Sequence[Sequence[Any]], names: Sequence[str], *, settings: Mapping[str, Any] | None = None) -> None:
        """Columnar insert: one sequence per column, in `names` order."""
        with _wrapped(f"INSERT INTO {table}"):
            self.client.insert(table, list(columns), column_names=list(names), column_oriented=True, settings={**INSERT_SETTINGS, **(settings or {})})

    def table_exists(self, name: str) -> bool:
        """Whether a table or view of that name exists in the current database."""
        rows = self.rows("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {n:String}", {"n": name})
        return bool(rows[0][0])


@contextlib.contextmanager
def _wrapped(sql: str) -> Iterator[None]:
    """Turn driver errors into StoreError, keeping ClickHouse's code and name."""
    from clickhouse_connect.driver.exceptions import Error, OperationalError

    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(f"store unreachable: {_first_line(exc)}", code=exc.code, name=exc.name) from exc
    except Error as exc:
        raise StoreError(_first_line(exc), code=exc.code, name=exc.name) from exc


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"')(]+)")
_HTTP_STATUS = re.compile(r"HTTP (?:status|response)? ?code:? ?(\d{3})", re.I)


def _transport_reason(exc: BaseException) -> str:
    """The short human reason inside a driver's transport error (connection refused, 401, ...)."""
    text = str(exc)
    errno = _ERRNO.search(text)
    if errno:
        return errno.group(1).strip().lower()
    status = _HTTP_STATUS.search(text)
    if status:
        return f"HTTP {status.group(1)}" + (" (check the user and password)" if status.group(1) in ("401", "403") else "")
    return _first_line(exc)[:200]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str | None = None, *, connect_timeout: float = 5.0) -> Store:
    """Open the store at `url` (else DRIFTLINE_STORE, else the embedded default)."""
    resolved = store_url(url)
    scheme = urlsplit(resolved).scheme
    if scheme == "chdb":
        return _connect_embedded(resolved)
    if scheme in ("http", "https"):
        return _connect_server(resolved, connect_timeout)
    raise ConfigError(
        f"unsupported store URL {redact_url(resolved)!r}: use chdb:///path/to/dir (embedded) "
        "or http(s)://user:password@host:8123/database (ClickHouse server)"
    )


_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def embedded_database(url: str) -> str | None:
    """The `?database=NAME` of a chdb:// URL (several stores can share one engine directory)."""
    names = parse_qs(urlsplit(url).query).get("database")
    if not names:
        return None
    if not _DATABASE_NAME.match(names[0]):
        raise ConfigError(f"database name {names[0]!r} in {url!r}: use letters, digits and underscores")
    return names[0]


def embedded_dir(url: str) -> Path:
    """The data directory a chdb:// URL names (chdb:///abs/dir or chdb://relative/dir)."""
    parts = urlsplit(url)
    raw = parts.netloc + parts.path
    if not raw or raw in ("memory", ":memory:"):
        raise ConfigError(f"store URL {url!r} names no directory: use chdb:///path/to/dir")
    return Path(raw).expanduser().resolve()


def _connect_embedded(url: str) -> Store:
    try:
        import chdb  # noqa: F401  (only to give the right message when it is missing)
    except ImportError:
        raise ConfigError(f"the embedded store ({url}) needs the chdb engine: {_EMBEDDED_EXTRA}") from None
    import clickhouse_connect

    data_dir = embedded_dir(url)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the store directory {data_dir}: {exc.strerror}") from None
    database = embedded_database(url)
    try:
        lock = _lock_dir(data_dir)
    except StoreUnavailable as held:
        endpoint = held_by_endpoint(url)
        if endpoint is None:
            raise
        return _connect_through_serve(endpoint, held)
    try:
        client = clickhouse_connect.get_client(dsn=f"chdb://{data_dir}")
        if database:
            client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
            client.database = database
    except Exception as exc:
        lock.release()
        raise StoreUnavailable(f"cannot open the embedded store in {data_dir}: {_first_line(exc)}") from exc
    caps = Capabilities(embedded=True, data_dir=data_dir, server_version=str(client.server_version))
    return Store(client, f"chdb://{data_dir}" + (f"?database={database}" if database else ""), caps, lock)


class _DirLock:
    """This process's hold on an embedded store directory, shared by its Store objects."""

    def __init__(self, data_dir: Path, handle: IO[str]) -> None:
        self.data_dir = data_dir
        self.handle = handle
        self.users = 1

    def write(self, holder: Mapping[str, Any]) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps(dict(holder)))
        self.handle.flush()

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            _held_here.pop(self.data_dir, None)
            self.handle.close()


_held_here: dict[Path, _DirLock] = {}
_held_guard = threading.Lock()


def _lock_dir(data_dir: Path) -> _DirLock:
    """Take the directory's lock (shared within this process), or explain who holds it."""
    with _held_guard:
        held = _held_here.get(data_dir)
        if held is not None:
            held.users += 1
            return held
        lock = _DirLock(data_dir, _flock(data_dir))
        lock.write({"pid": os.getpid()})
        _held_here[data_dir] = lock
        return lock


def _flock(data_dir: Path) -> IO[str]:
    handle = open(data_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _read_holder(handle.read())
        handle.close()
        raise StoreUnavailable(_held_message(data_dir, holder)) from None
    return handle


def announce_endpoint(store: Store, endpoint: str) -> None:
    """Record in the lock file the http:// URL other processes can reach this store through."""
    if store._lock is not None:
        store._lock.write({"pid": os.getpid(), "endpoint": endpoint})


def _read_holder(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _held_message(data_dir: Path, holder: Mapping[str, Any]) -> str:
    who = f"process {holder['pid']}" if "pid" in holder else "another process"
    if holder.get("endpoint"):
        return (
            f"the embedded store in {data_dir} is held by {who} (driftline serve); "
            f"query it through that process: --store {holder['endpoint']}"
        )
    return (
        f"the embedded store in {data_dir} is in use by {who}; chDB allows one process per directory. "
        "Stop that process, or run `driftline serve` and point commands at its --store http://127.0.0.1:PORT"
    )


def held_by_endpoint(url: str) -> str | None:
    """If a chdb:// store is held by `driftline serve`, the http:// URL it serves it on."""
    lock_path = embedded_dir(url) / LOCK_FILE
    if not lock_path.exists():
        return None
    endpoint = _read_holder(lock_path.read_text(encoding="utf-8")).get("endpoint")
    return str(endpoint) if endpoint else None


def _connect_through_serve(endpoint: str, held: StoreUnavailable) -> Store:
    """The embedded store is held by `driftline serve`: read through its query endpoint instead."""
    try:
        return _connect_server(endpoint, 5.0)
    except StoreUnavailable as exc:
        raise StoreUnavailable(
            f"{held}; connecting there failed: {exc}. If serve runs with --token, "
            f"put the token in the URL: {endpoint.replace('http://', 'http://default:TOKEN@', 1)}"
        ) from None


def _connect_server(url: str, connect_timeout: float) -> Store:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import Error

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:  # not a number, or out of range
        raise ConfigError(f"store URL {redact_url(url)!r}: {str(exc).lower()}") from None
    if not parts.hostname:
        raise ConfigError(f"store URL {redact_url(url)!r} names no host: use http(s)://user:password@host:8123/database")
    try:
        client = clickhouse_connect.get_client(dsn=url, connect_timeout=connect_timeout, send_receive_timeout=300)
    except Error as exc:
        where = f"{parts.hostname}:{port or (8443 if parts.scheme == 'https' else 8123)}"
        raise StoreUnavailable(
            f"cannot reach ClickHouse at {where}: {_transport_reason(exc)}. "
            "Is the server (or `driftline serve`) running? Check --store / DRIFTLINE_STORE",
            code=exc.code,
            name=exc.name,
        ) from None
    caps = Capabilities(embedded=False, data_dir=None, server_version=str(client.server_version))
    return Store(client, url, caps)
