"""Spans straight into the store: an OTel SpanExporter doing columnar inserts into `otel_traces`.

Attribute values are stringified the way the OpenTelemetry Collector's ClickHouse exporter does
(pcommon `AsString`: booleans `true`/`false`, arrays as JSON), so rows from either writer look
the same to the materialized views. `export` never raises into the app: a failed insert is logged
once per distinct error and reported as FAILURE to the span processor.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["OTEL_TRACES_COLUMNS", "StoreSpanExporter", "attribute_string", "spans_to_columns", "write_spans"]

_log = logging.getLogger("driftline.exporter")

OTEL_TRACES_COLUMNS: Final = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)  # fmt: skip
"""Insert column order for otel_traces (Nested columns flattened, as the exporter inserts them)."""

_KIND: Final = {k: k.name.capitalize() for k in SpanKind}
_STATUS: Final = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}


def attribute_string(value: Any) -> str:
    """One attribute value as the Collector's ClickHouse exporter stores it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Sequence):
        return json.dumps(list(value), separators=(",", ":"), ensure_ascii=False, default=_json_bytes)
    if isinstance(value, Mapping):  # OTLP kvlist values (the receiver's decoder)
        return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False, default=_json_bytes)
    return str(value)


def _json_bytes(value: Any) -> str:
    """Bytes inside arrays and maps, base64 as pcommon's AsRaw/JSON gives them."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot stringify {type(value).__name__}")


def attribute_map(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """An attribute mapping as the Map(LowCardinality(String), String) the tables hold."""
    if not attributes:
        return {}
    copy = getattr(attributes, "copy", None)  # the SDK's read-only views copy to a plain dict at C speed;
    plain = copy() if copy else attributes  # iterating them as a Mapping costs more than the insert
    return {k: v if type(v) is str else attribute_string(v) for k, v in plain.items()}


def _hex_trace(value: int) -> str:
    return format(value, "032x")


def _hex_span(value: int) -> str:
    return format(value, "016x")


def spans_to_columns(spans: Sequence[ReadableSpan]) -> list[list[Any]]:
    """SDK spans as otel_traces columns, in OTEL_TRACES_COLUMNS order."""
    cols: list[list[Any]] = [[] for _ in OTEL_TRACES_COLUMNS]
    (ts, trace, span_id, parent, state, name, kind, service, res, scope, scope_v, attrs, dur, status, status_msg,
     ev_ts, ev_name, ev_attrs, ln_trace, ln_span, ln_state, ln_attrs) = cols  # fmt: skip
    resources: dict[int, tuple[str, dict[str, str]]] = {}
    for span in spans:
        ctx = span.context
        start = span.start_time or 0
        resource = resources.get(id(span.resource))
        if resource is None:
            res_attrs = attribute_map(span.resource.attributes)
            resource = resources[id(span.resource)] = (res_attrs.get("service.name", ""), res_attrs)
        ts.append(start)
        trace.append(_hex_trace(ctx.trace_id))
        span_id.append(_hex_span(ctx.span_id))
        parent.append(_hex_span(span.parent.span_id) if span.parent else "")
        state.append(ctx.trace_state.to_header() if ctx.trace_state else "")
        name.append(span.name)
        kind.append(_KIND[span.kind])
        service.append(resource[0])
        res.append(resource[1])
        scope_info = span.instrumentation_scope
        scope.append(scope_info.name if scope_info else "")
        scope_v.append((scope_info.version or "") if scope_info else "")
        attrs.append(attribute_map(span.attributes))
        dur.append(max((span.end_time or start) - start, 0))
        status.append(_STATUS[span.status.status_code])
        status_msg.append(span.status.description or "")
        ev_ts.append([e.timestamp for e in span.events])
        ev_name.append([e.name for e in span.events])
        ev_attrs.append([attribute_map(e.attributes) for e in span.events])
        ln_trace.append([_hex_trace(link.context.trace_id) for link in span.links])
        ln_span.append([_hex_span(link.context.span_id) for link in span.links])
        ln_state.append([link.context.trace_state.to_header() if link.context.trace_state else "" for link in span.links])
        ln_attrs.append([attribute_map(link.attributes) for link in span.links])
    return cols


def write_spans(store: Store, spans: Sequence[ReadableSpan]) -> None:
    """Insert finished SDK spans into otel_traces; raises StoreError on failure."""
    store.insert("otel_traces", spans_to_columns(spans), OTEL_TRACES_COLUMNS)


class StoreSpanExporter(SpanExporter):
    """Exports SDK spans into the store's otel_traces table.

    It owns the store it is given and closes it at shutdown, unless `owns_store=False`: several
    exporters (one per TracerProvider, e.g. one per simulated service) can then share one store,
    which its opener closes after shutting them all down.
    """

    def __init__(self, store: Store, *, owns_store: bool = True) -> None:
        self._store = store
        self._owns_store = owns_store
        self._lock = threading.Lock()
        self._seen_errors: set[str] = set()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or not spans:
            return SpanExportResult.FAILURE if self._shutdown else SpanExportResult.SUCCESS
        try:
            with self._lock:
                write_spans(self._store, spans)
        except Exception as exc:  # the app must never see an exporter error
            self._log_once(exc, len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _log_once(self, exc: Exception, count: int) -> None:
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._seen_errors:
            self._seen_errors.add(key)
            _log.error("driftline: could not write %d spans to %s: %s", count, self._store.url, key)

    def shutdown(self) -> None:
        if not self._shutdown:
            self._shutdown = True
            if self._owns_store:
                with self._lock:
                    self._store.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
