"""Tenant-mix shifts: the moments one tenant's share of the calls stepped, and the test of how
far that step alone moved a score.

A tenant whose documents always score lower, growing from 4% to 16% of the traffic, lowers the
aggregate score with nothing worse for anyone: no new value appeared to anchor a test at, and the
aggregate's own shift (a hundredth or two, on a few hundred scored calls) is within its noise.
Its share of calls, counted over every call, steps far beyond its noise, so the step is a moment
found before any score is looked at; at it, the move the step explains (the share's change times
the tenant's gap to the other calls after it) is measured on all the scored calls of both sides,
with a far smaller standard error than the aggregate's shift. The calls' input confidence is
tested the same way (`Signal.of_inputs`): a tenant with poorer scans moves it as it moves a score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from ._model import Filters, Window
from ._regimes import Regime, shift_z
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
    """The tenant's share of the calls before `at`, and from `at` to `until`."""
    until: datetime | None = None
    """When the share came back (a surge that ended), None while it lasts."""

    @property
    def change(self) -> str:
        """`tenant=value`."""
        return f"tenant={self.value}"


def share_steps(store: Store, scan: Window, window: Window, bucket: timedelta, filters: Filters, *,
                min_segment: int, min_z: float) -> list[ShareStep]:  # fmt: skip
    """Each of the busiest tenants (`MAX_SLICES`) whose share of the calls stepped inside `window`
    (`_step`), at a bar of min_z raised for the tenants, starts and ends searched (z^2 = min_z^2 +
    2 ln(tenants x starts x ends)). None under a tenant filter (one tenant's share of itself never
    moves). One small query."""
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
    times, totals = [g for g, u in zip(grid, used) if u], _coarse(totals[used])
    bar = math.sqrt(min_z**2 + 2 * math.log(max(len(busiest) * len(totals) ** 2 / 2, 1)))
    found = [_step(_coarse(counts[t][used]), totals, times[:: _factor(len(times))], t, min_segment, bar) for t in busiest]
    return [s for s in found if s is not None and s.at >= window.start]


MAX_STEP_BUCKETS = 600
"""Buckets the share search reads at most (neighbours are summed beyond): it weighs every start
and end at once, so its arrays grow with the square of the buckets."""


def _factor(buckets: int) -> int:
    """Buckets summed into one so that at most MAX_STEP_BUCKETS are left."""
    return math.ceil(buckets / MAX_STEP_BUCKETS)


def _coarse(counts: np.ndarray) -> np.ndarray:
    """Counts summed in runs of `_factor` buckets."""
    factor = _factor(len(counts))
    return np.add.reduceat(counts, np.arange(0, len(counts), factor)) if factor > 1 else counts


def _step(tenant: np.ndarray, totals: np.ndarray, times: list[datetime], value: str, min_segment: int, bar: float) -> ShareStep | None:
    """The tenant's share step: the run of buckets whose share differs most from the share before
    it (`_strongest_run`; to the end unless the share came back within half the step after it), if
    that difference clears `bar` in standard errors of a rate (inflated by the share's
    bucket-to-bucket overdispersion), and the share in the run differs by `STEP_RATIO`, the same
    way, from the share before it and from where the trend before it had led by its start (a line
    through the buckets before, weighted by their calls): a share climbing all day differs that
    much between the halves of the day, and not from the level it had climbed to."""
    n = len(totals)
    if n < 2 * min_segment:
        return None
    share = tenant / totals
    k, e = _strongest_run(tenant, totals, min_segment)
    before, after = tenant[:k].sum() / totals[:k].sum(), tenant[k:e].sum() / totals[k:e].sum()
    if e < n and abs(tenant[e:].sum() / totals[e:].sum() - before) >= abs(after - before) / 2:
        e, after = n, tenant[k:].sum() / totals[k:].sum()  # it never came back: the step goes on
    z = abs(shift_z(Regime.of(share[:k], totals[:k], tenant[:k]), Regime.of(share[k:e], totals[k:e], tenant[k:e]), rate=True))
    x = np.arange(n, dtype=float)
    slope, intercept = np.polyfit(x[:k], share[:k], 1, w=np.sqrt(totals[:k]))
    trend = float(intercept + slope * k)
    if z < bar or _stepped(after, before) == 0 or _stepped(after, trend) != _stepped(after, before):
        return None
    return ShareStep(times[k], value, float(before), float(after), until=times[e] if e < n else None)


