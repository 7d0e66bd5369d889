"""Erasure: delete everything the store holds about a tenant, a user or a conversation.

Whole traces go: a span carrying the tenant, user or conversation marks its trace, and every span,
log record, call and score of that trace is deleted (a tool call or retrieval under the GenAI span
carries the same person's data without the attribute). Typed rows whose own columns match go too,
also when their raw spans have already expired. Deletes are mutations that rewrite the parts
(`mutations_sync`), so the data leaves the disk, not only the query results.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from driftline.collector import _names as n
from driftline.collector._errors import ConfigError

from ._store import Store

__all__ = ["Subject", "forget", "matching_traces"]

_CHUNK: Final = 2000
"""Trace ids per statement: they travel as a bound array, in the request."""
_SYNC: Final = {"mutations_sync": 2}


@dataclass(frozen=True)
class Subject:
    """Whose data: rows matching any of the ids given are forgotten."""

    tenant: str | None = None
    user: str | None = None
    conversation: str | None = None

    def __post_init__(self) -> None:
        if not (self.tenant or self.user or self.conversation):
            raise ConfigError("say whose data to forget: a tenant, a user id or a conversation id")

    def attributes(self) -> dict[str, str]:
        """Attribute name -> value that marks this subject's spans and log records."""
        found = {n.TENANT: self.tenant, n.USER_ID: self.user, n.ENDUSER_ID: self.user, n.GEN_AI_CONVERSATION_ID: self.conversation}
        return {name: value for name, value in found.items() if value}

    def parameters(self) -> dict[str, Any]:
        """The subject as bound query parameters: parallel arrays of attribute names and values."""
        marks = self.attributes()
        return {"names": list(marks), "values": list(marks.values()), "tenant": self.tenant or "", "conversation": self.conversation or ""}


_MARKED: Final = "arrayExists((k, v) -> {map}[k] = v OR ResourceAttributes[k] = v, {{names:Array(String)}}, {{values:Array(String)}})"
_TRACES_QUERY: Final = f"SELECT DISTINCT TraceId FROM otel_traces WHERE TraceId != '' AND {_MARKED.format(map='SpanAttributes')}"
_TABLES: Final = {
    "otel_traces": "has({ids:Array(String)}, TraceId)",
    "otel_traces_trace_id_ts": "has({ids:Array(String)}, TraceId)",
    "otel_logs": f"has({{ids:Array(String)}}, TraceId) OR {_MARKED.format(map='LogAttributes')}",
    "llm_calls": "has({ids:Array(String)}, trace_id) OR (tenant = {tenant:String} AND tenant != '')"
                 " OR (conversation_id = {conversation:String} AND conversation_id != '')",
    "llm_scores": "has({ids:Array(String)}, trace_id) OR (tenant = {tenant:String} AND tenant != '')",
}
"""Table -> which of its rows belong to the subject (given the ids of its traces)."""


def matching_traces(store: Store, subject: Subject) -> set[str]:
    """Trace ids of every trace in which a span carries the subject's tenant, user or conversation."""
    return {str(trace_id) for (trace_id,) in store.rows(_TRACES_QUERY, subject.parameters())}


def forget(store: Store, subject: Subject, *, trace_ids: set[str] | None = None) -> dict[str, int]:
    """Delete the subject's rows from every table; returns table -> rows deleted. `trace_ids`: the
    subject's traces when the caller found them already (in the store and the spool)."""
    ids = sorted(matching_traces(store, subject) if trace_ids is None else trace_ids)
    deleted: dict[str, int] = {}
    for table, condition in _TABLES.items():
        if not store.table_exists(table):
            continue
        deleted[table] = 0
        for chunk in _chunks(ids):
            parameters = {**subject.parameters(), "ids": chunk}
            count = int(store.rows(f"SELECT count() FROM {table} WHERE {condition}", parameters)[0][0])
            if count:
                store.command(f"ALTER TABLE {table} DELETE WHERE {condition}", parameters, settings=_SYNC)
                deleted[table] += count
    return deleted


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    """The ids in bounded chunks; one empty chunk when there are none (the typed columns still match)."""
    yield ids[:_CHUNK]
    for start in range(_CHUNK, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
