"""Change points of a plain numeric series, with `ruptures` (binary segmentation) doing the search.

The convention is the one of the Turing Change Point Detection benchmark (TCPD) and of
ruptures: a change point is the index of the first observation of a new segment, so a
series that shifts between values[k-1] and values[k] has the change point k; 0 and len(values)
are never returned.

Default model ("auto"): each segment is Gaussian with its own variance and a mean that is
either constant or linear in time, whichever wins by BIC. So level shifts, variance shifts and
slope changes are change points, while a steady trend is one segment. Variances are floored at
a resolution: max(half the noise level, 5% of the series' standard deviation), so a smooth curve or a slow
wander is not chopped into pieces to explain wiggles far smaller than the series' own extent,
and a constant stretch cannot claim zero variance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["change_points", "noise_scale"]

#: Segment standard deviations are floored at max(NOISE_FLOOR x noise, RESOLUTION x overall std).
NOISE_FLOOR = 0.5
RESOLUTION = 0.05


def _mad(x: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def noise_scale(values: np.ndarray) -> float:
    """Robust noise level of a 1-D series, unmoved by trends, drifts and a few level shifts.

    The MAD of second differences / sqrt(6): for iid noise e, e[t] - 2e[t+1] + e[t+2] has
    variance 6 sigma^2, and a linear trend vanishes from second differences (the previous
    version used first differences, which a trend biases). Falls back to the mean absolute
    deviation when more than half the second differences are equal (step-like integer
    series), then to first differences, then to the standard deviation; 0 only for a constant.
    """
    values = np.asarray(values, dtype=float).ravel()
    if len(values) < 2:
        return 0.0
    for order in (2, 1):
        if len(values) <= order:
            continue
        diffs = np.diff(values, n=order)
        norm = math.sqrt(6.0 if order == 2 else 2.0)
        scale = _mad(diffs)
        if scale <= 0:
            scale = 1.2533 * float(np.mean(np.abs(diffs - np.median(diffs))))
        if scale > 0:
            return scale / norm
    return float(np.std(values))


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Missing values (NaN) interpolated linearly, edges held at the nearest observation."""
    filled = values.copy()
    for col in range(filled.shape[1]):
        column = filled[:, col]
        missing = np.isnan(column)
        if missing.all():
            raise ValueError("the series has no numeric values")
        if missing.any():
            index = np.arange(len(column))
            column[missing] = np.interp(index[missing], index[~missing], column[~missing])
    return filled


def _trend_normal_cost(floor: np.ndarray, slope_penalty: float, min_size: int) -> Any:
    """ruptures cost: -2 log-likelihood of a Gaussian segment, constant or linear mean (BIC choice).

    error(s, e) = min(L * sum_d log v0_d,  L * sum_d log v1_d + slope_penalty), where v0/v1 are
    the residual variances (floored) around the segment's mean / least-squares line; every term
    is O(1) from cumulative sums.
    """
    from ruptures.base import BaseCost

    class TrendNormalCost(BaseCost):
        model = "trend_normal"

        def __init__(self) -> None:
            self.min_size = min_size

        def fit(self, signal: np.ndarray) -> TrendNormalCost:
            y = np.asarray(signal, dtype=float)
            y = y[:, None] if y.ndim == 1 else y
            self.signal = y
            n = len(y)
            t = np.arange(n, dtype=float)[:, None] / max(n - 1, 1)

            def csum(a: np.ndarray) -> np.ndarray:
                return np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])

            self._y, self._yy, self._ty = csum(y), csum(y * y), csum(t * y)
            self._t, self._tt = csum(t)[:, 0], csum(t * t)[:, 0]
            self._log_floor = np.log(floor)
            self._scalar = y.shape[1] == 1
            if self._scalar:  # plain floats: much faster than 1-element arrays in the search loop
                self._y, self._yy, self._ty = (a[:, 0].tolist() for a in (self._y, self._yy, self._ty))
                self._t, self._tt = self._t.tolist(), self._tt.tolist()
                self._f = float(floor[0])
            return self

        def error(self, start: int, end: int) -> float:
            length = end - start
            if self._scalar:
                sy = self._y[end] - self._y[start]
                syy = max(self._yy[end] - self._yy[start] - sy * sy / length, 0.0)
                const = length * math.log(max(syy / length, self._f))
                if length < 3:
                    return const
                st = self._t[end] - self._t[start]
                stt = self._tt[end] - self._tt[start] - st * st / length
                sty = self._ty[end] - self._ty[start] - st * sy / length
                rss = max(syy - sty * sty / stt, 0.0) if stt > 0 else syy
                return min(const, length * math.log(max(rss / length, self._f)) + slope_penalty)
            sy = self._y[end] - self._y[start]
            syy = np.maximum(self._yy[end] - self._yy[start] - sy * sy / length, 0.0)
            const = length * float(np.sum(np.maximum(np.log(np.maximum(syy, 1e-300) / length), self._log_floor)))
            if length < 3:
                return const
            st = self._t[end] - self._t[start]
            stt = self._tt[end] - self._tt[start] - st * st / length
            sty = self._ty[end] - self._ty[start] - st * sy / length
            rss = np.maximum(syy - sty * sty / stt, 0.0) if stt > 0 else syy
            linear = length * float(np.sum(np.maximum(np.log(np.maximum(rss, 1e-300) / length), self._log_floor)))
            return min(const, linear + slope_penalty)

    return TrendNormalCost()


