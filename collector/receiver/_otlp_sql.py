"""Spooled OTLP trace requests into otel_traces by the ClickHouse engine itself, without Python per span.

The writer hands the engine the raw ExportTraceServiceRequest bytes (length-delimited, one
file per group) and one INSERT ... SELECT: ClickHouse's Protobuf input format parses them with
the schema below (OTLP's field numbers, only the fields otel_traces keeps), and ARRAY JOIN and
lambdas flatten them into the rows `_otlp_decode.traces_to_columns` would produce.

The SQL covers the common values exactly; anything it cannot reproduce byte for byte (kvlist
values, arrays holding doubles, nested arrays or strings JSON must escape, any value that may
need the MAX_VALUE_CHARS cut) makes the engine refuse (throwIf) before it writes a row, and
the writer inserts that group through the Python decoder instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from driftline.collector._errors import StoreError
from driftline.collector.store._spans import OTEL_TRACES_COLUMNS

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["insert_file", "length_delimited", "write_schema"]

_FALLBACK: Final = "driftline: group needs the Python decoder"
"""The engine's error message when a group holds values the SQL does not reproduce exactly."""
_THROW_IF: Final = 395  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
_SCHEMA: Final = "otlp_traces.proto"

OTLP_TRACES_PROTO: Final = """syntax = "proto3";
package driftline.otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
  repeated Event events = 11; repeated Link links = 13; Status status = 15;
}
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; }
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
                ArrayValue array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7; }
}
message ArrayValue { repeated ItemValue values = 1; }
message ItemValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
                bytes array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7; }
}
"""
"""OTLP trace schema (opentelemetry-proto field numbers); kvlists and nested arrays stay opaque bytes."""

