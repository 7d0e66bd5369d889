"""Shared fixtures: a real embedded ClickHouse engine, clean env and tracer globals per test.

chDB runs one engine directory per process, so the whole session shares one engine and each
test gets its own ClickHouse database in it (`chdb:///dir?database=t_…`). Tests that need a
store of their own directory run driftline in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util._once import Once

from driftline.collector import ReleaseContextProcessor, Store, StoreSpanExporter, connect, migrate


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strip the variables driftline and the OTel SDK read, so tests see only what they set."""
    for name in list(os.environ):
        if name.startswith(("DRIFTLINE_", "OTEL_")):
            monkeypatch.delenv(name)


def reset_tracing() -> None:
    """Forget the global TracerProvider so the next instrument() starts from nothing."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def tracing_globals() -> Iterator[None]:
    """Every test starts and ends without a global TracerProvider."""
    reset_tracing()
    yield
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
    reset_tracing()


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB engine directory this test process uses."""
    return tmp_path_factory.mktemp("engine")


@pytest.fixture
def store_url(engine_dir: Path) -> str:
    """A URL naming a fresh, empty database in the session's engine."""
    return f"chdb://{engine_dir}?database=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store in a fresh database; dropped after the test."""
    opened = connect(store_url)
    migrate(opened)
    yield opened
    database = opened.client.database
    opened.command(f"DROP DATABASE IF EXISTS {database}")
    opened.close()


@pytest.fixture
def traced(store: Store) -> TracerProvider:
    """A TracerProvider (not global) that stamps the release context and writes each span into
    `store` as it ends, through the real StoreSpanExporter: read the tables right after."""
    provider = TracerProvider(resource=Resource.create({"service.name": "test-svc", "service.version": "9.9.9"}))
    provider.add_span_processor(ReleaseContextProcessor())
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    return provider


_HOLDER = """
import sys
from driftline.collector import connect
from driftline.collector.store._store import announce_endpoint
store = connect(sys.argv[1])
if len(sys.argv) > 2:
    announce_endpoint(store, sys.argv[2])
print("ready", flush=True)
sys.stdin.read()  # hold the directory until the test closes our stdin
"""


@contextlib.contextmanager
def holding(url: str, endpoint: str | None = None) -> Iterator[subprocess.Popen[str]]:
    """Another process that has the embedded store at `url` open, until the block ends."""
    argv = [sys.executable, "-c", _HOLDER, url, *([endpoint] if endpoint else [])]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        yield proc
    finally:
        proc.communicate(timeout=60)


@pytest.fixture
def held_store(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(url, pid): an embedded store directory held open by another process."""
    url = f"chdb://{tmp_path / 'held'}"
    with holding(url) as proc:
        yield url, proc.pid


@pytest.fixture
def hold() -> Callable[..., contextlib.AbstractContextManager[subprocess.Popen[str]]]:
    """`with hold(url, endpoint=None) as proc:` another process holds that embedded store."""
    return holding


@contextlib.contextmanager
def _scenario_database(engine_dir: Path, scenario: Any) -> Iterator[Store]:
    opened = connect(f"chdb://{engine_dir}?database=s_{uuid.uuid4().hex[:12]}")
    migrate(opened)
    scenario.write(opened)
    try:
        yield opened
    finally:
        opened.command(f"DROP DATABASE IF EXISTS {opened.client.database}")
        opened.close()


@pytest.fixture(scope="module")
def silent_update_store(engine_dir: Path) -> Iterator[tuple[Store, Any]]:
    """(store, scenario): the silent provider update of tests/incident_scenarios.py, written once per
    module (the incident tests only read it). `scenario.marks['t0']` is when the provider switched."""
    from incident_scenarios import silent_provider_update

    scenario = silent_provider_update()
    with _scenario_database(engine_dir, scenario) as opened:
        yield opened, scenario


@pytest.fixture(scope="module")
def burst_store(engine_dir: Path) -> Iterator[tuple[Store, Any]]:
    """(store, scenario): a 429 storm with a wave of cancellations (tests/incident_scenarios.py), once per module."""
    from incident_scenarios import rate_limit_burst

    scenario = rate_limit_burst()
    with _scenario_database(engine_dir, scenario) as opened:
        yield opened, scenario


@pytest.fixture(scope="module")
def costly_store(engine_dir: Path) -> Iterator[tuple[Store, Any]]:
    """(store, scenario): a prompt version that triples the cost and gets half its streams cancelled, once per module."""
    from incident_scenarios import costly_prompt

    scenario = costly_prompt()
    with _scenario_database(engine_dir, scenario) as opened:
        yield opened, scenario


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A real headless Chromium (Debian's package, installed by `make test`) over the DevTools protocol."""
    from browser import Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium is not installed: run `bash scripts/system-deps.sh chromium`")
    browser = Chromium(executable)
    yield browser
    browser.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start real `driftline serve` subprocesses (tests/serve_process.py) on free ports; killed after the test."""
    from serve_process import ServeProcess

    started: list[ServeProcess] = []

    def start(*extra: str, workdir: Path | None = None, token: str | None = None, store: str | None = None) -> ServeProcess:
        where = workdir or tmp_path / f"serve{len(started)}"
        where.mkdir(parents=True, exist_ok=True)
        process = ServeProcess(where, *extra, token=token, store=store)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        if process.proc is not None:
            process.proc.kill()
            process.proc.wait(30)


@pytest.fixture(scope="session")
def scenario_store(engine_dir: Path) -> Iterator[tuple[Store, list[Any]]]:
    """A store holding one generated incident of every cause (and one without any), written once
    per session through driftline.analyzers.evaluation._scenarios; read-only for the tests that use it."""
    from driftline.analyzers.evaluation._scenarios import generate, write

    opened = connect(f"chdb://{engine_dir}?database=scenarios_{uuid.uuid4().hex[:8]}")
    migrate(opened)
    scenarios = generate(9, seed=11, per_minute=20)
    write(opened, scenarios)
    yield opened, scenarios
    opened.command(f"DROP DATABASE IF EXISTS {opened.client.database}")
    opened.close()
