"""Redaction counts in the store: each writer adds what its Redactor changed since it last saved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from driftline.collector._redaction import Redactor

from ._store import Store

__all__ = ["REDACTION_COUNTS", "redaction_counts", "save_counts"]

REDACTION_COUNTS: Final = "redaction_counts"


def save_counts(store: Store, redactor: Redactor, source: str) -> None:
    """Insert the counts not saved yet (nothing when there are none); on failure they wait for the next call."""
    counts = redactor.take_unsaved()
    if not counts:
        return
    today = datetime.now(UTC).date()
    try:  # without deduplication: equal counts saved twice are two additions, not one repeated block
        store.insert(REDACTION_COUNTS, [[today] * len(counts), [source] * len(counts), list(counts), list(counts.values())],
                     ["Day", "Source", "Rule", "Changed"], settings={"insert_deduplicate": 0})  # fmt: skip
    except Exception:
        redactor.restore(counts)
        raise


def redaction_counts(store: Store) -> dict[str, int]:
    """Values changed per rule, over everything saved (empty before the table exists)."""
    if not store.table_exists(REDACTION_COUNTS):
        return {}
    return {str(rule): int(total) for rule, total in store.rows(f"SELECT Rule, sum(Changed) FROM {REDACTION_COUNTS} GROUP BY Rule ORDER BY Rule")}
