"""Batches the store keeps refusing, set aside so that everything spooled behind them flows.

The writer inserts in spool order, so one batch the store refuses for good (a constraint it
violates, a schema the store no longer has) would hold back every later batch, fill the spool,
and survive restarts. After bounded retries the writer inserts that group's batches one by one,
and each batch still refused is written here, with the store's reason, before the spool lets go
of it; nothing acknowledged is dropped. `driftline serve --replay-dead-letters` puts them back
into the spool at start (once whatever refused them is fixed); refused again, they come back here.

Layout: `<spool dir>/dead-letter/<seq>.json` ({seq, kind, items, reason, at}) beside
`<seq>.pb` (the batch as it was spooled). Each is written to a temporary name, fsynced and
renamed, payload first, so a crash leaves either a whole entry or none.

The directory is bounded (by the spool's limit): a store that refuses everything (a schema that
changed under serve) fills it, and then batches wait in the spool as in an outage, where the
spool's limit turns into 503s for the clients, instead of growing the disk without end.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ._spool import Record, durable_write

__all__ = ["DeadLetter", "DeadLetters", "DeadLettersFull"]


class DeadLettersFull(Exception):
    """The dead-letter directory is at its byte limit: the batch stays in the spool."""


@dataclass(frozen=True)
class DeadLetter:
    """One set-aside batch: where it sat in the spool, what it holds, why the store refused it."""

    seq: int
    kind: int
    items: int
    reason: str
    path: Path

    def payload(self) -> bytes:
        return self.path.with_suffix(".pb").read_bytes()


class DeadLetters:
    """The dead-letter directory; `items` counts what it holds (for /metrics)."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        entries = self.entries()
        self.items = sum(entry.items for entry in entries)
        self.bytes = sum(entry.path.with_suffix(".pb").stat().st_size for entry in entries)

    def put(self, record: Record, payload: bytes, reason: str) -> bool:
        """Keep a refused batch durably, with the store's reason; False if it is already here (a group
        isolated again after an outage)."""
        if (self.directory / f"{record.seq:020d}.json").exists():
            return False
        if self.bytes + len(payload) > self.max_bytes:
            raise DeadLettersFull(f"the dead letters in {self.directory} are at their limit of {self.max_bytes} bytes")
        meta = {"seq": record.seq, "kind": record.kind, "items": record.items, "reason": reason[:2000],
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        durable_write(self.directory / f"{record.seq:020d}.pb", payload)
        durable_write(self.directory / f"{record.seq:020d}.json", json.dumps(meta).encode())
        with self._lock:
            self.items += record.items
            self.bytes += len(payload)
        return True

    def entries(self) -> list[DeadLetter]:
        """What is set aside, oldest first (entries missing their payload are a crash's left-overs: skipped)."""
        found: list[DeadLetter] = []
        for path in sorted(self.directory.glob("*.json")):
            if path.with_suffix(".pb").exists():
                meta = json.loads(path.read_text(encoding="utf-8"))
                found.append(DeadLetter(int(meta["seq"]), int(meta["kind"]), int(meta["items"]), str(meta["reason"]), path))
        return found

    def replace(self, entry: DeadLetter, payload: bytes, items: int) -> None:
        """Rewrite an entry's batch (what an erasure left of it), keeping its place and reason."""
        meta = json.loads(entry.path.read_text(encoding="utf-8"))
        durable_write(entry.path.with_suffix(".pb"), payload)
        durable_write(entry.path, json.dumps({**meta, "items": items}).encode())

    def remove(self, entry: DeadLetter) -> None:
        """Forget an entry once it is back in the spool."""
        size = entry.path.with_suffix(".pb").stat().st_size
        entry.path.unlink(missing_ok=True)
        entry.path.with_suffix(".pb").unlink(missing_ok=True)
        with self._lock:
            self.items -= entry.items
            self.bytes -= size
