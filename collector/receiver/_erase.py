"""Erasure everywhere serve keeps data: the store, the spool and the dead letters.

A batch acknowledged but not yet stored, or set aside because the store refused it, holds the
same person's data as the tables; erasing only the tables would let it arrive afterwards. So the
spool is held (no serve may run on it meanwhile), the traces marked anywhere are collected first,
and then their spans and log records are cut out of the tables, the spooled batches and the dead
letters alike. Batches keep their place and sequence number; one left empty stays as an empty batch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from driftline.collector.store._forget import Subject, forget, matching_traces
from driftline.collector.store._store import Store

from ._dead_letter import DeadLetters
from ._ingest import Signal
from ._spool import Record, locked, rewrite_records, spooled_records

__all__ = ["erase"]

SPOOL: Final = "spool"
DEAD_LETTERS: Final = "dead letters"


def erase(store: Store, subject: Subject, spool_dir: Path | None) -> dict[str, int]:
    """Forget the subject in the store and, when `spool_dir` exists, in its spool and dead letters;
    returns where -> rows (or spooled items) deleted. StoreUnavailable while a serve holds the spool."""
    spool = spool_dir if spool_dir is not None and spool_dir.is_dir() else None
    with locked(spool) if spool is not None else nullcontext():
        eraser = _BatchEraser(subject)
        if spool is not None:
            eraser.collect(spool)
        eraser.trace_ids |= matching_traces(store, subject)
        deleted = forget(store, subject, trace_ids=eraser.trace_ids)
        if spool is not None:
            deleted[SPOOL], deleted[DEAD_LETTERS] = eraser.cut(spool)
            shutil.rmtree(spool / "engine", ignore_errors=True)  # serve's copies of spooled groups, remade from the spool
    return deleted


class _BatchEraser:
    """Finds and cuts the subject's spans and log records in spooled OTLP batches."""

    def __init__(self, subject: Subject) -> None:
        self.marks = subject.attributes()
        self.trace_ids: set[str] = set()

    def collect(self, spool_dir: Path) -> None:
        """Note the traces in which a spooled or set-aside span carries the subject."""
        for kind, payload in _batches(spool_dir):
            if kind == Signal.TRACES:
                request = ExportTraceServiceRequest.FromString(payload)
                for resource_spans in request.resource_spans:
                    marked = self._marked(resource_spans.resource.attributes)
                    spans = (span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans)
                    self.trace_ids.update(span.trace_id.hex() for span in spans if marked or self._marked(span.attributes))

    def cut(self, spool_dir: Path) -> tuple[int, int]:
        """Remove the subject's items from the spool and the dead letters; (spooled, set aside) removed."""
        removed = [0]

        def change(record: Record) -> Record | None:
            payload, gone = self._cut(record.kind, record.payload)
            removed[0] += gone
            return replace(record, payload=payload, items=record.items - gone, size=-1) if gone else None

        rewrite_records(spool_dir, change)
        dead_letters, set_aside = DeadLetters(spool_dir / "dead-letter", max_bytes=1 << 62), 0
        for entry in dead_letters.entries():
            payload, gone = self._cut(entry.kind, entry.payload())
            if gone:
                dead_letters.replace(entry, payload, entry.items - gone)
                set_aside += gone
        return removed[0], set_aside

    def _cut(self, kind: int, payload: bytes) -> tuple[bytes, int]:
        """The batch without the subject's items, and how many went."""
        if kind == Signal.TRACES:
            traces = ExportTraceServiceRequest.FromString(payload)
            gone = sum(self._cut_items(scope.spans, marked) for scope, marked in self._scopes(traces.resource_spans, "scope_spans"))
            return (traces.SerializeToString(), gone) if gone else (payload, 0)
        logs = ExportLogsServiceRequest.FromString(payload)
        gone = sum(self._cut_items(scope.log_records, marked) for scope, marked in self._scopes(logs.resource_logs, "scope_logs"))
        return (logs.SerializeToString(), gone) if gone else (payload, 0)

    def _scopes(self, resources: Iterable[Any], field: str) -> Iterator[tuple[Any, bool]]:
        for resource in resources:
            marked = self._marked(resource.resource.attributes)
            for scope in getattr(resource, field):
                yield scope, marked

    def _cut_items(self, items: Any, marked: bool) -> int:
        kept = [item for item in items if not (marked or item.trace_id.hex() in self.trace_ids or self._marked(item.attributes))]
        gone = len(items) - len(kept)
        if gone:
            del items[:]
            items.extend(kept)
        return gone

    def _marked(self, kvs: Iterable[Any]) -> bool:
        return any(self.marks.get(kv.key) == kv.value.string_value for kv in kvs if kv.key in self.marks)


def _batches(spool_dir: Path) -> Iterator[tuple[int, bytes]]:
    """(kind, payload) of every spooled and set-aside batch."""
    for record in spooled_records(spool_dir):
        yield record.kind, record.payload
    for entry in DeadLetters(spool_dir / "dead-letter", max_bytes=1 << 62).entries():
        yield entry.kind, entry.payload()
