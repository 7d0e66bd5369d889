"""OTLP request bodies (protobuf or JSON) to validated messages, and messages to table columns.

Parsing and columnising are separate steps: the receiver parses a body to check it and count
its items before it acknowledges, and spools the protobuf bytes; the writer turns spooled
bytes into columns for one columnar insert. Column order and attribute stringification are
`_exporter`'s, so rows look the same whichever path wrote them.

Documented rules for hostile values:
- an attribute value, log body or name longer than `MAX_VALUE_CHARS` code points is cut to
  that many (counted, and reported in the OTLP partial-success message);
- invalid UTF-8 in any string field is replaced by U+FFFD rather than rejecting the request;
- quotes, SQL and NUL bytes are ordinary data: values travel as bound columns, never as SQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
)
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from driftline.collector.store._spans import OTEL_TRACES_COLUMNS, attribute_string

__all__ = [
    "MAX_TIMESTAMP_NANOS",
    "MAX_VALUE_CHARS",
    "OTEL_LOGS_COLUMNS",
    "BadPayload",
    "Columns",
    "any_string",
    "count_items",
    "logs_to_columns",
    "parse_request",
    "traces_to_columns",
]

MAX_VALUE_CHARS: Final = 65_536
"""Longest attribute value, log body or span name stored, in code points; longer ones are cut."""

OTEL_LOGS_COLUMNS: Final = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes",
)  # fmt: skip
"""Insert column order for otel_logs, as the Collector's ClickHouse exporter inserts them."""

EVENT_NAME_ATTRIBUTE: Final = "event.name"
"""Where a log record's `event_name` is kept: otel_logs (exporter schema) has no column for it."""

_KIND: Final = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS: Final = ("Unset", "Ok", "Error")
_ID_FIELDS: Final = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})

M = TypeVar("M", bound=Message)


class BadPayload(ValueError):
    """The body is not a valid OTLP request; the message is the reason given to the client."""


@dataclass
class Columns:
    """Rows for one table as column lists, plus how many values had to be cut."""

    table: str
    names: tuple[str, ...]
    data: list[list[Any]]
    rows: int
    truncated: int


# --- parsing -----------------------------------------------------------------------------------


def parse_request(body: bytes, cls: type[M], *, json_body: bool) -> tuple[M, bytes]:
    """Parse an OTLP body into `cls`; returns the message and its protobuf bytes for the spool."""
    if json_body:
        message = _parse_json(body, cls)
        return message, message.SerializeToString()
    message = cls()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        repaired = _repair_utf8(body, cls)
        if repaired is None:
            raise BadPayload(f"malformed protobuf {cls.DESCRIPTOR.name}: {exc}") from None
        message.ParseFromString(repaired)
        return message, repaired
    return message, body


