"""The two-regime test detection rests on: do the calls after a moment differ from those before
by more than their noise, in standard errors?

A regime is a run of buckets (or the calls of one segment) summed: calls, the signal's sum and
sum of squares, and how far its bucket means stray from its mean (overdispersion: daily swings
make buckets vary more than their calls explain). `shift_z` tests a mean or a rate between two
regimes; `rank_z` tests percentile buckets, whose values are too heavy-tailed for a mean;
`trend_slope` is the trend a baseline was already on, which a heavy-tailed signal must step out of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Regime", "arcsine_z", "exact_z", "rank_z", "rank_z_splits", "shift_z", "split_z", "sums_z", "trend_slope", "weighted_mean"]


@dataclass(frozen=True)
class Regime:
    """Buckets [start, end) of a series: their mean and the sums its test needs."""

    mean: float
    calls: float
    squares: float
    """Sum of the squared per-call values (0 for a percentile)."""
    spread: float
    """Weighted squared deviations of the bucket means from the regime's mean."""
    buckets: int

    @classmethod
    def of(cls, raw: np.ndarray, calls: np.ndarray, squares: np.ndarray | None) -> Regime:
        """Mean weighted by calls. A percentile (no per-call values, heavy-tailed bucket values)
        gets the median bucket value instead (its test is on ranks: `rank_z`)."""
        if squares is None or not np.isfinite(squares).all():
            return cls(float(np.median(raw)), float(calls.sum()), 0.0, 0.0, len(raw))
        mean = weighted_mean(raw, calls)
        return cls(mean, float(calls.sum()), float(squares.sum()), float((calls * (raw - mean) ** 2).sum()), len(raw))


def shift_z(before: Regime, after: Regime, *, rate: bool = False) -> float:
    """The shift of the means in standard errors, as a two-sample test under "no change": the
    per-call variance of both regimes pooled (a baseline without a single bad call does not make
    every later one infinitely significant), or each regime's own if that is larger (a few huge
    values in a short regime, as tokens after cancel are, do not make a shift), inflated by the
    overdispersion of the bucket means around their own regime's mean (daily swings), pooled too.
    A rate is tested by the exact conditional test (`exact_z`), inflated the same way."""
    return float(sums_z(before.calls, before.mean * before.calls, before.squares, before.spread,
                        after.calls, after.mean * after.calls, after.squares, after.spread,
                        before.buckets + after.buckets, rate=rate))  # fmt: skip


def sums_z(nb: Any, sb: Any, qb: Any, spread_b: Any, na: Any, sa: Any, qa: Any, spread_a: Any, buckets: int, *, rate: bool) -> Any:
    """`shift_z` from the regimes' sums (calls n, sum s, sum of squares q, bucket spread): scalars
    for one pair of regimes, or arrays for every split of a series at once (running sums)."""
    n = nb + na
    mean = (sb + sa) / n
    per_call = np.maximum((qb + qa) / n - mean**2, 1e-12 * np.maximum(1.0, mean**2))
    dispersion = np.maximum((spread_b + spread_a) / per_call / max(buckets - 2, 1), 1.0)
    if rate:
        return exact_z(qb, nb, qa, na) / np.sqrt(dispersion)
    own = np.maximum(qb / nb - (sb / nb) ** 2, 0.0) / nb + np.maximum(qa / na - (sa / na) ** 2, 0.0) / na
    return (sa / na - sb / nb) / np.sqrt(dispersion * np.maximum(per_call * (1 / nb + 1 / na), own))


def split_z(raw: np.ndarray, calls: np.ndarray, squares: np.ndarray, *, rate: bool) -> np.ndarray:
    """`shift_z` of the buckets from k on against those before k, for every k (index k; 0 where
    undefined), from running sums."""
    cum = [np.concatenate([[0.0], np.cumsum(x)]) for x in (calls, raw * calls, squares, calls * raw**2)]
    (nb, sb, qb, wb), (na, sa, qa, wa) = cum, [c[-1] - c for c in cum]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = sums_z(nb, sb, qb, wb - sb**2 / nb, na, sa, qa, wa - sa**2 / na, len(raw), rate=rate)
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def arcsine_z(xb: Any, nb: Any, xa: Any, na: Any, dispersion: Any) -> Any:
    """Two proportions' difference on the arcsine scale (counts xb of nb, xa of na; scalars or arrays).
    The normal test of a rate overstates a handful of bad calls against a clean baseline (7 errors
    where 0.8 were due reads as 7 standard errors); the variance-stabilised one reads it as 3.5."""
    pb, pa = (xb + 0.375) / (nb + 0.75), (xa + 0.375) / (na + 0.75)
    return 2 * (np.arcsin(np.sqrt(pa)) - np.arcsin(np.sqrt(pb))) / np.sqrt(dispersion * (1 / nb + 1 / na))


def exact_z(xb: Any, nb: Any, xa: Any, na: Any) -> Any:
    """Two proportions' difference (counts xb of nb, xa of na; scalars or arrays) as the z of the
    conditional exact test: given all the bad calls, how many fell before the split is binomial
    with the share of calls before it, under "no change" (exact for rare outcomes, as errors and
    429s are; a common outcome's z gets the finite-population factor). Normal approximations
    mislead at the ends: 0 failures before and 47 of 1,594 after read as 4.7 on the arcsine scale,
    where the chance of no failure in those 345 earlier calls, about 1 in 10,000, is a z of 3.8."""
    from scipy.special import bdtr, bdtrc, ndtri

    xb, nb, xa, na = (np.rint(np.asarray(v, dtype=float)).astype(np.int64) for v in (xb, nb, xa, na))
    total, bad = nb + na, xb + xa
    valid = (nb > 0) & (na > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(valid, nb / total, 0.5)
        at_most = bdtr(xb, bad, share)  # so few bad calls before: the rate went up
        at_least = np.where(xb > 0, bdtrc(np.maximum(xb - 1, 0), bad, share), 1.0)  # so many: it went down
        z = np.where(xa * nb >= xb * na, -ndtri(np.clip(at_most, 1e-300, 1.0)), ndtri(np.clip(at_least, 1e-300, 1.0)))
        return np.where(valid, z * np.sqrt((total - 1) / np.maximum(total - bad, 1).astype(float)), np.nan)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(values, weights=weights)) if weights.sum() > 0 else float(np.mean(values))


def rank_z(before: np.ndarray, after: np.ndarray) -> float:
    """Mann-Whitney's U of `after` against `before` as a z (positive: after is higher), ties averaged."""
    return float(rank_z_splits(np.concatenate([before, after]))[len(before)])


def rank_z_splits(values: np.ndarray) -> np.ndarray:
    """`rank_z` of values[k:] against values[:k] for every k (index k; NaN where a side is empty):
    the joint ranks of a split are the series' ranks, so running sums give every split at once."""
    import pandas as pd

    n = len(values)
    ranks = np.concatenate([[0.0], np.cumsum(pd.Series(values).rank().to_numpy())])
    n1 = np.arange(n + 1, dtype=float)
    n2 = n - n1
    u = (ranks[-1] - ranks) - n2 * (n2 + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return (u - n1 * n2 / 2) / np.sqrt(n1 * n2 * (n + 1) / 12)


def trend_slope(positions: np.ndarray, values: np.ndarray, *, up: bool) -> float:
    """The trend of `values` over `positions` (Theil-Sen: the median pairwise slope, which a blip
    does not tilt), 0 unless it points `up` (or down, for up=False) as asked."""
    from scipy.stats import theilslopes

    slope = float(theilslopes(values, positions).slope)
    return max(slope, 0.0) if up else min(slope, 0.0)
