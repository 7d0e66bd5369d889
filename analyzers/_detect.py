"""Detection: did a signal leave its baseline, when, by how much, and how sure are we?

Per signal, one bucketed series comes from the store (all llm_calls signals in one query,
all evaluations in another), reaching back before the window (`LOOKBACK`) so a change early in
the window still has a baseline. Buckets with too few calls are dropped (or merged, when most
buckets are thin), candidate starts come from `change_points`, and each candidate is a
statistical test: the regimes' means differ by several standard errors, computed from the
calls themselves (per-call variance) and inflated by the bucket-to-bucket overdispersion that
daily swings cause. So a small, steady drop over many calls is found, and a blip over a
handful of calls, or a regime shorter than `min_duration`, is not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from driftline.collector._errors import AnalysisError, NoDataError

from ._changepoints import change_points
from ._model import Evidence, Filters, Regression, Window
from ._signals import (
    CALL_SIGNALS,
    QUALITY_PREFIX,
    Signal,
    default_bucket,
    get_signal,
    quality_series,
    query_series,
)

if TYPE_CHECKING:
    import pandas

    from driftline.collector.store._store import Store

__all__ = ["LOOKBACK", "DetectionSettings", "detect", "find_regression"]

LOOKBACK = timedelta(hours=6)
"""How far before the window detection reads, at most the window's own length: the baseline of a
change early in the window. Only regressions starting inside the window are reported."""


@dataclass(frozen=True)
class DetectionSettings:
    """The thresholds detection applies; the defaults are what `driftline detect` uses."""

    min_bucket_calls: int = 10
    """A bucket with fewer calls carrying the signal is not used (thin buckets are merged first).
    A percentile needs more: at least 2 calls beyond it (40 for a p95, 200 for a p99)."""
    min_segment: int = 3
    """Buckets a regime must last to count (and the fewest buckets before a change)."""
    min_z: float = 4.0
    """Shift in units of its standard error: the before and after regimes' means, each with the
    per-call variance inflated by the bucket-to-bucket overdispersion (daily swings), so a
    steady small drop over many calls counts and a blip over a handful does not."""
    min_relative: float = 0.03
    """Smallest relative shift reported (3%; 10% for a percentile): tiny but steady drifts are not incidents."""
    min_duration: timedelta = timedelta(minutes=10)
    """Shortest regression reported (a blip of a few buckets that already ended is none)."""
    min_affected: int = 30
    """Fewest calls with the signal in the regressed regime (and, for a rate, 5 extra bad ones)."""
    penalty: float | None = None
    """Penalty of the candidate search (`change_points`, mean shifts): default 3 log n in noise-variance units.
    Candidates are many; the statistical test decides."""


def detect(store: Store, window: Window, *, filters: Filters = Filters(), signals: Iterable[str] | None = None,
           bucket: timedelta | None = None, settings: DetectionSettings = DetectionSettings()) -> list[Regression]:  # fmt: skip
    """Every signal that regressed in the window (worse direction only), worst first: still
    going on before ended, then by confidence and size.

    `signals` limits the signals looked at (names as in `signal_names`); default all.
    NoDataError if the window holds no calls at all; AnalysisError if no signal has enough
    data (at least 2 x min_segment buckets of min_bucket_calls calls).
    """
    bucket = bucket or default_bucket(window)
    scan = Window(window.start - min(LOOKBACK, window.end - window.start), window.end)
    series = _series(store, scan, bucket, filters, None if signals is None else [get_signal(s) for s in signals])
    if not series or all(int(frame.loc[frame["time"] >= window.start, "calls"].sum()) == 0 for _, frame in series):
        raise NoDataError(f"no calls between {window.start.isoformat()} and {window.end.isoformat()}")
    found, judged = [], 0
    for spec, frame in series:
        frame = merge_thin_buckets(frame, min_calls(spec, settings))
        if int((frame["calls"] >= min_calls(spec, settings)).sum()) >= 2 * settings.min_segment:
            judged += 1
        regression = find_regression(spec, frame, settings=settings)
        if regression is not None and regression.started_at >= window.start:
            found.append(_with_evidence(regression, scan, bucket, filters))
    if judged == 0:
        raise AnalysisError(f"too little data to detect anything: every signal has fewer than {2 * settings.min_segment} "
                            f"buckets with {settings.min_bucket_calls}+ calls; widen the window (--since)")  # fmt: skip
    return sorted(found, key=lambda r: (r.ended_at is not None, -r.confidence, -abs(r.relative_change)))


def _series(store: Store, window: Window, bucket: timedelta, filters: Filters,
            specs: list[Signal] | None) -> list[tuple[Signal, pandas.DataFrame]]:  # fmt: skip
    """The requested signals' series: one query for the llm_calls ones, one for the evaluations."""
    calls = list(CALL_SIGNALS.values()) if specs is None else [s for s in specs if s.source == "calls"]
    wanted_quality = None if specs is None else {s.name for s in specs if s.source == "scores"}
    out = []
    if calls:
        frames = query_series(store, calls, window, bucket, filters)
        out += [(s, frames[s.name]) for s in calls]
    if wanted_quality is None or wanted_quality:
        for name, frame in quality_series(store, window, bucket, filters).items():
            if wanted_quality is None or name in wanted_quality:
                out.append((get_signal(name), frame))
    return out


