"""How spans become `otel_traces` rows: column order, attribute stringification, columnar inserts.

Attribute values are stringified the way the OpenTelemetry Collector's ClickHouse exporter does
(pcommon `AsString`: booleans `true`/`false`, arrays as JSON), so rows from every writer (the
hooks' exporter, the receiver, an OTel Collector) look the same to the materialized views.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanKind, StatusCode

if TYPE_CHECKING:
    from driftline.collector._redaction import Redactor

    from ._store import Store

__all__ = ["OTEL_TRACES_COLUMNS", "attribute_string", "spans_to_columns", "write_spans"]

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
    exact = _BY_TYPE.get(type(value))  # the common exact types skip the isinstance chain (the hot path)
    if exact is not None:
        return exact(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return _bool_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_string(value)
    if isinstance(value, bytes):
        return _bytes_string(value)
    if isinstance(value, Sequence):
        return _array_string(value)
    if isinstance(value, Mapping):  # OTLP kvlist values (the receiver's decoder)
        return _JSON.encode(dict(value))
    return str(value)


_bool_string: Final[Callable[[bool], str]] = {True: "true", False: "false"}.__getitem__


def _float_string(value: float) -> str:
    """Plain decimal with the shortest round-trip digits, as Go's FormatFloat(v, 'f', -1, 64)."""
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


def _bytes_string(value: bytes) -> str:
    """Base64, as pcommon's AsString gives bytes (also inside arrays and maps)."""
    return base64.b64encode(value).decode("ascii")


def _array_string(value: Sequence[Any]) -> str:
    if all(type(item) is str for item in value):  # finish reasons and the like: the C quoter alone
        return "[" + ",".join(map(_quote, value)) + "]"
    return _JSON.encode(list(value))


def _json_bytes(value: Any) -> str:
    """Bytes inside arrays and maps, base64 as pcommon's AsRaw/JSON gives them."""
    if isinstance(value, bytes):
        return _bytes_string(value)
    raise TypeError(f"cannot stringify {type(value).__name__}")


_quote: Final = encode_basestring  # how JSONEncoder(ensure_ascii=False) quotes a string
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_bytes)
"""One encoder for every array value (json.dumps with options builds a new one per call)."""
_BY_TYPE: Final[dict[type, Callable[[Any], str]]] = {
    str: str, bool: _bool_string, int: str, float: _float_string, bytes: _bytes_string, tuple: _array_string, list: _array_string,
}  # fmt: skip


def attribute_map(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """An attribute mapping as the Map(LowCardinality(String), String) the tables hold."""
    if attributes is None:
        return {}
    copy = getattr(attributes, "copy", None)  # the SDK's read-only views copy to a plain dict at C speed;
    plain = copy() if copy else attributes  # iterating them as a Mapping costs more than the insert
    if type(plain) is not dict:
        plain = dict(plain)
    for key, value in plain.items():  # most values are strings already: rewrite only the others, in place
        if type(value) is not str:
            plain[key] = _BY_TYPE.get(type(value), attribute_string)(value)
    return plain


def _hex_trace(value: int) -> str:
    return format(value, "032x")


def _hex_span(value: int) -> str:
    return format(value, "016x")


def spans_to_columns(spans: Sequence[ReadableSpan], redactor: Redactor | None = None) -> list[list[Any]]:
    """SDK spans as otel_traces columns, in OTEL_TRACES_COLUMNS order, with `redactor`'s policy applied
    to every attribute map (a map of only kept names costs it one subset test).

    One tuple per span, transposed at the end: far cheaper than 22 appends per span.
    """
    redact = redactor.attributes if redactor is not None else _keep
    resources: dict[int, tuple[str, dict[str, str]]] = {}
    scopes: dict[int, tuple[str, str]] = {}
    rows = []
    for span in spans:
        ctx = span.context
        start = span.start_time or 0
        resource = resources.get(id(span.resource))
        if resource is None:
            res_attrs = attribute_map(span.resource.attributes)
            redact(res_attrs)
            resource = resources[id(span.resource)] = (res_attrs.get("service.name", ""), res_attrs)
        scope = scopes.get(id(span.instrumentation_scope))
        if scope is None:
            info = span.instrumentation_scope
            scope = scopes[id(info)] = (info.name, info.version or "") if info else ("", "")
        status, parent = span.status, span.parent
        events, links = span.events, span.links  # each access copies
        attrs = attribute_map(span.attributes)
        redact(attrs)
        rows.append((
            start, _hex_trace(ctx.trace_id), _hex_span(ctx.span_id), _hex_span(parent.span_id) if parent else "",
            ctx.trace_state.to_header() if ctx.trace_state else "", span.name, _KIND[span.kind], resource[0], resource[1],
            scope[0], scope[1], attrs, max((span.end_time or start) - start, 0),
            _STATUS[status.status_code], status.description or "",
            *(_event_columns(events, redact) if events else _NONE_3),
            *(_link_columns(links, redact) if links else _NONE_4),
        ))  # fmt: skip
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in OTEL_TRACES_COLUMNS]


_Redact = Callable[..., None]
"""Redactor.attributes, or _keep."""

_NONE_3: Final[tuple[list[Any], list[Any], list[Any]]] = ([], [], [])
_NONE_4: Final[tuple[list[Any], list[Any], list[Any], list[Any]]] = ([], [], [], [])
"""The event (3) and link (4) columns of a span without any (most spans); shared, never mutated."""


def _keep(attrs: dict[str, str], *, event: bool = False) -> None:
    """No redaction."""


def _event_columns(events: Sequence[Event], redact: _Redact) -> tuple[list[int], list[str], list[dict[str, str]]]:
    maps = [attribute_map(e.attributes) for e in events]
    for attrs in maps:
        redact(attrs, event=True)
    return [e.timestamp for e in events], [e.name for e in events], maps


def _link_columns(links: Sequence[Link], redact: _Redact) -> tuple[list[str], list[str], list[str], list[dict[str, str]]]:
    maps = [attribute_map(link.attributes) for link in links]
    for attrs in maps:
        redact(attrs)
    return (
        [_hex_trace(link.context.trace_id) for link in links],
        [_hex_span(link.context.span_id) for link in links],
        [link.context.trace_state.to_header() if link.context.trace_state else "" for link in links],
        maps,
    )


def write_spans(store: Store, spans: Sequence[ReadableSpan], redactor: Redactor | None = None) -> None:
    """Insert finished SDK spans into otel_traces, redacted by `redactor`; raises StoreError on failure."""
    store.insert("otel_traces", spans_to_columns(spans, redactor), OTEL_TRACES_COLUMNS)
