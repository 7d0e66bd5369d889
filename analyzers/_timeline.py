"""The post-mortem timeline: what happened, in time order, each line citing what it rests on.

It merges five sources: annotated changes (`changes`), inferred first appearances (`first_seen`:
a new response model or fingerprint with no annotated model change is flagged as a possible silent
provider update), the change point of every regressed signal, bursts of errors / 429s /
cancellations, and the end of a regression that ended. Every event carries Evidence: the named
query and its parameters, and exemplar trace ids where there are traces to open.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.collector._errors import NoDataError, TooLittleDataError
from driftline.collector.store._store import Store

from ._detect import detect
from ._model import Evidence, Filters, Regression, TimelineEvent, Window
from ._signals import default_bucket, filter_sql, utc
from ._sql import render

__all__ = ["SILENT_PROVIDER_UPDATE", "describe_regression", "require_data", "stamp", "timeline", "window_parameters"]

SILENT_PROVIDER_UPDATE = "possible_silent_provider_update"
"""Flag on a first appearance of a response model or fingerprint that no model change explains."""

_KIND_ORDER = {"change": 0, "first_seen": 1, "change_point": 2, "burst": 3, "recovered": 4}
_PROVIDER_SIDE = ("response_model", "system_fingerprint")
_DIMENSION_WORDS = {
    "request_model": "request model", "response_model": "response model", "system_fingerprint": "system fingerprint",
    "prompt_version": "prompt version", "index_version": "index version", "service_version": "service version",
}  # fmt: skip
_BURSTS = (
    ("errors", "errors", "failed"),
    ("rate_limits", "429 responses", "rate-limited"),
    ("cancellations", "cancellations", "cancelled"),
)
"""(column, what a burst of it is called, what its calls did)."""
BURST_MIN_COUNT = 5
"""A burst holds at least this many events (each of its buckets at least two): a stray failure is not a burst."""
BURST_FACTOR = 3.0
BURST_MIN_EXCESS = 0.05
"""A burst bucket's rate is at least BURST_FACTOR times the window's median and BURST_MIN_EXCESS above it."""


def window_parameters(window: Window, filters: Filters, *, only: tuple[str, ...] | None = None) -> tuple[str, dict[str, Any]]:
    """The `$filters` fragment and the bound values {start, end, f_*} of a window query."""
    where, params = filter_sql(filters) if only is None else filter_sql(filters, only=only)
    return where, {"start": window.start, "end": window.end, **params}


def timeline(
    store: Store,
    window: Window,
    *,
    filters: Filters = Filters(),
    regressions: Sequence[Regression] | None = None,
) -> list[TimelineEvent]:
    """Every event of the window in time order; detects regressions itself unless given them
    (a store too young or small to detect anything still has its changes and bursts to show)."""
    if regressions is None:
        require_data(store, window, filters, now=datetime.now(UTC))
        try:
            regressions = detect(store, window, filters=filters)
        except TooLittleDataError:
            regressions = []
    settle = default_bucket(window, target=120)
    changes = annotated_changes(store, window, filters)
    events = [
        *changes,
        *first_appearances(store, window, filters, settle=settle, model_changes=[c.time for c in changes if "model" in c.flags]),
        *regression_events(regressions, window),
        *bursts(store, window, filters, bucket=settle),
    ]
    return sorted(events, key=lambda e: (e.time, _KIND_ORDER[e.kind]))


def require_data(store: Store, window: Window, filters: Filters, *, now: datetime) -> int:
    """The number of calls in scope; NoDataError saying why when there are none."""
    if not store.table_exists("llm_calls"):
        raise NoDataError(f"the store {store.url} has no driftline tables yet, so no data: run `driftline db migrate` and "
                          "instrument an app (see README), or run `driftline demo`")  # fmt: skip
    where, params = window_parameters(window, filters)
    in_scope, store_calls, first, last = store.rows(render("incident_coverage", filters=where), params)[0]
    if in_scope:
        return int(in_scope)
    span = f"{stamp(window.start)} to {stamp(window.end)}"
    if window.start >= now:
        raise NoDataError(f"the window {span} is in the future: nothing has been recorded there yet")
    if not store_calls:
        raise NoDataError(f"the store {store.url} holds no LLM calls yet: instrument an app (see README) or run `driftline demo`")
    where = ", ".join(f"{k}={v}" for k, v in vars(filters).items() if v is not None)
    raise NoDataError(
        f"no LLM calls from {span}" + (f" matching {where}" if where else "")
        + f"; the store has calls from {stamp(utc(first))} to {stamp(utc(last))}"
    )


def stamp(when: datetime) -> str:
    """`2026-11-22 14:05 UTC`."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def annotated_changes(store: Store, window: Window, filters: Filters) -> list[TimelineEvent]:
    """Explicit change annotations; the change kind rides along as the first flag."""
    where, params = window_parameters(window, filters, only=("service", "environment"))
    events = []
    rows = store.rows(render("incident_changes", filters=where), params)
    for time, kind, target, version, description, author, service, trace_id in rows:
        text = f"{kind} change of {target}" + (f" to {version}" if version else "") + f" ({service})"
        text += f": {description}" if description else ""
        text += f" — by {author}" if author else ""
        events.append(TimelineEvent(utc(time), "change", text, Evidence("incident_changes", params, (trace_id,)), (kind,)))
    return events


