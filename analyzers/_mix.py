"""Tenant-mix shifts: the moments one tenant's share of the calls stepped, and the test of how
far that step alone moved a score.

A tenant whose documents always score lower, growing from 4% to 16% of the traffic, lowers the
aggregate score with nothing worse for anyone: no new value appeared to anchor a test at, and the
aggregate's own shift (a hundredth or two, on a few hundred scored calls) is within its noise.
Its share of calls, counted over every call, steps far beyond its noise, so the step is a moment
found before any score is looked at; at it, the move the step explains (the share's change times
the tenant's gap to the other calls after it) is measured on all the scored calls of both sides,
with a far smaller standard error than the aggregate's shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from ._model import Filters, Window
from ._regimes import split_z
from ._signals import MAX_SLICES, Segments, bucket_params, filter_sql, full_grid, utc
from ._sql import render

if TYPE_CHECKING:
    import pandas

    from driftline.collector.store._store import Store

__all__ = ["Composition", "ShareStep", "composition", "mix_alias", "mix_columns", "share_steps"]

STEP_RATIO = 2.0
"""A tenant's share must at least double (or halve) to be a step: a share drifts by less through
an ordinary day, and a surge that moves a score visibly is larger."""


@dataclass(frozen=True)
class ShareStep:
    """One tenant's share of the calls stepping at `at`."""

    at: datetime
    value: str
    before: float
    after: float
    dimension: str = "tenant"

    @property
    def change(self) -> str:
        """`tenant=value`."""
        return f"{self.dimension}={self.value}"


def share_steps(store: Store, scan: Window, window: Window, bucket: timedelta, filters: Filters, *,
                min_segment: int, min_z: float) -> list[ShareStep]:  # fmt: skip
    """Each of the busiest tenants (`MAX_SLICES`) whose share of the calls stepped inside `window`:
    the split of the scan's buckets where its share differs most, in standard errors of a rate
    (inflated by the share's bucket-to-bucket overdispersion), by `STEP_RATIO` or more, at a bar
    of min_z raised for the tenants and splits searched (z^2 = min_z^2 + 2 ln(tenants x splits)).
    None under a tenant filter (one tenant's share of itself never moves). One small query."""
    if filters.tenant is not None:
        return []
    where, params = filter_sql(filters)
    grid = full_grid(scan, bucket)
    rows = store.rows(render("tenant_calls", filters=where), bucket_params(scan, bucket) | params)
    step = bucket.total_seconds()
    totals = np.zeros(len(grid))
    counts: dict[str, np.ndarray] = {}
    for at, tenant, calls in rows:
        k = int((utc(at).timestamp() - grid[0].timestamp()) // step)
        totals[k] += calls
        if tenant is not None:
            counts.setdefault(str(tenant), np.zeros(len(grid)))[k] += calls
    busiest = sorted(counts, key=lambda t: (-counts[t].sum(), t))[:MAX_SLICES]
    used = totals > 0
    bar = math.sqrt(min_z**2 + 2 * math.log(max(len(busiest) * int(used.sum()), 1)))
    found = [_step(counts[t][used], totals[used], [g for g, u in zip(grid, used) if u], t, min_segment, bar) for t in busiest]
    return [s for s in found if s is not None and s.at >= window.start]


def _step(tenant: np.ndarray, totals: np.ndarray, times: list[datetime], value: str, min_segment: int, bar: float) -> ShareStep | None:
    """The tenant's share step: its strongest split, if it clears `bar`, and the share after it
    differs by `STEP_RATIO`, the same way, from the share before it and from where the trend
    before it had led by the split (a line through the buckets before, weighted by their calls):
    a share climbing all day differs that much between the halves of the day, and not from the
    level it had climbed to."""
    if len(totals) < 2 * min_segment:
        return None
    share = tenant / totals
    z = np.abs(split_z(share, totals, tenant, rate=True))
    k = min_segment + int(np.argmax(z[min_segment : len(totals) - min_segment + 1]))
    x = np.arange(len(totals), dtype=float)
    slope, intercept = np.polyfit(x[:k], share[:k], 1, w=np.sqrt(totals[:k]))
    trend = float(intercept + slope * k)
    before, after = tenant[:k].sum() / totals[:k].sum(), tenant[k:].sum() / totals[k:].sum()
    if z[k] < bar or _stepped(after, before) == 0 or _stepped(after, trend) != _stepped(after, before):
        return None
    return ShareStep(times[k], value, float(before), float(after))


def _stepped(after: float, before: float) -> int:
    """1 if a share went from `before` up to `after` by `STEP_RATIO` or more, -1 if down, else 0."""
    return 1 if after >= STEP_RATIO * before else -1 if before >= STEP_RATIO * after else 0


def mix_columns(steps: list[ShareStep]) -> Segments:
    """One column per step for the scores' sliced scan: 2 for the tenant's calls, 1 for the others."""
    columns = {mix_alias(i): f"if(ifNull(tenant = {{m{i}v:String}}, 0), 2, 1)" for i in range(len(steps))}
    return columns, {f"m{i}v": s.value for i, s in enumerate(steps)}


def mix_alias(i: int) -> str:
    """The sliced scan's column of steps[i]."""
    return f"mix{i}"


@dataclass(frozen=True)
class Composition:
    """A score before and after a share step, and the part of its move the step explains."""

    before: float
    """The mean over all calls before the step."""
    after: float
    """The mean over all calls from the step on."""
    calls: int
    """Scored calls from the step on."""
    effect: float
    """The share's change times the tenant's gap to the other calls after the step."""
    z: float
    """`effect` in standard errors (signed)."""
    gap: float
    rest: float
    """The other calls' mean after the step."""


def composition(tenant: pandas.DataFrame, rest: pandas.DataFrame, k: int, *, min_calls: int) -> Composition | None:
    """The score's move at bucket k that the tenant's share step explains (frames of one grid:
    time, value, calls, squares); None unless both sides have `min_calls` scored calls on each side.
    The effect's variance is the delta method's: the shares' binomial variance times the gap
    squared, plus the gap's variance times the share change squared."""
    (nt0, st0, qt0), (nt1, st1, qt1) = _sums(tenant, k)
    (nr0, sr0, _), (nr1, sr1, qr1) = _sums(rest, k)
    if min(nt0, nt1, nr0, nr1) < min_calls:
        return None
    n0, n1 = nt0 + nr0, nt1 + nr1
    p0, p1 = nt0 / n0, nt1 / n1
    mt, mr = st1 / nt1, sr1 / nr1
    gap, change = mt - mr, p1 - p0
    gap_var = max(qt1 / nt1 - mt**2, 0.0) / nt1 + max(qr1 / nr1 - mr**2, 0.0) / nr1
    variance = gap**2 * (p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1) + change**2 * gap_var
    effect = change * gap
    z = effect / math.sqrt(variance) if variance > 0 else 0.0
    return Composition((st0 + sr0) / n0, (st1 + sr1) / n1, int(n1), effect, z, gap, mr)


def _sums(frame: pandas.DataFrame, k: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(calls, sum, sum of squares) of the buckets before k, and of those from k on."""
    calls = frame["calls"].to_numpy(dtype=float)
    sums = np.nan_to_num(frame["value"].to_numpy(dtype=float)) * calls
    squares = np.nan_to_num(frame["squares"].to_numpy(dtype=float))
    return ((calls[:k].sum(), sums[:k].sum(), squares[:k].sum()), (calls[k:].sum(), sums[k:].sum(), squares[k:].sum()))