def _strongest_run(tenant: np.ndarray, totals: np.ndarray, min_segment: int) -> tuple[int, int]:
    """The buckets [k, e), each side at least min_segment long, whose share differs most from the
    share of the buckets before k, in plain binomial standard errors: every start and end at once,
    from running sums (a surge of an hour in a day is diluted by the rest of the day after it)."""
    ones, calls = (np.concatenate([[0.0], np.cumsum(v)]) for v in (tenant, totals))
    k, e = np.arange(len(ones))[:, None], np.arange(len(ones))[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside, within = ones[e] - ones[k], calls[e] - calls[k]
        pooled = (ones[k] + inside) / (calls[k] + within)
        z = np.abs(inside / within - ones[k] / calls[k]) / np.sqrt(pooled * (1 - pooled) * (1 / calls[k] + 1 / within))
    z = np.where((k >= min_segment) & (e - k >= min_segment), np.nan_to_num(z, nan=0.0, posinf=0.0), 0.0)
    start, end = np.unravel_index(int(np.argmax(z)), z.shape)
    return int(start), int(end)


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
    """A score before and during a share step, and the part of its move the step explains."""

    before: float
    """The mean over all calls before the step."""
    after: float
    """The mean over all calls during the step."""
    calls: int
    """Scored calls during the step."""
    z: float
    """The move the step explains (the share's change times `gap`) in standard errors (signed)."""
    gap: float
    """The tenant's mean less the other calls' during the step."""
    rest: float
    """The other calls' mean during the step."""


def composition(tenant: pandas.DataFrame, rest: pandas.DataFrame, k: int, end: int | None, *, min_calls: int) -> Composition | None:
    """The score's move over buckets [k, end) (to the last, for None) that the tenant's share step
    explains, against the buckets before k (frames of one grid: time, value, calls, squares); None
    unless both sides have `min_calls` scored calls on each side.
    The effect's variance is the delta method's: the shares' binomial variance times the gap
    squared, plus the gap's variance times the share change squared."""
    (nt0, st0, qt0), (nt1, st1, qt1) = _sums(tenant, k, end)
    (nr0, sr0, _), (nr1, sr1, qr1) = _sums(rest, k, end)
    if min(nt0, nt1, nr0, nr1) < min_calls:
        return None
    n0, n1 = nt0 + nr0, nt1 + nr1
    p0, p1 = nt0 / n0, nt1 / n1
    mt, mr = st1 / nt1, sr1 / nr1
    gap, change = mt - mr, p1 - p0
    gap_var = max(qt1 / nt1 - mt**2, 0.0) / nt1 + max(qr1 / nr1 - mr**2, 0.0) / nr1
    variance = gap**2 * (p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1) + change**2 * gap_var
    z = change * gap / math.sqrt(variance) if variance > 0 else 0.0
    return Composition((st0 + sr0) / n0, (st1 + sr1) / n1, int(n1), z, gap, mr)


def _sums(frame: pandas.DataFrame, k: int, end: int | None) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(calls, sum, sum of squares) of the buckets before k, and of those from k to `end`."""
    calls = frame["calls"].to_numpy(dtype=float)
    sums = np.nan_to_num(frame["value"].to_numpy(dtype=float)) * calls
    squares = np.nan_to_num(frame["squares"].to_numpy(dtype=float))
    return ((calls[:k].sum(), sums[:k].sum(), squares[:k].sum()), (calls[k:end].sum(), sums[k:end].sum(), squares[k:end].sum()))