def first_appearances(
    store: Store, window: Window, filters: Filters, *, settle: timedelta, model_changes: Sequence[datetime] = ()
) -> list[TimelineEvent]:
    """First appearances of response models, fingerprints, prompt/index/service versions."""
    where, params = window_parameters(window, filters)
    service_only, _ = filter_sql(filters, only=("service",))
    params["settle_s"] = int(settle.total_seconds())
    query = render("incident_first_seen", filters=where, service_filter=service_only)
    events = []
    for dimension, scope, value, service, first, calls, exemplars in store.rows(query, params):
        first = utc(first)
        silent = dimension in _PROVIDER_SIDE and not any(abs(first - t) <= settle for t in model_changes)
        text = f"first {_DIMENSION_WORDS.get(dimension, dimension)} {value}" + (f" (for {scope})" if scope else "")
        text += f" in {service}, {calls:,} calls in the window"
        text += " — possible silent provider update: no model change was annotated" if silent else ""
        flags = (f"{dimension}={value}", SILENT_PROVIDER_UPDATE) if silent else (f"{dimension}={value}",)
        events.append(TimelineEvent(first, "first_seen", text, Evidence("incident_first_seen", params, tuple(exemplars)), flags))
    return events


def regression_events(regressions: Sequence[Regression], window: Window) -> list[TimelineEvent]:
    """The change point of every regression, and its end when it ended inside the window."""
    events = []
    for r in regressions:
        events.append(TimelineEvent(r.started_at, "change_point", describe_regression(r), r.evidence, (r.signal,)))
        if r.ended_at is not None and r.ended_at < window.end:
            back = f"{r.signal} back to its baseline ({_fmt(r.baseline)})"
            events.append(TimelineEvent(r.ended_at, "recovered", back, r.evidence, (r.signal,)))
    return events


def describe_regression(r: Regression) -> str:
    """`quality:faithfulness down 35% (0.85 → 0.55), confidence 0.99, 812 calls`."""
    return (
        f"{r.signal} {r.direction} {abs(r.relative_change):.0%} ({_fmt(r.baseline)} → {_fmt(r.current)}), "
        f"confidence {r.confidence:.2f}, {r.calls:,} calls"
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def bursts(store: Store, window: Window, filters: Filters, *, bucket: timedelta) -> list[TimelineEvent]:
    """Runs of buckets where errors, 429s or cancellations far exceed the window's usual rate."""
    where, params = window_parameters(window, filters)
    params["bucket_s"] = int(bucket.total_seconds())
    rows = [dict(zip(_BUCKET_COLUMNS, row)) for row in store.rows(render("incident_bursts", filters=where), params)]
    evidence = Evidence("incident_bursts", params)
    return [event for column, name, verb in _BURSTS for event in _runs(rows, column, name, verb, bucket, evidence)]


_BUCKET_COLUMNS = ("bucket", "calls", "errors", "rate_limits", "cancellations", "errors_ids", "rate_limits_ids", "cancellations_ids")


def _runs(rows: list[dict[str, Any]], column: str, name: str, verb: str, bucket: timedelta, evidence: Evidence) -> list[TimelineEvent]:
    rates = [r[column] / r["calls"] for r in rows if r["calls"]]
    if not rates:
        return []
    usual = statistics.median(rates)
    threshold = max(usual * BURST_FACTOR, usual + BURST_MIN_EXCESS)
    hot = [r for r in rows if r[column] >= 2 and r[column] / r["calls"] >= threshold]
    events = []
    for run in _consecutive(hot, bucket):
        count, calls = sum(r[column] for r in run), sum(r["calls"] for r in run)
        if count < BURST_MIN_COUNT:
            continue
        ids = tuple(dict.fromkeys(i for r in run for i in r[f"{column}_ids"]))[:5]
        minutes = len(run) * bucket.total_seconds() / 60
        text = f"burst of {name}: {count:,} of {calls:,} calls {verb} ({count / calls:.0%}, usually {usual:.1%}) for {minutes:.0f} min"
        run_evidence = Evidence(evidence.query, {**evidence.parameters, "burst_start": utc(run[0]["bucket"])}, ids)
        events.append(TimelineEvent(utc(run[0]["bucket"]), "burst", text, run_evidence, (column,)))
    return events


def _consecutive(rows: list[dict[str, Any]], bucket: timedelta) -> list[list[dict[str, Any]]]:
    runs: list[list[dict[str, Any]]] = []
    for row in rows:
        if runs and row["bucket"] - runs[-1][-1]["bucket"] <= bucket:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs
