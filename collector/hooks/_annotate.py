"""Explicit change annotations: deploys, prompt publishes, index rebuilds, model switches.

An annotation is a `driftline.change` span, so it travels whatever way the app's spans travel
(OTLP to a receiver or collector, or straight into the store) and the `changes` view picks it up.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from driftline.collector import _names as n
from driftline.collector.hooks._calls import _tracer

__all__ = ["annotate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _nanos(at: datetime) -> int:
    """Exact ns since the epoch (float seconds lose the microseconds); naive times are UTC."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1000


def change_attributes(kind: str, target: str, version: str | None, description: str, author: str | None) -> dict[str, str]:
    """Validated attributes of a change span."""
    if kind not in n.CHANGE_KINDS:
        raise ValueError(f"change kind must be one of {', '.join(n.CHANGE_KINDS)}, not {kind!r}")
    if not target:
        raise ValueError("a change needs a target: what changed (a prompt, an index, a model alias, a service)")
    attrs = {n.CHANGE_KIND: kind, n.CHANGE_TARGET: target, n.CHANGE_DESCRIPTION: description}
    if version:
        attrs[n.CHANGE_VERSION] = version
    if author:
        attrs[n.CHANGE_AUTHOR] = author
    return attrs


def annotate(
    kind: str,
    target: str,
    *,
    version: str | None = None,
    description: str = "",
    author: str | None = None,
    at: datetime | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Record that something changed (now, or `at` a past moment; naive means UTC) as a change annotation."""
    attrs = change_attributes(kind, target, version, description, author)
    when = _nanos(at) if at else time.time_ns()
    span = _tracer(tracer_provider).start_span(n.CHANGE_SPAN, kind=SpanKind.INTERNAL, attributes=attrs, start_time=when,
                             context=trace.set_span_in_context(trace.INVALID_SPAN))  # fmt: skip
    span.end(end_time=when)
