"""Score detection and attribution on labelled scenarios: precision@1, recall@3, timing.

For each scenario, `detect` runs over its whole window; the regression of the scenario's
signal gives the start, and `attribute` compares the window before it (less a guard of two
buckets, so a start found a little late leaves no incident calls in the baseline) with the
window after it. A suspect is right when its (dimension, value) set is one of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from driftline.analyzers._attribute import (
    DIMENSIONS,
    MIN_SEGMENT_CALLS,
    attribute,
    attribute_frame,
    fetch_leaves,
)
from driftline.analyzers._detect import detect
from driftline.analyzers._model import Filters, Window
from driftline.analyzers._signals import get_signal

from ._scenarios import BUCKET, Scenario

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["Outcome", "Scores", "evaluate"]

GUARD_BUCKETS = 2


@dataclass(frozen=True)
class Outcome:
    """How one scenario went: start error in buckets, rank of the true cause (1-based), false alarms."""

    scenario: str
    cause: str
    start_error: int | None
    rank: int | None
    top: str | None
    false_alarms: tuple[str, ...]
    naive_rank: int | None = None
    """Rank of the true cause when candidates are ranked by explained share alone (the baseline)."""


@dataclass(frozen=True)
class Scores:
    """Metrics over the incident scenarios (no-incident ones only count false alarms)."""

    outcomes: tuple[Outcome, ...]

    @property
    def incidents(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.cause != "none"]

    @property
    def precision_at_1(self) -> float:
        return sum(o.rank == 1 for o in self.incidents) / max(len(self.incidents), 1)

    @property
    def recall_at_3(self) -> float:
        return sum(o.rank is not None and o.rank <= 3 for o in self.incidents) / max(len(self.incidents), 1)

    @property
    def naive_precision_at_1(self) -> float:
        """precision@1 of the baseline ranking (largest explained share first)."""
        return sum(o.naive_rank == 1 for o in self.incidents) / max(len(self.incidents), 1)

    @property
    def timely(self) -> float:
        """Share of incidents whose start was found within two buckets."""
        return sum(o.start_error is not None and abs(o.start_error) <= 2 for o in self.incidents) / max(len(self.incidents), 1)

    @property
    def false_alarm_scenarios(self) -> int:
        return sum(bool(o.false_alarms) for o in self.outcomes if o.cause == "none")


def evaluate(store: Store, scenarios: list[Scenario], *, bucket: timedelta = BUCKET) -> Scores:
    """Run detect + attribute on every scenario (already written to `store`) and score them."""
    return Scores(tuple(_outcome(store, s, bucket) for s in scenarios))


def _outcome(store: Store, s: Scenario, bucket: timedelta) -> Outcome:
    scope, window = Filters(service=s.service), Window(s.start, s.end)
    found = detect(store, window, filters=scope, bucket=bucket)
    if s.incident_start is None:
        return Outcome(s.name, s.cause, None, None, None, tuple(r.signal for r in found))
    regression = next((r for r in found if r.signal == s.signal), None)
    if regression is None:
        return Outcome(s.name, s.cause, None, None, None, ())
    true_bucket = s.start + (s.incident_start - s.start) // bucket * bucket
    error = round((regression.started_at - true_bucket) / bucket)
    baseline = Window(s.start, max(regression.started_at - GUARD_BUCKETS * bucket, s.start + bucket))
    incident = Window(regression.started_at, s.end)
    result = attribute(store, s.signal, baseline=baseline, incident=incident, filters=scope)
    labels = [set(t) for t in s.truth]
    ranks = [i for i, x in enumerate(result.suspects, 1) if set(zip(x.dimensions, x.values)) in labels]
    top = result.suspects[0].label if result.suspects else None
    return Outcome(s.name, s.cause, error, ranks[0] if ranks else None, top, (), _naive_rank(store, s, baseline, incident, labels))


def _naive_rank(store: Store, s: Scenario, baseline: Window, incident: Window, labels: list[set[tuple[str, str]]]) -> int | None:
    """Where the true cause ranks by explained share alone (no coverage, no alignment): the baseline."""
    dims = list(DIMENSIONS)
    leaves = fetch_leaves(store, [get_signal(s.signal)], dims, baseline, incident, Filters(service=s.service))[s.signal]
    ranked = attribute_frame(leaves, dimensions=dims, baseline="b_num", current="c_num", baseline_count="b_den",
                             current_count="c_den", min_count=MIN_SEGMENT_CALLS).sort_values("explained_share", ascending=False)  # fmt: skip
    hits = [i for i, (d, v) in enumerate(zip(ranked["dimensions"], ranked["values"]), 1) if set(zip(d, v)) in labels]
    return hits[0] if hits else None