def _parse_json(body: bytes, cls: type[M]) -> M:
    """OTLP/JSON: hex trace/span ids, enums as numbers, unknown fields ignored (per the spec)."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError as exc:
        raise BadPayload(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise BadPayload("malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadPayload("malformed JSON: the body must be a JSON object")
    message: M = cls()
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadPayload(f"invalid OTLP JSON {cls.DESCRIPTOR.name}: {str(exc)[:300]}") from None
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON spells ids in hex where proto3 JSON expects base64; convert them in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise BadPayload(f"malformed JSON: {key} {value[:40]!r} is not hex") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    return node


def _repair_utf8(body: bytes, cls: type[Message]) -> bytes | None:
    """Re-encode a body whose only fault is invalid UTF-8 in strings, replacing bad bytes with U+FFFD."""
    lenient = _lenient_class(cls)()
    try:
        lenient.ParseFromString(body)
    except DecodeError:
        return None
    _replace_invalid_utf8(lenient)
    return bytes(lenient.SerializeToString())


def _replace_invalid_utf8(message: Message) -> None:
    for field, value in message.ListFields():
        if field.message_type is not None:
            for item in value if _is_repeated(field) else (value,):
                _replace_invalid_utf8(item)
        elif field.type == field.TYPE_BYTES and field.name in _STRING_FIELDS.get(message.DESCRIPTOR.full_name, ()):
            if _is_repeated(field):
                value[:] = [v.decode("utf-8", "replace").encode("utf-8") for v in value]
            else:
                setattr(message, field.name, value.decode("utf-8", "replace").encode("utf-8"))


def _is_repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5.28; `label` is gone in 7
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


_STRING_FIELDS: dict[str, set[str]] = {}
_LENIENT: dict[str, type[Message]] = {}
_LENIENT_PACKAGE: Final = "driftline_lenient"


def _lenient_class(cls: type[Message]) -> type[Message]:
    """A wire-compatible copy of `cls` whose string fields are bytes, so bad UTF-8 parses."""
    name = cls.DESCRIPTOR.full_name
    if name not in _LENIENT:
        pool = descriptor_pool.DescriptorPool()
        for proto in _file_protos(cls.DESCRIPTOR.file):
            pool.Add(_as_lenient(proto))
        _LENIENT[name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_LENIENT_PACKAGE}.{name}"))
    return _LENIENT[name]


def _file_protos(file: Any, seen: set[str] | None = None) -> list[descriptor_pb2.FileDescriptorProto]:
    """`file` and its dependencies, dependencies first."""
    seen = set() if seen is None else seen
    out: list[descriptor_pb2.FileDescriptorProto] = []
    for dep in file.dependencies:
        if dep.name not in seen:
            out += _file_protos(dep, seen)
    if file.name not in seen:
        seen.add(file.name)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        out.append(proto)
    return out


def _as_lenient(proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    original = proto.package
    proto.name = f"{_LENIENT_PACKAGE}/{proto.name}"
    proto.package = f"{_LENIENT_PACKAGE}.{original}"
    proto.dependency[:] = [f"{_LENIENT_PACKAGE}/{d}" for d in proto.dependency]
    proto.ClearField("service")
    proto.options.Clear()

    def visit(messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str) -> None:
        for msg in messages:
            full = f"{prefix}.{msg.name}"
            for field in msg.field:
                if field.type == field.TYPE_STRING:
                    field.type = field.TYPE_BYTES
                    _STRING_FIELDS.setdefault(f"{_LENIENT_PACKAGE}.{full}", set()).add(field.name)
                if field.type_name.startswith("."):
                    field.type_name = f".{_LENIENT_PACKAGE}{field.type_name}"
            visit(msg.nested_type, full)

    visit(proto.message_type, original)
    return proto


MAX_TIMESTAMP_NANOS: Final = (1 << 63) - 1
"""Latest time otel_traces' DateTime64(9) holds (2262-04-11): later ones wrapped to the 1700s before."""


def count_items(message: Message) -> int:
    """Spans, log records or metric data points in an export request; BadPayload, naming the field, for
    ids of the wrong length and times past MAX_TIMESTAMP_NANOS (one pass: it runs on every request)."""
    if isinstance(message, ExportTraceServiceRequest):
        return _checked_spans(message)
    if isinstance(message, ExportLogsServiceRequest):
        return _checked_logs(message)
    if isinstance(message, ExportMetricsServiceRequest):
        return sum(_metric_points(m) for r in message.resource_metrics for s in r.scope_metrics for m in s.metrics)
    raise TypeError(f"not an OTLP export request: {type(message).__name__}")


def _checked_spans(message: ExportTraceServiceRequest) -> int:
    count = 0
    for r, resource_spans in enumerate(message.resource_spans):
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for n, span in enumerate(scope_spans.spans):
                if (len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8)
                        or span.start_time_unix_nano > MAX_TIMESTAMP_NANOS or span.end_time_unix_nano > MAX_TIMESTAMP_NANOS
                        or span.events or span.links):  # fmt: skip
                    _check_span(span, f"resource_spans[{r}].scope_spans[{s}].spans[{n}]")
            count += len(scope_spans.spans)
    return count


