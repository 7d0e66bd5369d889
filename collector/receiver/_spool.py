"""The receiver's write-ahead spool: acknowledged batches survive store outages and `kill -9`.

Every accepted batch is appended here and fsynced before the receiver answers (group commit:
one fsync covers every batch that arrived while the previous one ran). The writer reads the
spool in order, inserts, and then advances a checkpoint; a batch leaves the spool only after
the store has it. Before each insert the writer records its *intent* (which records, in which
group) so a restart replays exactly that group again, with the same deduplication token.
Several groups may be in flight at once; the checkpoint only moves past a group once every
earlier one is stored too, so a restart replays from the oldest group not yet confirmed.

Layout of the spool directory:
    spool.lock               held (flock) by the one process using the spool: serve, or an erasure
    spool.id                 random id of this spool, part of every deduplication token
    checkpoint.json          {"seq": last stored, "intents": [[first, last], ...] in flight}
    seg-<first seq>.log      records: header (magic, kind, seq, items, length, crc32) + payload

A torn tail (a crash mid-write) is cut off at start: those batches were never acknowledged.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from driftline.collector._errors import StoreUnavailable

__all__ = ["Record", "Spool", "SpoolError", "SpoolFull", "durable_write", "locked", "rewrite_records", "spooled_records"]

_log = logging.getLogger("driftline.serve.spool")

_HEADER: Final = struct.Struct("<4sBQIII")
_MAGIC: Final = b"DLSP"
_SEGMENT: Final = "seg-{:020d}.log"


class SpoolError(Exception):
    """The spool could not make a batch durable (disk full, I/O error)."""


class SpoolFull(SpoolError):
    """The backlog is at its byte limit; the client should retry later."""


@dataclass(frozen=True)
class Record:
    """One acknowledged batch: its kind (a small int the caller defines), order and payload."""

    kind: int
    seq: int
    items: int
    payload: bytes
    size: int = -1
    """Bytes it takes in the spool; kept when a copy drops the payload (the engine has it in a file)."""

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", _HEADER.size + len(self.payload))


class Spool:
    """Append (durably, in order), read in order, and release what the store has."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(directory)
        self.spool_id = self._spool_id()
        self.stored_seq, self.intents = self._read_checkpoint()
        self._done: set[tuple[int, int]] = set()
        self._checkpoint_lock = threading.Lock()  # the writer's side; appenders never wait on its fsyncs
        self._cond = threading.Condition()
        self._pending: list[Record] = []
        self._closed = False
        self._failure: str | None = None
        self._segments = self._recover()
        self.backlog_bytes, self.backlog_items, last_seq = self._scan_backlog()
        self.durable_seq = self._next_seq = max(last_seq, self.stored_seq)
        self._next_seq += 1
        self._file: IO[bytes] | None = None
        self._file_size = 0
        self._cursor: tuple[Path | None, int, int] = (None, 0, -1)
        self._flusher = threading.Thread(target=self._flush_loop, name="driftline-spool-flush", daemon=True)
        self._flusher.start()

    # --- appending (receiver threads) -------------------------------------------------------

    def append(self, kind: int, payload: bytes, items: int) -> int:
        """Add a batch and return once it is on disk (fsynced); raises SpoolFull/SpoolError."""
        with self._cond:
            if self._closed:
                raise SpoolError("the spool is closed (shutting down)")
            if self._failure:
                raise SpoolError(self._failure)
            size = _HEADER.size + len(payload)
            if self.backlog_bytes + size > self.max_bytes and self.backlog_bytes > 0:
                raise SpoolFull(f"spool backlog at its limit ({self.backlog_bytes} of {self.max_bytes} bytes)")
            record = Record(kind, self._next_seq, items, payload)
            self._next_seq += 1
            self.backlog_bytes += size
            self.backlog_items += items
            self._pending.append(record)
            self._cond.notify_all()
            while self.durable_seq < record.seq:
                if self._failure:
                    raise SpoolError(self._failure)
                self._cond.wait()
            return record.seq

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            try:
                self._write(batch)
            except OSError as exc:
                with self._cond:
                    self._failure = f"cannot write the spool in {self.directory}: {exc.strerror or exc}"
                    self._cond.notify_all()
                _log.error("spool write failed", extra={"error": str(exc)})
                return
            with self._cond:
                self.durable_seq = batch[-1].seq
                self._cond.notify_all()

    def _write(self, batch: list[Record]) -> None:
        """Write a group of records and fsync once (rotating segments at segment_bytes)."""
        chunks: list[bytes] = []
        for record in batch:
            if self._file is None or self._file_size >= self.segment_bytes:
                self._flush_chunks(chunks)
                chunks = []
                self._rotate(record.seq)
            chunks += (_header(record), record.payload)
            self._file_size += record.size
        self._flush_chunks(chunks)

    def _flush_chunks(self, chunks: list[bytes]) -> None:
        if self._file is not None and chunks:
            self._file.write(b"".join(chunks))
            self._file.flush()
            os.fsync(self._file.fileno())

    def _rotate(self, first_seq: int) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / _SEGMENT.format(first_seq)
        self._file = open(path, "ab")  # noqa: SIM115 - the open segment lives until rotation or close
        self._file_size = 0
        with self._cond:
            self._segments.append(path)
        _fsync_dir(self.directory)

    # --- reading and releasing (the writer thread) -------------------------------------------

    def read(self, after_seq: int, *, max_bytes: int) -> list[Record]:
        """Durable records with seq > after_seq, in order, up to about max_bytes."""
        out: list[Record] = []
        total = 0
        for record in self._records(after_seq):
            out.append(record)
            total += record.size
            if total >= max_bytes:
                break
        return out

    def read_range(self, first: int, last: int) -> list[Record]:
        """Exactly the records first..last (a recorded intent being replayed)."""
        out: list[Record] = []
        for record in self._records(first - 1):
            if record.seq > last:
                break
            out.append(record)
        return out

    def _records(self, after_seq: int) -> Iterator[Record]:
        """Durable records past after_seq; resumes from where the last read stopped."""
        with self._cond:
            segments, durable = list(self._segments), self.durable_seq
        start_path, start_offset = self._cursor[:2] if self._cursor[2] == after_seq else (None, 0)
        for index, path in enumerate(segments):
            if start_path is not None and path != start_path and _first_seq(path) < _first_seq(start_path):
                continue
            if start_path is None and index + 1 < len(segments) and _first_seq(segments[index + 1]) <= after_seq + 1:
                continue  # wholly before the cursor
            offset = start_offset if path == start_path else 0
            for record, end in _read_segment(path, offset):
                if record.seq > durable:
                    return
                if record.seq > after_seq:
                    self._cursor = (path, end, record.seq)
                    yield record

    def wait_for_data(self, after_seq: int, timeout: float) -> bool:
        """Block until a record past after_seq is durable (or timeout); True if there is one."""
        with self._cond:
            return self._cond.wait_for(lambda: self.durable_seq > after_seq or self._closed, timeout) and self.durable_seq > after_seq

    def begin(self, first: int, last: int) -> None:
        """Record the group about to be inserted, so a restart replays exactly this group."""
        with self._checkpoint_lock:
            if (first, last) in self.intents:
                return  # a recorded intent being replayed
            self.intents.append((first, last))
            self._write_checkpoint()

    def release(self, records: list[Record]) -> None:
        """The store has these records (one group): move the checkpoint past every group now stored
        without a gap, and delete spent segments."""
        if not records:
            return
        with self._checkpoint_lock:
            self._done.add((records[0].seq, records[-1].seq))
            if self.intents and self.intents[0] in self._done:  # else an earlier group is still in flight: nothing moves yet
                while self.intents and self.intents[0] in self._done:
                    self._done.discard(self.intents[0])
                    self.stored_seq = self.intents.pop(0)[1]
                self._write_checkpoint()
        with self._cond:
            self.backlog_bytes -= sum(r.size for r in records)
            self.backlog_items -= sum(r.items for r in records)
            while len(self._segments) > 1 and _first_seq(self._segments[1]) <= self.stored_seq + 1:
                self._segments.pop(0).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the flusher after it wrote what it has; further appends fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._flusher.join()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock_file.close()

    # --- start-up ------------------------------------------------------------------------------

    def _spool_id(self) -> str:
        path = self.directory / "spool.id"
        if not path.exists():
            _atomic_write(path, secrets.token_hex(8))
        return path.read_text(encoding="ascii").strip()

    def _read_checkpoint(self) -> tuple[int, list[tuple[int, int]]]:
        path = self.directory / "checkpoint.json"
        if not path.exists():
            return 0, []
        data = json.loads(path.read_text(encoding="utf-8"))
        intents = data.get("intents") or ([data["intent"]] if data.get("intent") else [])  # "intent": spools from before groups overlapped
        return int(data["seq"]), [(int(first), int(last)) for first, last in intents]

    def _write_checkpoint(self) -> None:
        _atomic_write(self.directory / "checkpoint.json", json.dumps({"seq": self.stored_seq, "intents": self.intents}))

    def _recover(self) -> list[Path]:
        """Segments in order, with a torn tail of the last one cut off."""
        segments = sorted(self.directory.glob("seg-*.log"), key=_first_seq)
        if segments:
            last = segments[-1]
            valid = max((end for _, end in _read_segment(last)), default=0)
            if valid < last.stat().st_size:
                _log.warning("spool: cutting a torn tail", extra={"segment": last.name, "bytes": last.stat().st_size - valid})
                with open(last, "r+b") as handle:
                    handle.truncate(valid)
                    os.fsync(handle.fileno())
        return segments

    def _scan_backlog(self) -> tuple[int, int, int]:
        size = items = last = 0
        for path in self._segments:
            for record, _ in _read_segment(path):
                last = record.seq
                if record.seq > self.stored_seq:
                    size += record.size
                    items += record.items
        return size, items, last


