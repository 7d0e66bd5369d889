"""The store: one URL picks the backend; every failure to open it is one clear DriftlineError."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from driftline.collector import (
    ConfigError,
    Store,
    StoreError,
    StoreUnavailable,
    connect,
    migrate,
)
from driftline.collector._config import default_store_url, store_url
from driftline.collector.store._migrate import latest_version
from driftline.collector.store._status import status
from driftline.collector.store._store import held_by_endpoint, redact_url

Hold = Callable[..., AbstractContextManager[subprocess.Popen[str]]]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read back, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("url", ["ftp://host/db", "postgres://u:p@h/db", "clickhouse://h:9000", "/just/a/path"])
def test_connect_rejects_unsupported_schemes_naming_both_forms(url: str) -> None:
    with pytest.raises(ConfigError, match=r"chdb:///path/to/dir .* http\(s\)://"):
        connect(url)


def test_connect_rejects_bad_scheme_without_leaking_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        connect("mysql://admin:hunter2@db:3306/x")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url", ["chdb://", "chdb://:memory:"])
def test_connect_rejects_embedded_url_without_directory(url: str) -> None:
    with pytest.raises(ConfigError, match="names no directory"):
        connect(url)


def test_connect_rejects_unsafe_database_name(engine_dir: Path) -> None:
    with pytest.raises(ConfigError, match="letters, digits and underscores"):
        connect(f"chdb://{engine_dir}?database=x;DROP")


def test_connect_unreachable_server_raises_store_unavailable(tmp_path: Path) -> None:
    port = closed_port()
    with pytest.raises(StoreUnavailable) as caught:
        connect(f"http://default:s3cret@127.0.0.1:{port}/llm", connect_timeout=2)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "connection refused" in message.lower()
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://", "names no host"), ("http://u:pw@127.0.0.1:99999/x", "port out of range"), ("https://u:pw@h:port/x", "could not be cast")],
)
def test_connect_rejects_malformed_server_urls_without_leaking_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        connect(url)
    assert ":pw@" not in str(caught.value)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("https://ops:pw@ch.example:8443/llm") == "https://ops:***@ch.example:8443/llm"
    assert redact_url("chdb:///var/lib/driftline") == "chdb:///var/lib/driftline"
    assert redact_url("http://ops@ch:8123") == "http://ops@ch:8123"
    assert redact_url("http://ops:pw@ch:notaport/x") == "http://ops:***@ch:notaport/x"


def test_store_url_precedence_is_argument_then_env_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", str(tmp_path))
    assert store_url() == default_store_url() == f"chdb://{tmp_path / 'store'}"
    monkeypatch.setenv("DRIFTLINE_STORE", "http://env:8123")
    assert store_url() == "http://env:8123"
    assert store_url("chdb:///explicit") == "chdb:///explicit"


def test_embedded_store_held_by_another_process_names_the_holder(held_store: tuple[str, int]) -> None:
    url, pid = held_store
    with pytest.raises(StoreUnavailable) as caught:
        connect(url)
    message = str(caught.value)
    assert f"process {pid}" in message and "one process per directory" in message
    assert "driftline serve" in message


def test_embedded_store_held_by_serve_points_at_its_endpoint(hold: Hold, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'served'}"
    with hold(url, "http://127.0.0.1:18123") as proc:
        with pytest.raises(StoreUnavailable, match=r"--store http://127\.0\.0\.1:18123"):
            connect(url)
        assert held_by_endpoint(url) == "http://127.0.0.1:18123"
        assert f"process {proc.pid}" in str(pytest.raises(StoreUnavailable, connect, url).value)


def test_embedded_store_is_free_again_after_the_holder_exits(hold: Hold, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'reused'}"
    with hold(url):
        pass
    with hold(url):  # would fail to start if the first holder had not released it
        pass


def test_stores_of_one_directory_in_one_process_share_the_engine(engine_dir: Path) -> None:
    first = connect(f"chdb://{engine_dir}?database=share_a_{uuid.uuid4().hex[:8]}")
    second = connect(f"chdb://{engine_dir}?database=share_b_{uuid.uuid4().hex[:8]}")
    try:
        first.close()
        assert second.rows("SELECT 1") == [(1,)]
    finally:
        second.command(f"DROP DATABASE IF EXISTS {second.client.database}")
        second.close()


def test_store_binds_values_server_side(store: Store) -> None:
    hostile = "x'); DROP TABLE otel_traces; --"
    assert store.rows("SELECT {v:String}, {n:UInt32} + 1", {"v": hostile, "n": 41}) == [(hostile, 42)]
    assert store.table_exists("otel_traces")


def test_store_error_keeps_clickhouse_code_and_name(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.rows("SELECT * FROM no_such_table")
    assert (caught.value.code, caught.value.name) == (60, "UNKNOWN_TABLE")
    assert "\n" not in str(caught.value)


def test_store_capabilities_describe_the_embedded_backend(store: Store, engine_dir: Path) -> None:
    caps = store.capabilities
    assert caps.embedded and caps.data_dir == engine_dir.resolve() and caps.server_version[0].isdigit()


def test_status_of_an_empty_store_lists_every_migration_as_pending(store_url: str) -> None:
    with connect(store_url) as fresh:
        info = status(fresh)
        assert (info.schema_version, info.tables) == (0, [])
        assert len(info.pending) == latest_version()
        assert not fresh.table_exists("driftline_migrations"), "status must never write"


def test_status_of_a_migrated_store_lists_tables_with_rows(store: Store) -> None:
    info = status(store)
    assert (info.schema_version, info.expected_version, info.pending) == (latest_version(), latest_version(), [])
    names = {t.name for t in info.tables}
    assert {"otel_traces", "otel_traces_trace_id_ts", "llm_calls", "llm_scores", "changes", "first_seen", "llm_calls_mv"} <= names
    assert next(t for t in info.tables if t.name == "otel_traces").rows == 0


def test_migrate_while_readers_poll_status_never_fails_a_reader(store_url: str) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        with connect(store_url) as reader:
            while not done.is_set():
                try:
                    status(reader)
                except BaseException as exc:
                    errors.append(exc)
                    return

    with connect(store_url) as writer:
        readers = [threading.Thread(target=read) for _ in range(2)]
        for r in readers:
            r.start()
        try:
            applied = migrate(writer)
        finally:
            done.set()
            for r in readers:
                r.join(timeout=60)
        assert [m.version for m in applied] == list(range(1, latest_version() + 1))
        assert errors == []
        assert status(writer).pending == []
        writer.command(f"DROP DATABASE IF EXISTS {writer.client.database}")