def _check_span(span: Any, where: str) -> None:
    """The slow path: find which field is wrong (events and links are checked only here)."""
    _check_id(span.trace_id, (16,), f"{where}.trace_id")
    _check_id(span.span_id, (8,), f"{where}.span_id")
    _check_id(span.parent_span_id, (0, 8), f"{where}.parent_span_id")
    _check_time(span.start_time_unix_nano, f"{where}.start_time_unix_nano")
    _check_time(span.end_time_unix_nano, f"{where}.end_time_unix_nano")
    for e, event in enumerate(span.events):
        _check_time(event.time_unix_nano, f"{where}.events[{e}].time_unix_nano")
    for k, link in enumerate(span.links):
        _check_id(link.trace_id, (16,), f"{where}.links[{k}].trace_id")
        _check_id(link.span_id, (8,), f"{where}.links[{k}].span_id")


def _checked_logs(message: ExportLogsServiceRequest) -> int:
    count = 0
    for r, resource_logs in enumerate(message.resource_logs):
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            for n, record in enumerate(scope_logs.log_records):
                where = f"resource_logs[{r}].scope_logs[{s}].log_records[{n}]"
                _check_id(record.trace_id, (0, 16), f"{where}.trace_id")
                _check_id(record.span_id, (0, 8), f"{where}.span_id")
                _check_time(record.time_unix_nano, f"{where}.time_unix_nano")
                _check_time(record.observed_time_unix_nano, f"{where}.observed_time_unix_nano")
            count += len(scope_logs.log_records)
    return count


def _check_id(value: bytes, lengths: tuple[int, ...], where: str) -> None:
    if len(value) not in lengths:
        raise BadPayload(f"{where}: {len(value)} bytes, must be {' or '.join(map(str, lengths))}")


def _check_time(nanos: int, where: str) -> None:
    if nanos > MAX_TIMESTAMP_NANOS:
        raise BadPayload(f"{where}: {nanos} is past 2262-04-11, the latest time the store holds")


def _metric_points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


# --- columnising ---------------------------------------------------------------------------------