def _lock(directory: Path) -> IO[str]:
    """Hold the spool directory for this process; StoreUnavailable when another holds it."""
    handle = open(directory / "spool.lock", "a", encoding="ascii")  # noqa: SIM115 - held until close() or exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreUnavailable(f"the spool in {directory} is in use by another process (a running `driftline serve`?)") from None
    return handle


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the spool directory (no serve may use it) for the block."""
    handle = _lock(directory)
    try:
        yield
    finally:
        handle.close()


def spooled_records(directory: Path) -> Iterator[Record]:
    """Every whole record in the directory's segments, in order (the caller holds the spool)."""
    for path in sorted(directory.glob("seg-*.log"), key=_first_seq):
        for record, _ in _read_segment(path):
            yield record


def rewrite_records(directory: Path, change: Callable[[Record], Record | None]) -> None:
    """Rewrite every segment whose records `change` alters (None: unchanged), each atomically, keeping
    every record's place and sequence number. The caller holds the spool (`locked`)."""
    for path in sorted(directory.glob("seg-*.log"), key=_first_seq):
        records = [record for record, _ in _read_segment(path)]  # a whole segment (64 MiB at most) at a time
        changed = [change(record) for record in records]
        if any(new is not None for new in changed):
            data = b"".join(_header(new or old) + (new or old).payload for old, new in zip(records, changed))
            durable_write(path, data)


def _header(record: Record) -> bytes:
    return _HEADER.pack(_MAGIC, record.kind, record.seq, record.items, len(record.payload), zlib.crc32(record.payload))


def _first_seq(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _read_segment(path: Path, offset: int = 0) -> Iterator[tuple[Record, int]]:
    """The whole, checksummed records of a segment from `offset`, each with the offset after it;
    stops at the first torn or corrupt one."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below; opening may race a deletion
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        while True:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            magic, kind, seq, items, length, crc = _HEADER.unpack(header)
            payload = handle.read(length)
            if magic != _MAGIC or len(payload) < length or zlib.crc32(payload) != crc:
                return
            offset += _HEADER.size + length
            yield Record(kind, seq, items, payload), offset


def _atomic_write(path: Path, text: str) -> None:
    durable_write(path, text.encode("utf-8"))


def durable_write(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename, fsync the directory: a crash leaves the old file or the new."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
