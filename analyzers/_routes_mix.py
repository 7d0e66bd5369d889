"""Shifts of traffic between routes, or between a route's operations: whether a regression over
several of them shows within them.

When business hours open a slow route (a call centre's summaries, an adjuster's letters), the
whole scope's latency, cost or error rate steps up at that hour with every route running as it
did: the step is one of the mix of routes, not of any call. A route that makes an embeddings call
and a chat call per question holds two kinds of calls tens of times apart in latency, and its
median sits between them: a few more chat calls (retries, a busier tenant) move it with every call
as fast as before. Each cell's own calls (a route's calls of one operation), compared before and
after the start, tell the two apart: their changes, weighted by the cell's calls after the start,
make up the step where calls got worse (the within part of the shift, as a decomposition of a
change in a mean into within and between groups has it) and come to nothing where only the mix
moved. A provider's or a service's slice holds several routes too, so the calls scan also reads
each (provider, route) and (service, route) pair, and each (route, operation) cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._model import Filters, Regression
from ._regimes import Regime
from ._signals import WHOLE, Segments, Slice

if TYPE_CHECKING:
    import pandas

__all__ = ["MIX_SHARE", "cells_within", "cell_columns", "shows_within"]

MIX_SHARE = 0.5
"""Part of a shift over several cells that their own calls must show, the same way."""
GREW = 2.0
"""A cell whose share of the calls grew this many times over is where traffic moved."""
PAIRED = ("provider", "service")
"""Slice dimensions whose slices hold several routes, read per route too."""
_CELL = "route_operation"
_SEPARATOR = "\t"


def cell_columns(filters: Filters) -> Segments:
    """Segment columns of the calls' sliced scan naming each call's (route, operation) cell and its
    (provider, route) and (service, route) pair, for the slice dimensions the scan reads (a filter
    fixes the others; a route filter leaves one route, whose cells are its operations)."""
    cell = {_CELL: f"if(route IS NULL, NULL, concat(route, '{_SEPARATOR}', ifNull(operation, '')))"}
    if filters.route is not None:
        return cell, {}
    return cell | {_alias(d): f"if(route IS NULL OR {d} IS NULL, NULL, concat({d}, '{_SEPARATOR}', route))"
                   for d in PAIRED if getattr(filters, d) is None}, {}  # fmt: skip


def _alias(dimension: str) -> str:
    return f"{dimension}_route"


def cells_within(parts: dict[Slice, pandas.DataFrame], part: Slice) -> list[pandas.DataFrame]:
    """The frames one part of a sliced scan is read within: the (route, operation) cells of the
    whole scope or of a route's slice, the pairs of one provider or service for its slice; none
    where there is only one (no mix to move)."""
    if part == WHOLE:
        cells = _segments(parts, _CELL, "")
    elif part[0] == "route":
        cells = _segments(parts, _CELL, part[1] + _SEPARATOR)
    elif part[0] in PAIRED:
        cells = _segments(parts, _alias(part[0]), part[1] + _SEPARATOR)
    else:
        cells = []
    return cells if len(cells) > 1 else []


def _segments(parts: dict[Slice, pandas.DataFrame], alias: str, prefix: str) -> list[pandas.DataFrame]:
    """The frames of one segment column whose values start with `prefix`."""
    return [frame for (dimension, value), frame in parts.items() if dimension == alias and value.startswith(prefix)]


def shows_within(regression: Regression, cells: list[pandas.DataFrame], *, usable_calls: int, percentile: bool, floor: float) -> bool:
    """Whether a regression over several cells (routes, or a route's operations) shows within them:
    each cell's regime after the start against its own before it (buckets of `usable_calls` calls
    or more), the differences weighted by the cell's calls after the start, come to MIX_SHARE of
    the regression's shift the same way; for a percentile, in proportion to each level as well as
    in seconds (a median among an embeddings call's 0.1 s moves by a tenth of a second when chat
    calls of 6 s take 10% longer: more in seconds, far less in proportion). A cell whose calls
    moved by less than MIX_SHARE of `floor` (the smallest relative shift the signal reports) is
    as it was. A cell too thin to read on either side whose share of the calls at least doubled
    (or that only opened) is where the traffic moved: its calls count, with no change of their
    own read. Other cells too thin to read do not count. Where those that count hold under half
    the regression's calls, a mean or a rate holds, and a percentile does not: a tail over cells
    each too thin to read (a p99 asks 200 calls a bucket) may be any one cell's, or the mix's, and
    the slices judge it on their own calls. Where there are no cells (one kind of call) it holds."""
    within, relative, weight = _within(regression, cells, usable_calls=usable_calls, percentile=percentile, floor=floor)
    if weight < regression.calls / 2:
        return not (percentile and cells)
    shift = regression.current - regression.baseline
    if within / weight * np.sign(shift) < MIX_SHARE * abs(shift):
        return False
    return not percentile or not regression.baseline or relative / weight * np.sign(shift) >= MIX_SHARE * abs(shift / regression.baseline)


def _within(regression: Regression, cells: list[pandas.DataFrame], *, usable_calls: int, percentile: bool, floor: float) -> tuple[float, float, float]:
    """The cells' changes weighted by their calls after the start, in the signal's units and in
    proportion to each cell's level, and the calls that count (`shows_within`)."""
    sides = [_sides(frame, regression) for frame in cells]
    counts = np.array([[frame["calls"].to_numpy(dtype=float)[side].sum() for side in pair] for frame, pair in zip(cells, sides)]).reshape(-1, 2)
    totals = counts.sum(axis=0)
    within, relative, weight = 0.0, 0.0, 0.0
    for frame, pair, (calls_before, calls_after) in zip(cells, sides, counts):
        before, after = (_regime(frame, side, usable_calls, percentile) for side in pair)
        if before is not None and after is not None:
            moved = after.mean - before.mean
            if abs(moved) >= MIX_SHARE * floor * abs(before.mean):
                within += after.calls * moved
                relative += after.calls * moved / abs(before.mean) if before.mean else 0.0
            weight += after.calls
        elif calls_after > 0 and calls_after * totals[0] >= GREW * calls_before * totals[1]:
            weight += calls_after
    return within, relative, weight


def _sides(frame: pandas.DataFrame, regression: Regression) -> tuple[np.ndarray, np.ndarray]:
    """A cell's buckets before the regression's start, and from it until it ended."""
    times = frame["time"]
    since = (times >= regression.started_at).to_numpy()
    until = (times < regression.ended_at).to_numpy() if regression.ended_at is not None else np.ones(len(frame), dtype=bool)
    return ~since, since & until


def _regime(frame: pandas.DataFrame, side: np.ndarray, usable_calls: int, percentile: bool) -> Regime | None:
    """A cell's usable buckets of one side as one regime; None if it has none."""
    calls = frame["calls"].to_numpy(dtype=float)
    taken = side & (calls >= usable_calls) & frame["value"].notna().to_numpy()
    if not taken.any():
        return None
    squares = None if percentile else frame["squares"].to_numpy(dtype=float)[taken]
    return Regime.of(frame["value"].to_numpy(dtype=float)[taken], calls[taken], squares)
