"""Detection: did a signal leave its baseline, when, by how much, and how sure are we?

Per signal, one bucketed series comes from the store (all llm_calls signals in one query,
all evaluations in another). Buckets with too few calls are dropped (or merged, when most
buckets are thin), change points come from `change_points` (ruptures PELT), and each
candidate is judged against the baseline's *own* bucket-to-bucket variability — which holds
its daily traffic swings — so a swing or a handful of bad calls raises no alarm.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
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

__all__ = ["DetectionSettings", "detect", "find_regression"]


@dataclass(frozen=True)
class DetectionSettings:
    """The thresholds detection applies; the defaults are what `driftline detect` uses."""

    min_bucket_calls: int = 10
    """A bucket with fewer calls carrying the signal is not used (thin buckets are merged first)."""
    min_segment: int = 3
    """Buckets a regime must last to count (and the fewest buckets before a change)."""
    min_effect: float = 3.0
    """Shift in units of the baseline's own bucket-to-bucket spread (robust, so it holds daily swings)."""
    min_relative: float = 0.03
    """Smallest relative shift reported (3%): tiny but steady drifts are not incidents."""
    penalty: float | None = None
    """Change-point penalty (see `change_points`); default (2d + 1) log n in -2 log-likelihood units."""


def detect(store: Store, window: Window, *, filters: Filters = Filters(), signals: Iterable[str] | None = None,
           bucket: timedelta | None = None, settings: DetectionSettings = DetectionSettings()) -> list[Regression]:  # fmt: skip
    """Every signal that regressed in the window (worse direction only), worst first: still
    going on before ended, then by confidence and size.

    `signals` limits the signals looked at (names as in `signal_names`); default all.
    NoDataError if the window holds no calls at all; AnalysisError if no signal has enough
    data (at least 2 x min_segment buckets of min_bucket_calls calls).
    """
    bucket = bucket or default_bucket(window)
    series = _series(store, window, bucket, filters, None if signals is None else [get_signal(s) for s in signals])
    if not series or all(int(frame["calls"].sum()) == 0 for _, frame in series):
        raise NoDataError(f"no calls between {window.start.isoformat()} and {window.end.isoformat()}")
    found, judged = [], 0
    for spec, frame in series:
        frame = merge_thin_buckets(frame, settings.min_bucket_calls)
        if int((frame["calls"] >= settings.min_bucket_calls).sum()) >= 2 * settings.min_segment:
            judged += 1
        regression = find_regression(spec, frame, settings=settings)
        if regression is not None:
            found.append(_with_evidence(regression, window, bucket, filters))
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
                         "calls": calls}).reset_index(drop=True)  # fmt: skip


def _robust_std(values: np.ndarray) -> float:
    if len(values) < 2:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return mad if mad > 0 else float(np.std(values, ddof=1))


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(values, weights=weights)) if weights.sum() > 0 else float(np.mean(values))


def find_regression(spec: Signal, frame: pandas.DataFrame, *, settings: DetectionSettings = DetectionSettings()) -> Regression | None:
    """The regression of `frame` (time, value, calls) in the signal's bad direction, if any.

    Bucket values are first put on one noise scale: a bucket's deviation from the median is
    multiplied by sqrt(its calls / the median calls), since a bucket of fewer calls is
    noisier (the night-time trough of a daily swing). A change point k (from ruptures) is a
    regression when the regime after it differs from every bucket before it by at least
    `min_effect` times the before-buckets' robust spread and by `min_relative` of their
    level; it lasts until a later regime is back within half the shift. The earliest one
    still going on wins (else the strongest). Confidence is 1 - p of a Welch test on buckets.
    """
    usable = (frame["calls"].to_numpy() >= settings.min_bucket_calls) & frame["value"].notna().to_numpy()
    index = np.flatnonzero(usable)
    if len(index) < 2 * settings.min_segment:
        return None
    raw = frame["value"].to_numpy(dtype=float)[index]
    calls = frame["calls"].to_numpy(dtype=float)[index]
    centre = float(np.median(raw))
    levelled = centre + (raw - centre) * np.sqrt(calls / np.median(calls))
    cuts = change_points(levelled, min_size=settings.min_segment, penalty=settings.penalty)
    bounds = [*cuts, len(raw)]
    found = [c for i, k in enumerate(cuts) if (c := _judge(spec, frame, index, levelled, raw, calls, k, bounds[i + 1 :], settings))]
    ongoing = [c for c in found if c[1].ended_at is None]
    if ongoing:
        return ongoing[0][1]
    return max(found, key=lambda c: c[0])[1] if found else None


def _judge(spec: Signal, frame: pandas.DataFrame, index: np.ndarray, levelled: np.ndarray, raw: np.ndarray,
           calls: np.ndarray, k: int, ends: list[int], settings: DetectionSettings) -> tuple[float, Regression] | None:  # fmt: skip
    """Score the regime starting at k (ending at ends[0]) against everything before k; None if no regression.

    The test runs on the levelled values; baseline and current are reported from the raw ones.
    """
    before, after = levelled[:k], levelled[k : ends[0]]
    spread = max(_robust_std(before), 1e-9 * max(1.0, abs(float(np.median(before)))))
    shift = _weighted_mean(after, calls[k : ends[0]]) - _weighted_mean(before, calls[:k])
    base = _weighted_mean(raw[:k], calls[:k])
    raw_shift = _weighted_mean(raw[k : ends[0]], calls[k : ends[0]]) - base
    direction = "up" if shift > 0 else "down"
    effect = abs(shift) / spread
    if direction != spec.bad or effect < settings.min_effect or raw_shift * shift <= 0 or abs(raw_shift) < settings.min_relative * abs(base):
        return None
    se = math.sqrt(spread**2 / len(before) + max(_robust_std(after), spread) ** 2 / len(after))
    last, ended = ends[0], None
    for start, end in itertools.pairwise(ends):
        if abs(_weighted_mean(levelled[start:end], calls[start:end]) - _weighted_mean(before, calls[:k])) < abs(shift) / 2:
            ended = frame["time"].iloc[int(index[start])].to_pydatetime()
            break
        last = end
    current = _weighted_mean(raw[k:last], calls[k:last])
    regression = Regression(
        signal=spec.name, started_at=frame["time"].iloc[int(index[k])].to_pydatetime(), baseline=base, current=current,
        direction=direction, relative_change=(current - base) / abs(base) if base != 0 else math.copysign(1.0, shift),
        confidence=round(math.erf(abs(shift) / se / math.sqrt(2)), 6), calls=int(calls[k:last].sum()),
        evidence=Evidence("by_bucket"), ended_at=ended,
    )  # fmt: skip
    return effect, regression


def _with_evidence(regression: Regression, window: Window, bucket: timedelta, filters: Filters) -> Regression:
    query = "quality_by_bucket" if regression.signal.startswith(QUALITY_PREFIX) else "by_bucket"
    params = {"signal": regression.signal, "start": window.start.isoformat(), "end": window.end.isoformat(),
              "bucket_seconds": int(bucket.total_seconds())} | {k: v for k, v in vars(filters).items() if v is not None}  # fmt: skip
    return replace(regression, evidence=Evidence(query, params))
