"""A real headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol.

Just enough of the protocol to open a local file, wait for it to load, collect what the page
logged as errors, evaluate a JavaScript expression and take a screenshot. Every wait is on a
protocol message with a deadline, never a sleep.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket
from serve_process import wait_for

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
)  # fmt: skip
_LISTENING = re.compile(r"DevTools listening on (ws://[^\s]+)")


def find_chromium() -> str | None:
    """The Chromium executable (Debian package `chromium`), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser process; `open()` a page, then read what it did."""

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="driftline-chromium-")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "TMPDIR": self._profile.name},  # its singleton socket too goes with the profile
        )  # fmt: skip
        self.port = self._wait_listening()
        self._ws: websocket.WebSocket | None = None
        self._next_id = 0
        self.errors: list[str] = []

    def _wait_listening(self) -> int:
        assert self.process.stderr is not None
        deadline = time.monotonic() + self.timeout
        for line in self.process.stderr:  # Chromium prints the endpoint on stderr once it listens
            match = _LISTENING.search(line)
            if match:
                return int(match.group(1).split(":")[2].split("/")[0])
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"chromium did not start (exit code {self.process.poll()})")

    def open(self, path: Path, *, width: int = 1200, height: int = 900) -> None:
        """Load a local file and wait for its load event; errors it logs land in `self.errors`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=self.timeout) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        self._ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True)
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=path.resolve().as_uri())
        self._wait_event("Page.loadEventFired")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile are recorded)."""
        assert self._ws is not None
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def _wait_event(self, method: str) -> None:
        while self._receive().get("method") != method:
            pass

    def _receive(self) -> dict[str, Any]:
        assert self._ws is not None
        message: dict[str, Any] = json.loads(self._ws.recv())
        self._record(message)
        return message

    def _record(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url', '')})")

    def close(self) -> None:
        """Stop the browser and every helper process it started, then remove its profile. The
        helpers (crashpad, utility processes) outlive the main process for a moment and write into
        the profile: removing it before they are gone failed once ("Directory not empty")."""
        if self._ws is not None:
            self._ws.close()
        group = self.process.pid  # its own session: the browser and its helpers, nothing else
        _signal_group(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(group, signal.SIGKILL)  # whatever of it still runs is about to lose its profile
        self.process.wait()
        wait_for(lambda: not _running_in_group(group), timeout=10, what="chromium's processes to exit")
        self._profile.cleanup()


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass  # every process of the group has exited


def _running_in_group(group: int) -> list[int]:
    """The processes of a process group that are still running (not zombies: an exited helper
    whose new parent has not reaped it writes nothing), read from /proc."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state != "Z":
            running.append(int(entry.name))
    return running