class _Cutter:
    """Applies the MAX_VALUE_CHARS rule and counts what it cut."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cut = 0

    def text(self, value: str) -> str:
        if len(value) > self.limit:
            self.cut += 1
            return value[: self.limit]
        return value

    def attrs(self, kvs: Iterable[Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        limit = self.limit
        for kv in kvs:
            value = kv.value
            text = value.string_value  # the common case; "" also when another kind is set
            if not text and value.WhichOneof("value") != "string_value":
                text = attribute_string(_any_value(value, value.WhichOneof("value")))
            if len(text) > limit:
                self.cut += 1
                text = text[:limit]
            key = kv.key
            out[key if len(key) <= limit else self.text(key)] = text
        return out


def _any_value(value: Any, which: str | None) -> Any:
    """An OTLP AnyValue as the Python value `attribute_string` stringifies."""
    if which is None:
        return ""
    if which == "array_value":
        return [_any_value(v, v.WhichOneof("value")) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value, kv.value.WhichOneof("value")) for kv in value.kvlist_value.values}
    return getattr(value, which)


def any_string(value: Any) -> str:
    """An OTLP AnyValue as the string the tables hold."""
    which = value.WhichOneof("value")
    return value.string_value if which == "string_value" else attribute_string(_any_value(value, which))


def traces_to_columns(payloads: Iterable[bytes], *, limit: int = MAX_VALUE_CHARS) -> Columns:
    """Spooled ExportTraceServiceRequest bytes as otel_traces columns, for one insert."""
    cut = _Cutter(limit)
    cols: list[list[Any]] = [[] for _ in OTEL_TRACES_COLUMNS]
    (ts, trace, span_id, parent, state, name, kind, service, res, scope, scope_v, attrs, dur, status, status_msg,
     ev_ts, ev_name, ev_attrs, ln_trace, ln_span, ln_state, ln_attrs) = cols  # fmt: skip
    requests = (ExportTraceServiceRequest.FromString(payload) for payload in payloads)
    for resource_spans in (r for request in requests for r in request.resource_spans):
        res_attrs = cut.attrs(resource_spans.resource.attributes)
        svc = res_attrs.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope_name, scope_version = cut.text(scope_spans.scope.name), cut.text(scope_spans.scope.version)
            for span in scope_spans.spans:
                start = span.start_time_unix_nano
                ts.append(start)
                trace.append(span.trace_id.hex())
                span_id.append(span.span_id.hex())
                parent.append(span.parent_span_id.hex())
                state.append(span.trace_state)
                name.append(cut.text(span.name))
                kind.append(_KIND[span.kind] if span.kind < len(_KIND) else "Unspecified")
                service.append(svc)
                res.append(res_attrs)
                scope.append(scope_name)
                scope_v.append(scope_version)
                attrs.append(cut.attrs(span.attributes))
                end = span.end_time_unix_nano
                dur.append(end - start if end > start else 0)
                span_status = span.status
                code = span_status.code
                status.append(_STATUS[code] if code < len(_STATUS) else "Unset")
                status_msg.append(cut.text(span_status.message))
                events, links = span.events, span.links
                if events:  # most spans have none; iterating an empty upb list is not free
                    ev_ts.append([e.time_unix_nano for e in events])
                    ev_name.append([cut.text(e.name) for e in events])
                    ev_attrs.append([cut.attrs(e.attributes) for e in events])
                else:
                    ev_ts.append([])
                    ev_name.append([])
                    ev_attrs.append([])
                if links:
                    ln_trace.append([link.trace_id.hex() for link in links])
                    ln_span.append([link.span_id.hex() for link in links])
                    ln_state.append([link.trace_state for link in links])
                    ln_attrs.append([cut.attrs(link.attributes) for link in links])
                else:
                    ln_trace.append([])
                    ln_span.append([])
                    ln_state.append([])
                    ln_attrs.append([])
    return Columns("otel_traces", OTEL_TRACES_COLUMNS, cols, len(ts), cut.cut)


def logs_to_columns(payloads: Iterable[bytes], *, limit: int = MAX_VALUE_CHARS) -> Columns:
    """Spooled ExportLogsServiceRequest bytes as otel_logs columns, for one insert."""
    cut = _Cutter(limit)
    cols: list[list[Any]] = [[] for _ in OTEL_LOGS_COLUMNS]
    (ts, trace, span_id, flags, sev_text, sev_num, service, body, res_url, res, scope_url, scope, scope_v,
     scope_attrs, attrs) = cols  # fmt: skip
    requests = (ExportLogsServiceRequest.FromString(payload) for payload in payloads)
    for resource_logs in (r for request in requests for r in request.resource_logs):
        res_attrs = cut.attrs(resource_logs.resource.attributes)
        svc = res_attrs.get("service.name", "")
        for scope_logs in resource_logs.scope_logs:
            scope_attr_map = cut.attrs(scope_logs.scope.attributes)
            scope_name, scope_version = cut.text(scope_logs.scope.name), cut.text(scope_logs.scope.version)
            for record in scope_logs.log_records:
                ts.append(record.time_unix_nano or record.observed_time_unix_nano)
                trace.append(record.trace_id.hex())
                span_id.append(record.span_id.hex())
                flags.append(record.flags & 0xFF)
                sev_text.append(cut.text(record.severity_text))
                sev_num.append(min(max(int(record.severity_number), 0), 255))
                service.append(svc)
                body.append(cut.text(any_string(record.body)) if record.HasField("body") else "")
                res_url.append(resource_logs.schema_url)
                res.append(res_attrs)
                scope_url.append(scope_logs.schema_url)
                scope.append(scope_name)
                scope_v.append(scope_version)
                scope_attrs.append(scope_attr_map)
                log_attrs = cut.attrs(record.attributes)
                if record.event_name:
                    log_attrs.setdefault(EVENT_NAME_ATTRIBUTE, cut.text(record.event_name))
                attrs.append(log_attrs)
    return Columns("otel_logs", OTEL_LOGS_COLUMNS, cols, len(ts), cut.cut)
