"""Evaluation results as `gen_ai.evaluation.result` events, now or later.

A score given while the judged span is current becomes an event on it. A score that arrives
later (a user's thumbs-down, an offline judge) names the judged trace and span ids; it travels
on a short `driftline.evaluation` span linked to the judged one, and the llm_scores view files
it under the judged ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, TraceFlags

from driftline.collector import _names as n
from driftline.collector.hooks._calls import _tracer

__all__ = ["record_score"]


def _event_attributes(name: str, value: float | None, label: str | None, explanation: str | None) -> dict[str, Any]:
    if value is None and label is None:
        raise ValueError("a score needs a value, a label, or both")
    attrs: dict[str, Any] = {n.GEN_AI_EVALUATION_NAME: name}
    if value is not None:
        attrs[n.GEN_AI_EVALUATION_SCORE_VALUE] = float(value)
    if label is not None:
        attrs[n.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if explanation:
        attrs[n.GEN_AI_EVALUATION_EXPLANATION] = explanation
    return attrs


def _parse_id(text: str, digits: int, what: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        value = 0
    if len(text) != digits or value == 0:
        raise ValueError(f"{what} must be {digits} hex digits, not {text!r}")
    return value


def record_score(
    name: str,
    *,
    value: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    clock: Callable[[], int] = time.time_ns,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Record an evaluation of the current GenAI span, or of a past one named by its ids."""
    attrs = _event_attributes(name, value, label, explanation)
    if trace_id is None and span_id is None:
        span = trace.get_current_span()
        if not span.is_recording():
            raise ValueError("record_score() outside a recording span needs trace_id and span_id of the judged call")
        span.add_event(n.EVENT_EVALUATION_RESULT, attrs, timestamp=clock())
        return
    if trace_id is None or span_id is None:
        raise ValueError("a later score needs both trace_id and span_id")
    judged = SpanContext(_parse_id(trace_id, 32, "trace_id"), _parse_id(span_id, 16, "span_id"), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))  # fmt: skip
    now = clock()
    span = _tracer(tracer_provider).start_span(n.SCORE_SPAN, links=[Link(judged)], start_time=now, context=trace.set_span_in_context(trace.INVALID_SPAN))
    span.add_event(n.EVENT_EVALUATION_RESULT, attrs, timestamp=now)
    span.end(end_time=now)
