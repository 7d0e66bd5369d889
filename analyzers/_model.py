"""The results analyzers hand to the CLI, the report and the JSON output.

Plain frozen dataclasses: detection gives Regressions, attribution gives Suspects, the timeline
gives TimelineEvents. Each result cites what it rests on (`evidence`: the query name and its
parameters, or exemplar trace ids), so a post-mortem built from them cannot drift from the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["Attribution", "Evidence", "Filters", "Regression", "SliceRef", "Suspect", "TimelineEvent", "Window"]

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end), timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")


@dataclass(frozen=True)
class Filters:
    """Which calls an analysis looks at; None means all."""

    service: str | None = None
    route: str | None = None
    tenant: str | None = None
    environment: str | None = None
    provider: str | None = None
    """`--provider`; the report also sets it, to attribute one provider's regression within its calls."""


@dataclass(frozen=True)
class Evidence:
    """What a finding rests on: the named query with its bound parameters, and exemplar traces."""

    query: str
    parameters: dict[str, Any] = field(default_factory=dict)
    trace_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Regression:
    """A signal that left its baseline: when, how far, how sure."""

    signal: str
    started_at: datetime
    baseline: float
    current: float
    direction: Direction
    relative_change: float
    confidence: float
    calls: int
    evidence: Evidence
    ended_at: datetime | None = None
    slice: SliceRef | None = None
    """Where the regression was found when the whole scope hid it (one route, provider or service);
    None when the whole scope regressed. Baseline, current and calls are then the slice's."""
    anchor: str | None = None
    """The change (`prompt_version=v9`) at whose first appearance the regression was tested when
    only that test found it (change-anchored detection; `started_at` is then that first call), or
    the tenant (`tenant=acme`) at whose share step it was (`share_step`); None when the search over
    every split did."""
    anchor_calls_only: bool = False
    """The anchored test read only the calls carrying the change (it reached part of its route: an
    A/B test, a canary) against the route's calls of the same request models before it; baseline,
    current and calls are then theirs."""
    share_step: tuple[float, float] | None = None
    """For a tenant-mix shift (`anchor` names the tenant, `started_at` is when its share stepped,
    `ended_at` when it came back, if it did): the tenant's share of all calls before and during the
    step; the test measured how far that step alone moved the signal (its gap to the other calls
    times the share's change)."""

    @property
    def where(self) -> str:
        """`route=/chat` for a slice's regression, '' for the whole scope's."""
        return "" if self.slice is None else f"{self.slice.dimension}={self.slice.value}"

    @property
    def anchor_note(self) -> str:
        """How a finding that only a test at a known moment found was found; '' for the others."""
        if self.anchor is None:
            return ""
        if self.share_step is not None:
            before, after = self.share_step
            return f"found where {self.anchor}'s share of the calls stepped from {before:.1%} to {after:.1%}, tested there for the move that step alone explains"
        own = ", on the calls carrying it against those of its route before it" if self.anchor_calls_only else ""
        return f"found at the first appearance of {self.anchor}, tested there alone{own}"


@dataclass(frozen=True)
class SliceRef:
    """One value of one slice dimension: the calls of route /chat, provider openai, service billing."""

    dimension: str
    value: str


@dataclass(frozen=True)
class Suspect:
    """A dimension value (or pair) that explains part of a regression."""

    dimensions: tuple[str, ...]
    values: tuple[str, ...]
    explained_share: float
    effect: Literal["worse", "mix", "better"]
    baseline_value: float | None
    current_value: float | None
    baseline_calls: int
    current_calls: int
    first_seen: datetime | None
    aligned_change: str | None
    evidence: Evidence
    root_cause: bool = False
    """Part of the set of candidates that together explain the change (attribute_frame's stopping rule)."""
    equivalents: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    """Other (dimensions, values) segments covering exactly the same calls (a response model and its fingerprint)."""
    uncapped_share: float | None = None
    """The explained share before capping at 1 (above 1 when other segments moved the other way)."""

    @property
    def label(self) -> str:
        """`response_model=gpt-4o-2024-11-20` or `prompt_version=v8 & route=/chat`."""
        return " & ".join(f"{d}={v}" for d, v in zip(self.dimensions, self.values))

    def names(self, dimension: str, value: str) -> bool:
        """Whether the suspect, or a segment it names as holding the same calls, selects dimension=value."""
        return any((dimension, value) in zip(dims, values) for dims, values in [(self.dimensions, self.values), *self.equivalents])

    @property
    def named(self) -> str:
        """The label with its equivalent segments: `response_model=X (same calls: system_fingerprint=fp_1)`."""
        same = ", ".join(" & ".join(f"{d}={v}" for d, v in zip(dims, values)) for dims, values in self.equivalents)
        return f"{self.label} (same calls: {same})" if same else self.label


@dataclass(frozen=True)
class Attribution:
    """Ranked suspects for one regressed signal between a baseline and an incident window."""

    signal: str
    baseline: Window
    incident: Window
    baseline_value: float
    incident_value: float
    suspects: tuple[Suspect, ...]


@dataclass(frozen=True)
class TimelineEvent:
    """One line of the post-mortem timeline."""

    time: datetime
    kind: Literal["change", "first_seen", "change_point", "burst", "recovered"]
    summary: str
    evidence: Evidence
    flags: tuple[str, ...] = ()


def as_dict(result: Any) -> dict[str, Any]:
    """A result as JSON-ready data (datetimes as ISO 8601 strings)."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return convert(asdict(result))