def change_points(values: Sequence[float] | Sequence[Sequence[float]] | Any, *, penalty: float | None = None,
                  min_size: int = 2, model: str = "auto") -> list[int]:  # fmt: skip
    """Indices where the series changes regime: level, variance or slope (default model).

    `values` is a 1-D sequence, or 2-D (observations x dimensions) for a multivariate series;
    NaNs are interpolated. Each dimension is scaled by its robust noise level (`noise_scale`).

    model="auto" (default): Gaussian segments with their own variance and a constant or linear
    mean (BIC picks per segment), standard deviations floored at max(NOISE_FLOOR x noise, RESOLUTION x
    the dimension's standard deviation), searched by binary segmentation. `penalty` is the cost of one change
    point in -2 log-likelihood units; the default, (2d + 1) log n for d dimensions (3 log n
    for a plain series: a mean, a variance and a location, as in BIC/MBIC), plus log n per
    dimension for a segment that uses a slope.
    Any other `model` is a ruptures cost ("l2", "l1", "rbf", "normal", ...) searched by PELT on
    the noise-scaled data as before, `penalty` in units of noise variance (default 3 log n).
    `min_size` is the shortest segment allowed.

    Returns sorted indices k (0 < k < n): values[k] is the first observation of a new segment.
    """
    import ruptures

    data = np.asarray(values, dtype=float)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise ValueError("values must be a 1-D series or a 2-D (observations x dimensions) array")
    n, dims = data.shape
    min_size = max(int(min_size), 1)
    if n < 2 * min_size:
        return []
    data = _fill_gaps(data)
    spread = data.std(axis=0)
    scales = np.array([noise_scale(data[:, c]) for c in range(dims)])
    scales = np.where(scales > 0, scales, np.where(spread > 0, spread, 1.0))
    scaled = (data - np.median(data, axis=0)) / scales
    log_n = math.log(n)

    if model == "auto":
        floor = np.maximum(NOISE_FLOOR, RESOLUTION * spread / scales) ** 2
        pen = (2 * dims + 1) * log_n if penalty is None else penalty
        cost = _trend_normal_cost(floor, slope_penalty=dims * log_n, min_size=min_size)
        search = ruptures.Binseg(custom_cost=cost, min_size=min_size, jump=1)
    elif model == "l2":  # the same search and cost, in ruptures' C implementation (linear kernel)
        pen = 3.0 * log_n if penalty is None else penalty
        search = ruptures.KernelCPD(kernel="linear", min_size=min_size)
    else:
        pen = 3.0 * log_n if penalty is None else penalty
        search = ruptures.Pelt(model=model, min_size=min_size, jump=1)
    breaks = search.fit(scaled).predict(pen=pen)
    return sorted(int(b) for b in breaks if 0 < b < n)
