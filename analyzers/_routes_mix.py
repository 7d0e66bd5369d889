"""Shifts of traffic between routes: whether a regression over several routes shows within them.

When business hours open a slow route (a call centre's summaries, an adjuster's letters), the
whole scope's latency, cost or error rate steps up at that hour with every route running as it
did: the step is one of the mix of routes, not of any call. Each route's own calls, compared
before and after the start, tell the two apart: their changes, weighted by the route's calls
after the start, make up the step where calls got worse (the within part of the shift, as a
decomposition of a change in a mean into within and between groups has it) and come to nothing
where only the mix moved. A provider's or a service's slice holds several routes too, so the
calls scan also reads each (provider, route) and (service, route) pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._model import Filters, Regression
from ._regimes import Regime
from ._signals import WHOLE, Segments, Slice

if TYPE_CHECKING:
    import pandas

__all__ = ["MIX_SHARE", "route_pairs", "routes_within", "shows_within"]

MIX_SHARE = 0.5
"""Part of a shift over several routes that their own calls must show, the same way."""
GREW = 2.0
"""A route whose share of the calls grew this many times over is where traffic moved."""
PAIRED = ("provider", "service")
"""Slice dimensions whose slices hold several routes, read per route too."""
_SEPARATOR = "\t"


def route_pairs(filters: Filters) -> Segments:
    """Segment columns of the calls' sliced scan naming each call's (provider, route) and
    (service, route) pair, for the slice dimensions the scan reads (a filter fixes the others;
    a route filter leaves one route, where no mix of routes can move anything)."""
    if filters.route is not None:
        return {}, {}
    return {_alias(d): f"if(route IS NULL OR {d} IS NULL, NULL, concat({d}, '{_SEPARATOR}', route))"
            for d in PAIRED if getattr(filters, d) is None}, {}  # fmt: skip


def _alias(dimension: str) -> str:
    return f"{dimension}_route"


def routes_within(parts: dict[Slice, pandas.DataFrame], part: Slice) -> list[pandas.DataFrame]:
    """The per-route frames of one part of a sliced scan: every route's for the whole scope, the
    pairs' of one provider or service for its slice; none for a route's own slice."""
    if part == WHOLE:
        return [frame for (dimension, _), frame in parts.items() if dimension == "route"]
    if part[0] not in PAIRED:
        return []
    prefix = part[1] + _SEPARATOR
    return [frame for (dimension, value), frame in parts.items() if dimension == _alias(part[0]) and value.startswith(prefix)]


def shows_within(regression: Regression, routes: list[pandas.DataFrame], *, usable_calls: int, percentile: bool) -> bool:
    """Whether a regression over several routes shows within them: each route's regime after the
    start against its own before it (buckets of `usable_calls` calls or more), the differences
    weighted by the route's calls after the start, come to MIX_SHARE of the regression's shift
    the same way. A route too thin to read on either side whose share of the calls at least
    doubled (or that only opened) is where the traffic moved: its calls count, with no change of
    their own read. Other routes too thin to read do not count; it holds where those that count
    hold under half the regression's calls, or there are no routes."""
    sides = [_sides(frame, regression) for frame in routes]
    counts = np.array([[frame["calls"].to_numpy(dtype=float)[side].sum() for side in pair] for frame, pair in zip(routes, sides)]).reshape(-1, 2)
    totals = counts.sum(axis=0)
    within, weight = 0.0, 0.0
    for frame, pair, (calls_before, calls_after) in zip(routes, sides, counts):
        before, after = (_regime(frame, side, usable_calls, percentile) for side in pair)
        if before is not None and after is not None:
            within += after.calls * (after.mean - before.mean)
            weight += after.calls
        elif calls_after > 0 and calls_after * totals[0] >= GREW * calls_before * totals[1]:
            weight += calls_after
    if weight < regression.calls / 2:
        return True
    shift = regression.current - regression.baseline
    return within / weight * np.sign(shift) >= MIX_SHARE * abs(shift)


def _sides(frame: pandas.DataFrame, regression: Regression) -> tuple[np.ndarray, np.ndarray]:
    """A route's buckets before the regression's start, and from it until it ended."""
    times = frame["time"]
    since = (times >= regression.started_at).to_numpy()
    until = (times < regression.ended_at).to_numpy() if regression.ended_at is not None else np.ones(len(frame), dtype=bool)
    return ~since, since & until


def _regime(frame: pandas.DataFrame, side: np.ndarray, usable_calls: int, percentile: bool) -> Regime | None:
    """A route's usable buckets of one side as one regime; None if it has none."""
    calls = frame["calls"].to_numpy(dtype=float)
    taken = side & (calls >= usable_calls) & frame["value"].notna().to_numpy()
    if not taken.any():
        return None
    squares = None if percentile else frame["squares"].to_numpy(dtype=float)[taken]
    return Regime.of(frame["value"].to_numpy(dtype=float)[taken], calls[taken], squares)
