"""Change points of a plain numeric series, with `ruptures` (penalised PELT search) doing the work.

The convention is the one of the Turing Change Point Detection benchmark (TCPD) and of
ruptures: a change point is the index of the first observation of a new segment, so a
series that shifts between values[k-1] and values[k] has the change point k; 0 and len(values)
are never returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["change_points", "noise_scale"]


def noise_scale(values: np.ndarray) -> float:
    """Robust noise level: the MAD of first differences / sqrt(2), which mean shifts barely move."""
    diffs = np.diff(values, axis=0)
    if len(diffs) == 0:
        return 0.0
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return 1.4826 * mad / math.sqrt(2)


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


def change_points(values: Sequence[float] | Sequence[Sequence[float]] | Any, *, penalty: float | None = None,
                  min_size: int = 2, model: str = "l2") -> list[int]:  # fmt: skip
    """Indices where the series changes regime (mean shifts, for the default `l2` cost).

    `values` is a 1-D sequence, or 2-D (observations x dimensions) for a multivariate series;
    NaNs are interpolated. Each dimension is scaled by its robust noise level (`noise_scale`),
    so `penalty` is in units of noise variance; the default, 3 * log(n), is a BIC-like
    penalty that keeps single outliers and slow drifts from becoming change points.
    `min_size` is the shortest segment allowed; `model` is any ruptures cost ("l2", "l1",
    "rbf", "normal", ...).

    Returns sorted indices k (0 < k < n): values[k] is the first observation of a new segment.
    """
    import ruptures

    data = np.asarray(values, dtype=float)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise ValueError("values must be a 1-D series or a 2-D (observations x dimensions) array")
    n = len(data)
    if n < 2 * min_size:
        return []
    data = _fill_gaps(data)
    scales = np.array([noise_scale(data[:, c]) for c in range(data.shape[1])])
    spread = data.std(axis=0)
    scales = np.where(scales > 0, scales, np.where(spread > 0, spread, 1.0))
    scaled = (data - data.mean(axis=0)) / scales
    pen = 3.0 * math.log(n) if penalty is None else penalty
    if model == "l2":  # the same search and cost, in ruptures' C implementation (linear kernel)
        search = ruptures.KernelCPD(kernel="linear", min_size=min_size)
    else:
        search = ruptures.Pelt(model=model, min_size=min_size, jump=1)
    breaks = search.fit(scaled).predict(pen=pen)
    return [int(b) for b in breaks if 0 < b < n]