def merge_thin_buckets(frame: pandas.DataFrame, min_calls: int) -> pandas.DataFrame:
    """When most buckets hold fewer than `min_calls`, merge neighbours until the median does.

    Values are merged weighted by calls (exact for rates and means, an approximation for
    percentiles), so low-volume services are judged on buckets that mean something.
    """
    import pandas as pd

    busy = frame["calls"][frame["calls"] > 0]
    if busy.empty or busy.median() >= min_calls:
        return frame
    factor = min(math.ceil(min_calls / max(float(busy.median()), 1.0)), max(1, len(frame) // 12))
    if factor <= 1:
        return frame
    group = np.arange(len(frame)) // factor
    weighted = (frame["value"].fillna(0) * frame["calls"]).groupby(group).sum()
    calls = frame["calls"].groupby(group).sum()
    return pd.DataFrame({"time": frame["time"].groupby(group).first(), "value": (weighted / calls.replace(0, np.nan)),
                         "calls": calls, "squares": frame["squares"].groupby(group).sum(min_count=1)}).reset_index(drop=True)  # fmt: skip


def _robust_std(values: np.ndarray) -> float:
    if len(values) < 2:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return mad if mad > 0 else float(np.std(values, ddof=1))


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(values, weights=weights)) if weights.sum() > 0 else float(np.mean(values))


def min_calls(spec: Signal, settings: DetectionSettings) -> int:
    """Calls a bucket needs for its value to mean something: a percentile needs 2 calls beyond it."""
    return settings.min_bucket_calls if spec.quantile is None else max(settings.min_bucket_calls, math.ceil(2 / (1 - spec.quantile)))


@dataclass(frozen=True)
class _Regime:
    """Buckets [start, end) of a series: their mean and its standard error."""

    mean: float
    se: float
    calls: float

    @classmethod
    def of(cls, raw: np.ndarray, calls: np.ndarray, squares: np.ndarray | None) -> _Regime:
        """Mean weighted by calls. Its standard error: from the per-call variance (sum of squares)
        inflated by the overdispersion of the bucket means around it (at least 1), or, for a
        percentile (no per-call values), from the robust spread of the bucket values."""
        n = float(calls.sum())
        mean = _weighted_mean(raw, calls)
        if squares is None or not np.isfinite(squares).all():
            spread = _robust_std(raw) if len(raw) > 1 else abs(mean)
            return cls(mean, spread / math.sqrt(len(raw)), n)
        per_call = max(float(squares.sum()) / n - mean**2, 1e-12 * max(1.0, mean**2))
        dispersion = float((calls * (raw - mean) ** 2).sum()) / max(len(raw) - 1, 1) / per_call if len(raw) > 1 else 1.0
        return cls(mean, math.sqrt(max(dispersion, 1.0) * per_call / n), n)


def find_regression(spec: Signal, frame: pandas.DataFrame, *, settings: DetectionSettings = DetectionSettings()) -> Regression | None:
    """The regression of `frame` (time, value, calls, squares) in the signal's bad direction, if any.

    Candidate starts come from `change_points` over the bucket values, each bucket's deviation
    from the median scaled by sqrt(its calls / the median calls) (a thin night-time bucket is
    noisier). A candidate k is a regression when the regime after it differs from everything
    before it by `min_z` standard errors of the two regime means (see `_Regime`), by
    `min_relative` of the baseline, lasts `min_duration` and holds `min_affected` calls; it lasts
    until a later regime is back within half the shift. The earliest one still going on wins
    (else the strongest). Confidence is the two-sided normal probability of the shift's z.
    """
    usable = (frame["calls"].to_numpy() >= min_calls(spec, settings)) & frame["value"].notna().to_numpy()
    index = np.flatnonzero(usable)
    if len(index) < 2 * settings.min_segment:
        return None
    raw = frame["value"].to_numpy(dtype=float)[index]
    calls = frame["calls"].to_numpy(dtype=float)[index]
    squares = frame["squares"].to_numpy(dtype=float)[index] if "squares" in frame and spec.quantile is None else None
    centre = float(np.median(raw))
    levelled = centre + (raw - centre) * np.sqrt(calls / np.median(calls))
    cuts = change_points(levelled, min_size=settings.min_segment, penalty=settings.penalty, model="l2")
    bounds = [*cuts, len(raw)]
    series = _Series(spec, frame, index, raw, calls, squares, settings)
    found = [c for i, k in enumerate(cuts) if (c := series.judge(k, bounds[i + 1 :]))]
    ongoing = [c for c in found if c[1].ended_at is None]
    if ongoing:
        return ongoing[0][1]
    return max(found, key=lambda c: c[0])[1] if found else None


@dataclass(frozen=True)
class _Series:
    """One signal's usable buckets, and the test of a candidate start against them."""

    spec: Signal
    frame: pandas.DataFrame
    index: np.ndarray
    raw: np.ndarray
    calls: np.ndarray
    squares: np.ndarray | None
    settings: DetectionSettings

    def regime(self, start: int, end: int) -> _Regime:
        return _Regime.of(self.raw[start:end], self.calls[start:end], None if self.squares is None else self.squares[start:end])

    def time(self, position: int) -> datetime:
        return self.frame["time"].iloc[int(self.index[position])].to_pydatetime()

    def end_of(self, k: int, ends: list[int], before: _Regime, shift: float) -> tuple[int, datetime | None]:
        """Where the regime from k ends: the first later regime back within half the shift (or never)."""
        last = ends[0]
        for start, end in itertools.pairwise(ends):
            if abs(self.regime(start, end).mean - before.mean) < abs(shift) / 2:
                return last, self.time(start)
            last = end
        return last, None

    def judge(self, k: int, ends: list[int]) -> tuple[float, Regression] | None:
        """Score the regime starting at k against everything before k; None if it is no regression."""
        before, after = self.regime(0, k), self.regime(k, ends[0])
        shift = after.mean - before.mean
        z = abs(shift) / max(math.hypot(before.se, after.se), 1e-12)
        relative = self.settings.min_relative if self.spec.quantile is None else max(self.settings.min_relative, 0.1)
        if ("up" if shift > 0 else "down") != self.spec.bad or z < self.settings.min_z or abs(shift) < relative * abs(before.mean):
            return None
        last, ended = self.end_of(k, ends, before, shift)
        started = self.time(k)
        lasted = (ended or self.time(len(self.raw) - 1) + self._bucket()) - started
        current = self.regime(k, last)
        excess_ok = self.spec.quantile is not None or not self._is_rate() or current.calls * abs(shift) >= 5
        if lasted < self.settings.min_duration or current.calls < self.settings.min_affected or not excess_ok:
            return None
        regression = Regression(
            signal=self.spec.name, started_at=started, baseline=before.mean, current=current.mean,
            direction="up" if shift > 0 else "down",
            relative_change=(current.mean - before.mean) / abs(before.mean) if before.mean != 0 else math.copysign(1.0, shift),
            confidence=round(math.erf(z / math.sqrt(2)), 6), calls=int(current.calls), evidence=Evidence("by_bucket"), ended_at=ended,
        )  # fmt: skip
        return z, regression

    def _bucket(self) -> timedelta:
        times = self.frame["time"]
        return (times.iloc[1] - times.iloc[0]).to_pytimedelta() if len(times) > 1 else timedelta(0)

    def _is_rate(self) -> bool:
        """A 0/1 per call signal: its squares equal its sums."""
        return self.squares is not None and bool(np.allclose(self.squares, self.raw * self.calls))


def _with_evidence(regression: Regression, window: Window, bucket: timedelta, filters: Filters) -> Regression:
    query = "quality_by_bucket" if regression.signal.startswith(QUALITY_PREFIX) else "by_bucket"
    params = {"signal": regression.signal, "start": window.start.isoformat(), "end": window.end.isoformat(),
              "bucket_seconds": int(bucket.total_seconds())} | {k: v for k, v in vars(filters).items() if v is not None}  # fmt: skip
    return replace(regression, evidence=Evidence(query, params))
