"""Spans straight into the store: an OTel SpanExporter doing columnar inserts into `otel_traces`.

The redaction policy runs on each batch before the insert, so a masked value never reaches the
store's disk. `export` never raises into the app: a failed insert is logged once per distinct
error (never with a value) and reported as FAILURE to the span processor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from driftline.collector._redaction import RedactionPolicy, redactor
from driftline.collector.store._redactions import save_counts
from driftline.collector.store._spans import write_spans

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["StoreSpanExporter"]

_log = logging.getLogger("driftline.exporter")

_SAVE_EVERY_SECONDS = 10.0
"""Redaction counts go to the store at most this often (and at shutdown): one small insert, not one per batch."""


class StoreSpanExporter(SpanExporter):
    """Exports SDK spans into the store's otel_traces table.

    It owns the store it is given and closes it at shutdown, unless `owns_store=False`: several
    exporters (one per TracerProvider, e.g. one per simulated service) can then share one store,
    which its opener closes after shutting them all down. `redaction`: a policy or policy file,
    False for none, None for $DRIFTLINE_REDACTION or the default policy (detectors over content).
    """

    def __init__(self, store: Store, *, owns_store: bool = True, redaction: RedactionPolicy | str | Path | bool | None = None) -> None:
        self._store = store
        self._redactor = redactor(redaction)
        self._next_save = 0.0
        self._owns_store = owns_store
        self._lock = threading.Lock()
        self._seen_errors: set[str] = set()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or not spans:
            return SpanExportResult.FAILURE if self._shutdown else SpanExportResult.SUCCESS
        try:
            with self._lock:
                write_spans(self._store, spans, self._redactor)
        except Exception as exc:  # the app must never see an exporter error
            self._log_once(exc, f"could not write {len(spans)} spans")
            return SpanExportResult.FAILURE
        if time.monotonic() >= self._next_save:
            self._save_counts()
        return SpanExportResult.SUCCESS

    def _log_once(self, exc: Exception, what: str) -> None:
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._seen_errors:
            self._seen_errors.add(key)
            _log.error("driftline: %s to %s: %s", what, self._store.url, key)

    def _save_counts(self) -> None:
        """Add the redaction counts to the store's; on failure they wait for the next save."""
        if self._redactor is None:
            return
        self._next_save = time.monotonic() + _SAVE_EVERY_SECONDS
        try:
            with self._lock:
                save_counts(self._store, self._redactor, "exporter")
        except Exception as exc:  # the app must never see an exporter error
            self._log_once(exc, "could not save the redaction counts")

    def shutdown(self) -> None:
        if not self._shutdown:
            self._shutdown = True
            self._save_counts()
            if self._owns_store:
                with self._lock:
                    self._store.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
