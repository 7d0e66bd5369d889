"""Redaction of parsed OTLP requests in `driftline serve`, before the spool writes them.

The receiver spools the request bytes as they came; only a request whose values the policy
changed is encoded again. Walking a request's attributes costs more than parsing it, so the walk
is skipped unless the bytes hold a name a rule applies to: the rules' globs become one RE2
pattern over the encoded request (a name is followed by 0x12, the tag of its value in a
KeyValue), one linear pass.
Span events and log records are walked whenever the policy scans event bodies; values nested in
arrays and maps are scanned where they sit, so their structure survives.
"""

from __future__ import annotations

import re
from typing import Any, Final

import re2
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftline.collector._redaction import Redactor

from ._otlp_decode import any_string

__all__ = ["OtlpRedactor"]

_GLOB_PARTS: Final = re.compile(r"\*|\?|\[!?[^\]]*\]|[^*?\[]+|\[")
_NAME_CHAR: Final = r"[^\x12]"
"""Any byte of an attribute name: the name ends at its value's tag, 0x12."""


class OtlpRedactor:
    """Applies a Redactor to OTLP trace and log requests."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._events = redactor.policy.events
        self._names = _names_pattern([glob for glob, _ in redactor.rules()])

    def payload(self, message: Message, payload: bytes) -> bytes:
        """The bytes to spool: `payload` itself unless the policy changed a value of `message`."""
        if isinstance(message, ExportTraceServiceRequest):
            changed = self._traces(message, self._names_a_rule(payload))
        elif isinstance(message, ExportLogsServiceRequest):
            changed = self._logs(message)
        else:
            return payload
        return message.SerializeToString() if changed else payload

    def _names_a_rule(self, payload: bytes) -> bool:
        return self._names is not None and self._names.search(payload) is not None

    def _traces(self, message: ExportTraceServiceRequest, named: bool) -> bool:
        if not named and not self._events:
            return False
        changed = False
        for resource_spans in message.resource_spans:
            if named:
                changed |= self._attributes(resource_spans.resource.attributes, event=False)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if named:
                        changed |= self._attributes(span.attributes, event=False)
                    events = span.events
                    if events:
                        for event in events:
                            changed |= self._attributes(event.attributes, event=True)
                    if named and span.links:
                        for link in span.links:
                            changed |= self._attributes(link.attributes, event=False)
        return changed

    def _logs(self, message: ExportLogsServiceRequest) -> bool:
        """Log records are events: their bodies and attributes are event bodies."""
        changed = False
        for resource_logs in message.resource_logs:
            changed |= self._attributes(resource_logs.resource.attributes, event=False)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    changed |= self._attributes(record.attributes, event=True)
                    if self._events and record.HasField("body"):
                        found = self._detect(record.body)
                        if found is None:
                            record.ClearField("body")
                        changed |= found is not False
        return changed

    def _attributes(self, kvs: Any, *, event: bool) -> bool:
        """Apply the policy to a repeated KeyValue in place; True if anything changed."""
        plain, redactor = self.redactor.plain[event], self.redactor
        dropped: list[int] = []
        changed = False
        for index, kv in enumerate(kvs):
            key = kv.key
            if key in plain:
                continue
            action, _ = redactor.action(key, event=event)
            if action == "keep":
                continue
            if action == "detect":
                found = self._detect(kv.value)
            else:
                new = redactor.value(key, any_string(kv.value), event=event)
                found = None if new is None else _set_string(kv.value, new)
            if found is None:
                dropped.append(index)
            changed |= found is not False
        for index in reversed(dropped):
            del kvs[index]
        return changed

    def _detect(self, value: Any) -> bool | None:
        """Run the detectors over an AnyValue's strings in place: True if changed, None if it must go."""
        which = value.WhichOneof("value")
        if which == "string_value":
            text = value.string_value
            new = self.redactor.detect(text)
            return None if new is None else new is not text and _set_string(value, new)
        if which == "array_value":
            return _any_of(self._detect(item) for item in value.array_value.values)
        if which == "kvlist_value":
            return _any_of(self._detect(kv.value) for kv in value.kvlist_value.values)
        return False


def _set_string(value: Any, text: str) -> bool:
    value.Clear()
    value.string_value = text
    return True


def _any_of(outcomes: Any) -> bool | None:
    """Combine nested outcomes: None (drop) wins, then any change."""
    changed = False
    for outcome in outcomes:
        if outcome is None:
            return None
        changed |= outcome
    return changed


def _names_pattern(globs: list[str]) -> Any:
    """One RE2 pattern matching, in an encoded request, an attribute name that one of `globs` matches
    (None without globs)."""
    if not globs:
        return None
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # the request's bytes, names in UTF-8 byte for byte
    pattern = "|".join(_glob_pattern(glob) for glob in globs)
    return re2.compile(pattern.encode("utf-8"), options)


def _glob_pattern(glob: str) -> str:
    """A glob as a pattern over an encoded name followed by its value's tag."""
    parts = []
    for part in _GLOB_PARTS.findall(glob):
        if part == "*":
            parts.append(f"{_NAME_CHAR}*")
        elif part == "?":
            parts.append(_NAME_CHAR)
        elif part.startswith("[") and len(part) > 1:
            parts.append("[^" + part[2:] if part.startswith("[!") else part)
        else:
            parts.append(re.escape(part))
    return "(?:" + "".join(parts) + r"\x12)"
