"""`driftline serve`'s own counters, rendered in the Prometheus text format for /metrics.

A handful of counters and one latency histogram; no client library needed for that.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["ServeMetrics"]

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """Thread-safe counters: items received/spooled/stored/replayed, rejections by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self._latency = [0] * (len(_LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._families: dict[str, tuple[str, str, Callable[[], Mapping[str, int]]]] = {}

    def add(self, name: str, value: int = 1) -> None:
        """Bump a counter: received, spooled, stored, replayed, truncated (items or values)."""
        with self._lock:
            self.counts[name] += value

    def reject(self, reason: str, signal: str, items: int = 1) -> None:
        """Count a refused request (or its items) under a short machine-readable reason."""
        with self._lock:
            self.rejected[(reason, signal)] += items

    def observe_insert(self, seconds: float) -> None:
        with self._lock:
            index = next((i for i, bound in enumerate(_LATENCY_BUCKETS) if seconds <= bound), len(_LATENCY_BUCKETS))
            self._latency[index] += 1
            self._latency_sum += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (queue depth, spool bytes)."""
        self._gauges[name] = (help_text, read)

    def family(self, name: str, help_text: str, label: str, read: Callable[[], Mapping[str, int]]) -> None:
        """Register a counter kept elsewhere, one sample per label value, read at scrape time."""
        self._families[name] = (help_text, label, read)

    def render(self) -> str:
        """The Prometheus text exposition of everything above."""
        lines: list[str] = []
        with self._lock:
            for name, help_text in (
                ("received", "spans, log records and metric points accepted (acknowledged)"),
                ("spooled", "items made durable in the spool before acknowledgement"),
                ("stored", "items inserted into the store"),
                ("replayed", "items inserted from a backlog: after an outage or a restart"),
                ("truncated_values", "attribute values or bodies cut to the length limit"),
                ("insert_failures", "inserts that failed and are retried from the spool"),
                ("dead_lettered", "items the store kept refusing, set aside in the dead letters (not stored)"),
            ):
                lines += [f"# HELP driftline_serve_{name}_total {help_text}", f"# TYPE driftline_serve_{name}_total counter"]
                lines.append(f"driftline_serve_{name}_total {self.counts[name]}")
            lines += ["# HELP driftline_serve_rejected_total requests or items refused, by reason",
                      "# TYPE driftline_serve_rejected_total counter"]  # fmt: skip
            lines += [f'driftline_serve_rejected_total{{reason="{r}",signal="{s}"}} {n}' for (r, s), n in sorted(self.rejected.items())]
            lines += ["# HELP driftline_serve_insert_seconds time per insert into the store",
                      "# TYPE driftline_serve_insert_seconds histogram"]  # fmt: skip
            running = 0
            for bound, count in zip((*_LATENCY_BUCKETS, "+Inf"), self._latency):
                running += count
                lines.append(f'driftline_serve_insert_seconds_bucket{{le="{bound}"}} {running}')
            lines += [f"driftline_serve_insert_seconds_sum {self._latency_sum:.6f}", f"driftline_serve_insert_seconds_count {running}"]
        for name, (help_text, label, counts) in sorted(self._families.items()):
            lines += [f"# HELP driftline_serve_{name}_total {help_text}", f"# TYPE driftline_serve_{name}_total counter"]
            lines += [f'driftline_serve_{name}_total{{{label}="{value}"}} {count}' for value, count in sorted(counts().items())]
        for name, (help_text, read) in sorted(self._gauges.items()):
            lines += [f"# HELP driftline_serve_{name} {help_text}", f"# TYPE driftline_serve_{name} gauge", f"driftline_serve_{name} {read()}"]
        return "\n".join(lines) + "\n"