_KINDS: Final = "Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)"
_SCALARS: Final = "string_value String, bool_value Bool, int_value Int64, double_value Float64"
_ITEM: Final = f"Tuple(value {_KINDS}, {_SCALARS}, array_value String, kvlist_value String, bytes_value String)"
_KV: Final = f"Array(Tuple(key String, value Tuple(value {_KINDS}, {_SCALARS}, array_value Tuple(values Array({_ITEM})), kvlist_value String, bytes_value String)))"
_STRUCTURE: Final = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}), scope_spans Array(Tuple(scope Tuple(name String, version String),"
    f" spans Array(Tuple(trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32,"
    f" start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KV},"
    f" events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KV})),"
    f" links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KV})), status Tuple(message String, code Int32)))))))"
)  # fmt: skip

_JSON_UNSAFE: Final = r"'[\\x00-\\x1f\"\\\\]'"
"""Characters JSON string quoting would escape: such arrays go to the Python decoder."""


def _float(x: str) -> str:
    """Python's `_float_string` of a Float64 expression, for values ClickHouse prints without an exponent."""
    return f"if({x} = floor({x}), toString({x}) || '.0', toString({x}))"


def _item(v: str) -> str:
    """One array element as JSON (strings needing escapes never get here)."""
    return (f"multiIf({v}.value = 'string_value', '\"' || {v}.string_value || '\"', {v}.value = 'int_value', toString({v}.int_value),"
            f" {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), {v}.value = 'bytes_value', '\"' || base64Encode({v}.bytes_value) || '\"',"
            f" {v}.value = 'none', '\"\"', '')")  # fmt: skip


def _item_exotic(v: str) -> str:
    return (f"({v}.value IN ('double_value', 'array_value', 'kvlist_value')"
            f" OR ({v}.value = 'string_value' AND match({v}.string_value, {_JSON_UNSAFE})))")  # fmt: skip


def _unless(condition: str, value: str) -> str:
    """`value`, or the engine's refusal where `condition` holds: the group then goes to the Python decoder.
    Evaluated for every value, whatever its kind (no short-circuit): each condition tests the field
    its own kind sets, which is empty or 0 for values of another kind, so only a real offender throws."""
    return f"if({condition}, toString(throwIf({condition}, '{_FALLBACK}')), {value})"


def _value(v: str) -> str:
    """An AnyValue as `attribute_string` gives it; refused where the SQL would not give exactly that, or where
    the cut might apply (judged on bytes, conservatively: byte length <= limit means code points <= limit)."""
    d, items = f"{v}.double_value", f"{v}.array_value.values"
    json_size = f"arraySum(i -> length(i.string_value) + 2 * length(i.bytes_value) + 24, {items})"
    exotic_items = f"arrayExists(i -> {_item_exotic('i')}, {items})"
    array = f"'[' || arrayStringConcat(arrayMap(i -> {_item('i')}, {items}), ',') || ']'"
    kvlist_or_none = _unless(f"{v}.value = 'kvlist_value'", "''")
    return (f"multiIf({v}.value = 'string_value', {_unless(f'length({v}.string_value) > {{limit:UInt32}}', f'{v}.string_value')},"
            f" {v}.value = 'int_value', toString({v}.int_value),"
            f" {v}.value = 'double_value', {_unless(f'NOT ({d} = 0 OR (abs({d}) >= 1e-4 AND abs({d}) < 1e16))', _float(d))},"  # else Python's repr is exponential
            f" {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'),"
            f" {v}.value = 'array_value', {_unless(f'{exotic_items} OR {json_size} > {{limit:UInt32}}', array)},"
            f" {v}.value = 'bytes_value', {_unless(f'2 * length({v}.bytes_value) > {{limit:UInt32}}', f'base64Encode({v}.bytes_value)')},"
            f" {kvlist_or_none})")  # fmt: skip


def _map(kvs: str) -> str:
    key = _unless("length(kv.key) > {limit:UInt32}", "kv.key")
    return f"mapFromArrays(arrayMap(kv -> {key}, {kvs}), arrayMap(kv -> {_value('kv.value')}, {kvs}))"


def _text(x: str) -> str:
    """A span's own string (name, status message, scope) or the refusal when it might need the cut."""
    return _unless(f"length({x}) > {{limit:UInt32}}", x)


_KIND_NAMES: Final = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
_STATUS_NAMES: Final = "['Unset', 'Ok', 'Error']"

_COLUMNS: Final = {
    "Timestamp": "fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano))",
    "TraceId": "lower(hex(sp.trace_id))",
    "SpanId": "lower(hex(sp.span_id))",
    "ParentSpanId": "lower(hex(sp.parent_span_id))",
    "TraceState": "sp.trace_state",
    "SpanName": _text("sp.name"),
    "SpanKind": f"if(sp.kind >= 0 AND sp.kind < 6, {_KIND_NAMES}[sp.kind + 1], 'Unspecified')",
    "ServiceName": "res['service.name']",
    "ResourceAttributes": "res",
    "ScopeName": _text("scope_name"),
    "ScopeVersion": _text("scope_version"),
    "SpanAttributes": _map("sp.attributes"),
    "Duration": "if(sp.end_time_unix_nano > sp.start_time_unix_nano, sp.end_time_unix_nano - sp.start_time_unix_nano, 0)",
    "StatusCode": f"if(sp.status.code >= 0 AND sp.status.code < 3, {_STATUS_NAMES}[sp.status.code + 1], 'Unset')",
    "StatusMessage": _text("sp.status.message"),
    "Events.Timestamp": "arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), sp.events)",
    "Events.Name": f"arrayMap(e -> {_text('e.name')}, sp.events)",
    "Events.Attributes": f"arrayMap(e -> {_map('e.attributes')}, sp.events)",
    "Links.TraceId": "arrayMap(l -> lower(hex(l.trace_id)), sp.links)",
    "Links.SpanId": "arrayMap(l -> lower(hex(l.span_id)), sp.links)",
    "Links.TraceState": "arrayMap(l -> l.trace_state, sp.links)",
    "Links.Attributes": f"arrayMap(l -> {_map('l.attributes')}, sp.links)",
}
assert tuple(_COLUMNS) == OTEL_TRACES_COLUMNS

_STRUCTURE_SQL: Final = _STRUCTURE.replace("'", "\\'")
_SPANS: Final = (  # one ARRAY JOIN per level, carrying down only what the rows need (not whole parents)
    "SELECT res, scope_name, scope_version, sp FROM ("
    "SELECT res, ss.scope.name AS scope_name, ss.scope.version AS scope_version, ss.spans AS spans FROM ("
    f"SELECT {_map('rs.resource.attributes')} AS res, rs.scope_spans AS scopes"
    f" FROM file({{path:String}}, 'Protobuf', '{_STRUCTURE_SQL}') ARRAY JOIN resource_spans AS rs)"
    " ARRAY JOIN scopes AS ss) ARRAY JOIN spans AS sp"
)


def write_schema(directory: Path) -> Path:
    """Put the schema where `insert_file` finds it; returns its path."""
    path = directory / _SCHEMA
    path.write_text(OTLP_TRACES_PROTO)
    return path


def insert_file(store: Store, path: Path, *, schema: Path, limit: int, settings: Mapping[str, Any]) -> bool:
    """Insert the spans of a `length_delimited` file into otel_traces; False (nothing written) when
    the group needs the Python decoder instead.

    The parts it writes have no skip indexes (bloom filters on ids and attributes) until they merge:
    a merge rebuilds them from its rows whatever its sources had, so building them here was work
    done twice. Queries read the newest, not yet merged parts without skipping; they are few."""
    settings = {**settings, "format_schema": f"{schema}:ExportTraceServiceRequest", "input_format_protobuf_oneof_presence": 1,
                "short_circuit_function_evaluation": "disable",  # computing every branch is cheaper than masking: 31 -> 25 us/span
                "parallel_view_processing": 1, "max_threads": 2,  # llm_calls & co. beside the otel_traces part: 26k -> 33k spans/s in serve
                "materialize_skip_indexes_on_insert": 0,  # merges build them (and would anyway): +5-8% spans/s, -100 MiB peak RSS
                "input_format_max_block_size_bytes": 2 << 20}  # parse a few requests at a time: peak RSS 600 MiB, not 830, same CPU  # fmt: skip
    try:
        store.command(insert_sql(), {"path": str(path), "limit": limit}, settings=settings)
    except StoreError as exc:
        if exc.code != _THROW_IF or _FALLBACK not in str(exc):
            raise
        return False
    return True


def insert_sql() -> str:
    """The INSERT ... SELECT for one group file; binds {path:String} and {limit:UInt32}."""
    columns = ", ".join(f"`{name}`" for name in OTEL_TRACES_COLUMNS)
    return f"INSERT INTO otel_traces ({columns}) SELECT {', '.join(_COLUMNS.values())} FROM ({_SPANS})"


def length_delimited(payloads: Iterable[bytes], path: Path) -> None:
    """Write requests as ClickHouse's `Protobuf` format reads them: varint length, message, repeated."""
    with path.open("wb") as out:
        for payload in payloads:
            out.write(_varint(len(payload)))
            out.write(payload)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
