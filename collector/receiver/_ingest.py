"""The receiver's core: accept a batch into the spool, and a writer that moves the spool into the store.

Receivers (HTTP, gRPC) call `Ingester.accept` once a body parsed; it returns only when the batch
is durable in the spool, so an acknowledgement never covers data that only lived in memory.
The writer reads the spool in order and cuts it into groups, recording each group's intent
before handing it on; inserter threads insert groups, each under insert deduplication tokens
derived from its range (`<spool id>:<signal>:<first>-<last>`), and release them; the spool's
checkpoint advances in order whatever order the inserts finish in. With an embedded store the
engine decodes a group's traces itself, in one insert of up to `group_bytes` (large parts mean
less merging later, which costs the engine as much as inserting); with a server store, or for
values the engine hands back, the Python decoder turns `decode_bytes` at a time into columns.
When the store is down or slow, batches wait in the spool (bounded by bytes; past the limit
`accept` raises `Overloaded`) and go in, oldest first, once it answers again.

Fault drills: with `fault_file` set, the writer treats the store as unreachable while that
file exists. It sits on the real insert path, so an outage can be rehearsed (and tested)
without stopping a ClickHouse server.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

from driftline.collector._errors import DriftlineError, StoreError, StoreUnavailable
from driftline.collector.store._redactions import save_counts
from driftline.collector.store._store import Store, connect

from ._dead_letter import DeadLetters, DeadLettersFull
from ._metrics import ServeMetrics
from ._otlp_decode import MAX_VALUE_CHARS, Columns, logs_to_columns, traces_to_columns
from ._otlp_redact import OtlpRedactor
from ._otlp_sql import insert_file, length_delimited, write_schema
from ._spool import Record, Spool, SpoolError, SpoolFull

__all__ = ["IngestLimits", "Ingester", "Overloaded", "Signal", "Unavailable"]

_log = logging.getLogger("driftline.serve.ingest")

_INSERT_SETTINGS: Final = {
    "insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1,
    "throw_on_max_partitions_per_insert_block": 0,  # a batch spanning 100+ days is data, not an error: warn only
}  # fmt: skip
_TRANSIENT_CODES: Final = frozenset({159, 202, 209, 210, 241, 242, 252, 253, 319, 425})
"""Store errors that pass by themselves (timeouts, memory, too many parts or queries): retried like an outage."""


class Signal(IntEnum):
    """What a spooled batch holds (the spool record's kind byte)."""

    TRACES = 1
    LOGS = 2


class Overloaded(Exception):
    """The spool is full: answer 503 / UNAVAILABLE with Retry-After."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Exception):
    """The spool cannot make data durable (disk error, shutting down): answer 503 / UNAVAILABLE."""


@dataclass(frozen=True)
class IngestLimits:
    """Bounds of the pipeline; all byte sizes."""

    spool_bytes: int = 1 << 30
    group_bytes: int = 40 << 20  # requests the engine decodes in one insert: large parts, fewer merges (~7x this in RSS while it runs)
    decode_bytes: int = 6 << 20  # requests the Python decoder turns into columns at once (it holds ~20x this)
    linger_seconds: float = 0.2
    inserters: int | None = None  # groups inserted at once; default 1 for an embedded store (its memory), else 2
    max_value_chars: int = MAX_VALUE_CHARS
    retry_after_seconds: int = 2
    refusal_retries: int = 4  # inserts of a group the store refuses (not an outage) before its batches go one by one


_TO_COLUMNS: Final[dict[Signal, Callable[..., Columns]]] = {Signal.TRACES: traces_to_columns, Signal.LOGS: logs_to_columns}


@dataclass
class _Group:
    """Spool records inserted together, with deduplication tokens derived from their range.

    With an embedded store, traces come with `traces_file` (the raw requests, for the engine to
    decode in one insert) until the engine hands the group back to the Python decoder; what the
    Python decoder inserts goes in chunks of `decode_bytes`, one token each."""

    records: list[Record]
    traces_file: Path | None = None
    truncated: dict[tuple[Signal, int], int] = field(default_factory=dict)


def _engine_files(spool_dir: Path) -> tuple[Path, Path]:
    """The directory for group files the engine decodes, and its schema (a crash's left-overs are
    stale: the spool replays those groups)."""
    directory = spool_dir / "engine"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory, write_schema(directory)


class Ingester:
    """Owns the spool, the store connections and the writer (its thread cuts groups; inserter threads insert them)."""

    def __init__(self, store_url: str, spool_dir: Path, *, limits: IngestLimits, metrics: ServeMetrics,
                 fault_file: Path | None = None, store: Store | None = None, redaction: OtlpRedactor | None = None) -> None:  # fmt: skip
        self.store_url = store_url
        self.redaction = redaction
        self.limits = limits
        self.metrics = metrics
        self.fault_file = fault_file
        self.spool = Spool(spool_dir, max_bytes=limits.spool_bytes)
        self.dead_letters = DeadLetters(spool_dir / "dead-letter", max_bytes=limits.spool_bytes)
        self._engine = _engine_files(spool_dir) if store_url.startswith("chdb:") else None
        self._group_bytes = limits.group_bytes if self._engine else limits.decode_bytes
        self._inserters = limits.inserters or (1 if self._engine else 2)
        self._stores: list[Store | None] = [store] + [None] * (self._inserters - 1)  # one connection per inserter
        self._store_error: str | None = None
        self._writer_failure: str | None = None
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._writer = threading.Thread(target=self._run, name="driftline-writer", daemon=True)
        self._replay_until = self.spool.durable_seq
        metrics.gauge("queue_items", "items acknowledged but not yet in the store", lambda: self.spool.backlog_items)
        metrics.gauge("spool_bytes", "bytes of the spool backlog", lambda: self.spool.backlog_bytes)
        metrics.gauge("spool_limit_bytes", "backlog size past which requests get 503", lambda: self.spool.max_bytes)
        metrics.gauge("store_up", "1 when the last insert (or connect) succeeded", lambda: 0 if self._store_error else 1)
        metrics.gauge("dead_letter_items", "items the store refused, set aside (driftline serve --replay-dead-letters)",
                      lambda: self.dead_letters.items)  # fmt: skip
        if redaction is not None:
            metrics.family("redacted", "values a redaction rule masked, hashed or dropped before the spool", "rule", redaction.redactor.counts)

    def replay_dead_letters(self) -> int:
        """Put every set-aside batch back into the spool (before start); returns the items replayed."""
        replayed = 0
        for entry in self.dead_letters.entries():
            self.spool.append(entry.kind, entry.payload(), entry.items)
            self.dead_letters.remove(entry)
            replayed += entry.items
        if replayed:
            _log.info("dead letters back in the spool", extra={"items": replayed})
        return replayed

    def start(self) -> None:
        if self.spool.backlog_items:
            _log.info("replaying spool backlog", extra={"items": self.spool.backlog_items, "bytes": self.spool.backlog_bytes})
        self._writer.start()

    # --- receivers' side ------------------------------------------------------------------------

    def accept(self, signal: Signal, payload: bytes, items: int) -> None:
        """Make a parsed batch durable; raises Overloaded (spool full) or Unavailable."""
        self.metrics.add("received", items)
        try:
            self.spool.append(int(signal), payload, items)
        except SpoolFull as exc:
            self.metrics.reject("spool_full", signal.name.lower(), items)
            raise Overloaded(str(exc), self.limits.retry_after_seconds) from None
        except SpoolError as exc:
            self.metrics.reject("spool_error", signal.name.lower(), items)
            raise Unavailable(str(exc)) from None
        self.metrics.add("spooled", items)

    def saturated(self, incoming: int = 0) -> bool:
        """Whether `incoming` more bytes would take the spool past its limit: receivers refuse before
        reading (let alone parsing) a body that would be refused anyway (cheap shedding)."""
        return self.spool.backlog_bytes + incoming >= self.spool.max_bytes

    def health(self) -> dict[str, Any]:
        """What /healthz reports: ok while the store answers, degraded while batches wait."""
        return {
            "status": "failing" if self._writer_failure else "degraded" if self._store_error else "ok",
            "store": self._store_error or "ok",
            "backlog_items": self.spool.backlog_items,
            "backlog_bytes": self.spool.backlog_bytes,
            "spool_limit_bytes": self.spool.max_bytes,
        }

    def drain(self, timeout: float) -> bool:
        """Stop appending, let the writer store the backlog (up to timeout); True if empty."""
        self.spool.close()
        self._stop.set()
        self._writer.join(timeout)
        self._abandon.set()
        self._writer.join(10)
        drained = self.spool.backlog_items == 0
        if not self._writer.is_alive():
            for store in self._stores:
                if store is not None:
                    store.close()
        return drained

    # --- the writer -------------------------------------------------------------------------------

    def _run(self) -> None:
        """Cut the spool into groups for the inserter threads (chDB and the network release the GIL,
        so with several inserters groups go in side by side)."""
        groups: queue.Queue[_Group | None] = queue.Queue(maxsize=1)
        inserters = [threading.Thread(target=self._guarded, args=(self._insert_loop, groups, slot), name=f"driftline-inserter-{slot}",
                                      daemon=True) for slot in range(self._inserters)]  # fmt: skip
        for inserter in inserters:
            inserter.start()
        self._guarded(self._decode_loop, groups, self._inserters)
        for inserter in inserters:
            inserter.join()

    def _guarded(self, loop: Callable[[queue.Queue[_Group | None], int], None], groups: queue.Queue[_Group | None], arg: int) -> None:
        try:
            loop(groups, arg)
        except Exception as exc:  # noqa: BLE001 - a bug, not an outage: say so loudly; the spool keeps the data
            _log.exception("writer stopped")
            self._store_error = self._writer_failure = f"writer stopped: {type(exc).__name__}: {exc}"
            self._stop.set()

    def _decode_loop(self, groups: queue.Queue[_Group | None], inserters: int) -> None:
        """Read the spool in order and decode each group, recorded intents first; one end mark per inserter."""
        cursor = self.spool.stored_seq
        for first, cursor in list(self.spool.intents):
            if not self._hand_on(groups, self.spool.read_range(first, cursor)):
                return
        while True:
            if self.spool.backlog_bytes < self._group_bytes and not self._stop.is_set():
                self._stop.wait(self.limits.linger_seconds)  # let a group build up: fewer, larger parts
            records = self.spool.read(cursor, max_bytes=self._group_bytes)
            if not records:
                if self._stop.is_set():
                    for _ in range(inserters):
                        self._put(groups, None)
                    return
                self.spool.wait_for_data(cursor, timeout=1.0)
                continue
            cursor = records[-1].seq
            if not self._hand_on(groups, records):
                return

    def _hand_on(self, groups: queue.Queue[_Group | None], records: list[Record]) -> bool:
        """Record the group's intent, then queue it; False once the inserters have stopped."""
        self.spool.begin(records[0].seq, records[-1].seq)
        return self._put(groups, self._decode(records))

    def _put(self, groups: queue.Queue[_Group | None], group: _Group | None) -> bool:
        while True:
            try:
                groups.put(group, timeout=1.0)
                return True
            except queue.Full:
                if self._writer_failure or self._abandon.is_set():
                    return False

    def _insert_loop(self, groups: queue.Queue[_Group | None], slot: int) -> None:
        while (group := groups.get()) is not None:
            if not self._store_group(group, slot):
                return

    def _decode(self, records: list[Record]) -> _Group:
        """The group, with its traces in a file for the engine when the store is embedded (their
        payloads then leave memory: a group the engine refuses reads them back from the spool)."""
        group = _Group(records)
        traces = [r.payload for r in records if r.kind == Signal.TRACES]
        if traces and self._engine is not None:  # the engine decodes them, without the GIL
            group.traces_file = self._engine[0] / f"traces-{records[0].seq}-{records[-1].seq}.pb"
            length_delimited(traces, group.traces_file)
            group.records = [replace(r, payload=b"") if r.kind == Signal.TRACES else r for r in records]
        return group

    def _store_group(self, group: _Group, slot: int) -> bool:
        """Insert a group until it is in (True) or shutdown gives up on it (False: it stays spooled).
        A group the store keeps refusing goes in batch by batch, the refused ones to the dead letters."""
        delay, refusals, dead = 0.1, 0, 0
        while True:
            try:
                if refusals > self.limits.refusal_retries:
                    dead = self._isolate(group, slot)
                else:
                    self._insert(group, slot)
                break
            except DriftlineError as exc:
                self._note_failure(exc, slot)
                refusals += _refusal(exc)
            if self._abandon.wait(delay):
                return False  # the drain timed out while the store was away: the spool keeps the batch
            delay = min(delay * 2, 5.0)
        self._stored(group, dead)
        self._save_redaction_counts(slot)
        return True

    def _save_redaction_counts(self, slot: int) -> None:
        """Add the redaction counts to the store's; if that fails they wait for the next group."""
        if self.redaction is None:
            return
        try:
            save_counts(self._connected(slot), self.redaction.redactor, "serve")
        except DriftlineError as exc:
            _log.warning("could not save the redaction counts; they go with the next group", extra={"error": str(exc)[:500]})

    def _stored(self, group: _Group, dead: int) -> None:
        """The group is in the store (or set aside): release it from the spool and count it."""
        records = group.records
        recovered = self._store_error is not None
        if recovered:  # everything spooled while the store was away is a replay
            self._replay_until = max(self._replay_until, self.spool.durable_seq)
        self.spool.release(records)
        if group.traces_file is not None:
            group.traces_file.unlink(missing_ok=True)
        self.metrics.add("stored", sum(r.items for r in records) - dead)
        self.metrics.add("replayed", sum(r.items for r in records if r.seq <= self._replay_until))
        self.metrics.add("truncated_values", sum(group.truncated.values()))
        if recovered:
            _log.info("store is back", extra={"store": self.store_url})
            self._store_error = None

    def _isolate(self, group: _Group, slot: int) -> int:
        """Insert the group's batches one at a time (each under its own token, so a repeat after an outage
        adds nothing); a batch the store refuses on its own is set aside (the group already had its
        retries). Returns the items set aside; raises on an outage (the caller retries the isolation)."""
        dead = 0
        for record in self.spool.read_range(group.records[0].seq, group.records[-1].seq):
            single = _Group([record])
            try:
                self._insert_decoded(self._connected(slot), single, Signal(record.kind))
            except DriftlineError as exc:
                if not _refusal(exc):
                    raise
                self._dead_letter(record, exc)
                dead += record.items
            group.truncated[Signal(record.kind), -record.seq] = sum(single.truncated.values())
        return dead

    def _dead_letter(self, record: Record, exc: DriftlineError) -> None:
        """Set a refused batch aside; when the dead letters are full, it stays in the spool (raises)."""
        try:
            if not self.dead_letters.put(record, record.payload, str(exc)):
                return
        except DeadLettersFull as full:
            raise StoreError(f"{full}; batches wait in the spool: {exc}", code=exc.code if isinstance(exc, StoreError) else None) from None
        self.metrics.add("dead_lettered", record.items)
        _log.error("store refuses a batch: set aside in the dead letters", extra={"seq": record.seq, "items": record.items,
                   "error": str(exc)[:500], "directory": str(self.dead_letters.directory)})  # fmt: skip

    def _insert(self, group: _Group, slot: int) -> None:
        store = self._connected(slot)
        if group.traces_file is not None and not self._insert_traces_file(store, group):
            group.traces_file.unlink(missing_ok=True)
            group.traces_file = None
            group.records = self.spool.read_range(group.records[0].seq, group.records[-1].seq)
        for signal in Signal:
            if signal is not Signal.TRACES or group.traces_file is None:  # else the engine has them
                self._insert_decoded(store, group, signal)

    def _insert_decoded(self, store: Store, group: _Group, signal: Signal) -> None:
        """The group's records of `signal` through the Python decoder, one insert per chunk (bounded memory)."""
        chunk: list[bytes] = []
        size = index = 0
        for record in (r for r in group.records if r.kind == signal):
            chunk.append(record.payload)
            size += len(record.payload)
            if size >= self.limits.decode_bytes:
                self._insert_chunk(store, group, signal, index, chunk)
                chunk, size, index = [], 0, index + 1
        if chunk:
            self._insert_chunk(store, group, signal, index, chunk)

    def _insert_chunk(self, store: Store, group: _Group, signal: Signal, index: int, payloads: list[bytes]) -> None:
        cols = _TO_COLUMNS[signal](payloads, limit=self.limits.max_value_chars)
        started = time.perf_counter()
        self._check_fault()
        store.insert(cols.table, cols.data, cols.names, settings=self._insert_settings(group, signal, index))
        self.metrics.observe_insert(time.perf_counter() - started)
        group.truncated[signal, index] = cols.truncated

    def _insert_settings(self, group: _Group, signal: Signal, chunk: int = 0) -> dict[str, Any]:
        """Deduplication settings; the token names the spool, signal, record range and (past the first) chunk.

        The engine inserts a group's traces under the first chunk's token: a group it refuses goes in
        through the Python decoder under the same tokens, so a replay either way stays exactly once
        (unless --max-value-chars changed in between, which changes what the engine refuses)."""
        token = f"{self.spool.spool_id}:{signal.name.lower()}:{group.records[0].seq}-{group.records[-1].seq}"
        return {**_INSERT_SETTINGS, "insert_deduplication_token": f"{token}/{chunk}" if chunk else token}

    def _insert_traces_file(self, store: Store, group: _Group) -> bool:
        """Let the engine decode and insert the group's traces; False when the Python decoder must (the
        engine refuses before it writes a row, or the store is not embedded after all)."""
        assert group.traces_file is not None and self._engine is not None
        if not store.capabilities.embedded:
            return False
        started = time.perf_counter()
        self._check_fault()
        settings = self._insert_settings(group, Signal.TRACES)
        if not insert_file(store, group.traces_file, schema=self._engine[1], limit=self.limits.max_value_chars, settings=settings):
            return False
        self.metrics.observe_insert(time.perf_counter() - started)
        return True

    def _connected(self, slot: int) -> Store:
        self._check_fault()
        store = self._stores[slot]
        if store is None:
            store = self._stores[slot] = connect(self.store_url)
        return store

    def _check_fault(self) -> None:
        if self.fault_file is not None and self.fault_file.exists():
            raise StoreUnavailable(f"store unreachable: fault drill ({self.fault_file} exists)")

    def _note_failure(self, exc: DriftlineError, slot: int) -> None:
        message = str(exc)
        if message != self._store_error:
            _log.warning("store insert failed; batches wait in the spool", extra={"error": message})
        self._store_error = message
        self.metrics.add("insert_failures")
        store = self._stores[slot]
        if store is None or store.capabilities.embedded:
            return
        if isinstance(exc, StoreError) and not isinstance(exc, StoreUnavailable):
            return  # the store answered (e.g. schema): keep the connection, retry later
        store.close()
        self._stores[slot] = None


def _refusal(exc: DriftlineError) -> bool:
    """Whether the store answered and refused (it will again), rather than being away or busy."""
    return isinstance(exc, StoreError) and not isinstance(exc, StoreUnavailable) and exc.code not in _TRANSIENT_CODES
