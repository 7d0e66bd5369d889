"""The one shape every scenario world hands to the report evaluation.

Worlds are written independently (different products, different write paths); a common label
lets one harness score them all and compare them side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["CONTROL", "Label", "LabelledScenario", "cause_set"]

CONTROL = "control"
"""The kind of a scenario without an incident: any finding on it is a false one."""

Label = frozenset[tuple[str, str]]
"""A cause: the (dimension, value) pairs that together select the calls the incident hit."""


def cause_set(*pairs: tuple[str, str]) -> Label:
    """A cause label from (dimension, value) pairs."""
    return frozenset(pairs)


@dataclass(frozen=True)
class LabelledScenario:
    """One labelled incident (or control) and how to write it into a fresh, migrated store.

    `signals`: the signals the incident moves (any is a correct finding). `causes`: every label
    set that is a correct top suspect (aliases selecting the same calls count). `service`: the
    filter the on-call uses (None: the whole store).
    """

    name: str
    kind: str
    world: str
    service: str | None
    start: datetime
    end: datetime
    incident_start: datetime | None
    signals: tuple[str, ...]
    causes: tuple[Label, ...]
    writer: Callable[[Store], int] = field(repr=False, compare=False)
    notes: str = ""
    detail: Any = field(default=None, repr=False, compare=False)
    """World-specific data (world 2: its spec; world 1: its generated calls)."""

    @property
    def incident(self) -> bool:
        return self.kind != CONTROL

    def write(self, store: Store) -> int:
        """Insert the scenario into `store` (its own store); returns the number of LLM calls."""
        return self.writer(store)
