"""A real `driftline serve` in a subprocess, on free loopback ports, for tests and the benchmark.

It owns its own embedded store directory (chDB allows one per process). Start-up is awaited by
polling its --ready-file and then /healthz against a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # polling interval, not synchronisation: the condition decides
        delay = min(delay * 1.5, 0.5)


class ServeProcess:
    """One `driftline serve` subprocess; start() waits until it answers /healthz.

    `env` is the environment it starts in (default this process's), e.g. one whose PYTHONPATH puts
    another revision of driftline first (bench_serve --baseline)."""

    def __init__(self, workdir: Path, *extra: str, store: str | None = None, token: str | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.workdir = workdir
        self.env = env
        self.store = store or f"chdb://{workdir / 'store'}"
        self.extra = list(extra)
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.log_path = workdir / "serve.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ready['http_port']}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.ready['grpc_port']}"

    @property
    def query_url(self) -> str:
        """The store URL other processes use while this serve holds the store."""
        url = str(self.ready["query_url"])
        return url.replace("http://", f"http://default:{self.token}@", 1) if self.token else url

    def start(self, timeout: float = 90.0) -> ServeProcess:
        ready_file = self.workdir / "ready.json"
        ready_file.unlink(missing_ok=True)
        args = [DRIFTLINE, "serve", "--store", self.store, "--http-port", "0", "--grpc-port", "0", "--query-port", "0",
                "--ready-file", str(ready_file), *self.extra]  # fmt: skip
        if self.token and "--token-file" not in self.extra:
            args += ["--token", self.token]
        env = {k: v for k, v in (self.env or os.environ).items() if not k.startswith(("DRIFTLINE_", "OTEL_"))}
        # temporary files the store writes go with the test's folder, not into /tmp; it is also where
        # test_serve_security looks for files a request must not leave behind
        env["TMPDIR"] = str(self.workdir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=log, env=env)

        def started() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            return ready_file.exists()

        wait_for(started, timeout=timeout, what="serve to listen")
        self.ready = json.loads(ready_file.read_text())
        wait_for(lambda: self.health() is not None, timeout=timeout, what="/healthz")
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.http}/healthz", timeout=5) as response:
                return dict(json.loads(response.read()))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, keyed by their full name with labels."""
        request = urllib.request.Request(f"{self.http}/metrics", headers=self.auth_headers())
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Query the store through serve's read endpoint, as any other process would."""
        from driftline.collector import connect

        with connect(self.query_url) as store:
            return store.rows(sql, parameters)

    def count(self, table: str, where: str = "1") -> int:
        return int(self.rows(f"SELECT count() FROM {table} WHERE {where}")[0][0])

    def wait_rows(self, table: str, expected: int, *, where: str = "1", timeout: float = 120.0) -> int:
        """Wait until `table` holds at least `expected` rows; returns the count."""
        return int(wait_for(lambda: (n := self.count(table, where)) >= expected and n, timeout=timeout, what=f"{expected} rows in {table}"))

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain) and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def cpu_seconds(self) -> float:
        """CPU time it has used so far (user + system, all threads: Python and the engine)."""
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """Resident memory now (VmRSS), or its peak so far (field="VmHWM")."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0
