"""The two-regime test detection rests on: do the calls after a moment differ from those before
by more than their noise, in standard errors?

A regime is a run of buckets (or the calls of one segment) summed: calls, the signal's sum and
sum of squares, and how far its bucket means stray from its mean (overdispersion: daily swings
make buckets vary more than their calls explain). `shift_z` tests a mean or a rate between two
regimes; `rank_z` tests percentile buckets, whose values are too heavy-tailed for a mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Regime", "arcsine_z", "rank_z", "shift_z", "weighted_mean"]


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
    A rate is tested on the arcsine scale (`arcsine_z`)."""
    n = before.calls + after.calls
    mean = (before.mean * before.calls + after.mean * after.calls) / n
    per_call = max((before.squares + after.squares) / n - mean**2, 1e-12 * max(1.0, mean**2))
    dispersion = max((before.spread + after.spread) / per_call / max(before.buckets + after.buckets - 2, 1), 1.0)
    if rate:
        return float(arcsine_z(before.squares, before.calls, after.squares, after.calls, dispersion))
    own = [max(r.squares / r.calls - r.mean**2, 0.0) / r.calls for r in (before, after)]
    return (after.mean - before.mean) / math.sqrt(dispersion * max(per_call * (1 / before.calls + 1 / after.calls), sum(own)))


def arcsine_z(xb: Any, nb: Any, xa: Any, na: Any, dispersion: Any) -> Any:
    """Two proportions' difference on the arcsine scale (counts xb of nb, xa of na; scalars or arrays).
    The normal test of a rate overstates a handful of bad calls against a clean baseline (7 errors
    where 0.8 were due reads as 7 standard errors); the variance-stabilised one reads it as 3.5."""
    pb, pa = (xb + 0.375) / (nb + 0.75), (xa + 0.375) / (na + 0.75)
    return 2 * (np.arcsin(np.sqrt(pa)) - np.arcsin(np.sqrt(pb))) / np.sqrt(dispersion * (1 / nb + 1 / na))


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(values, weights=weights)) if weights.sum() > 0 else float(np.mean(values))


def rank_z(before: np.ndarray, after: np.ndarray) -> float:
    """Mann-Whitney's U of `after` against `before` as a z (positive: after is higher), ties averaged."""
    import pandas as pd

    n1, n2 = len(before), len(after)
    ranks = pd.Series(np.concatenate([before, after])).rank().to_numpy()
    u = float(ranks[n1:].sum()) - n2 * (n2 + 1) / 2
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
