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

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from driftline.collector._errors import NoDataError, TooLittleDataError

from ._anchors import Anchor, anchors, pooled, segment_alias, segment_columns
from ._changepoints import change_points
from ._mix import Composition, ShareStep, composition, mix_alias, mix_columns, share_steps
from ._model import Evidence, Filters, Regression, SliceRef, Window
from ._regimes import Regime, rank_z, rank_z_splits, shift_z, split_z, trend_slope
from ._routes_mix import cell_columns, cells_within, shows_within
from ._signals import (
    ALL_SCORES,
    CALL_SIGNALS,
    SLICE_DIMENSIONS,
    WHOLE,
    Signal,
    Slice,
    default_bucket,
    get_signal,
    sliced_series,
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
    """Smallest relative shift reported of a rate, a score or a confidence: tiny but steady drifts are not incidents."""
    min_relative_heavy: float = 0.2
    """Smallest relative shift reported of a heavy-tailed signal (a latency or TTFT percentile, a
    mean cost or token count; at least `min_relative`): these creep by a tenth within a day with
    load, prompt growth and the mix of routes, with no change behind it (a climb the baseline was
    already on is no regression at any size: `_Series.drifting`)."""
    min_duration: timedelta = timedelta(minutes=10)
    """Shortest regression reported (a blip of a few buckets that already ended is none)."""
    min_affected: int = 30
    """Fewest calls with the signal in the regressed regime (and, for a rate, 5 extra bad ones)."""
    penalty: float | None = None
    """Penalty of the candidate search (`change_points`, mean shifts): default 3 log n in noise-variance units.
    Candidates are many; the statistical test decides."""
    anchored_alpha: float = 0.05
    """Chance that noise alone raises a change-anchored finding in a report: each test at a new
    value's first appearance, on a route it reached, must reach the one-sided normal quantile of
    anchored_alpha / (tests made) (Bonferroni, which the tests' correlation makes conservative:
    most are percentiles, tokens and costs of the same calls). 0 turns change-anchored detection off."""


def detect(store: Store, window: Window, *, filters: Filters = Filters(), signals: Iterable[str] | None = None,
           bucket: timedelta | None = None, settings: DetectionSettings = DetectionSettings()) -> list[Regression]:  # fmt: skip
    """Every signal that regressed in the window (worse direction only), worst first: still
    going on before ended, then by confidence and size; those only a test at a change's moment
    or at a tenant's share step found (`anchor`, weaker evidence) after all others.

    Each signal is judged over the whole scope; when that shows nothing, over each slice
    (`SLICE_DIMENSIONS`: one route, provider or service), where a regression on a small part
    of the traffic is not diluted by the rest; the regression then names its slice.
    `signals` limits the signals looked at (names as in `signal_names`); default all.
    NoDataError if the window holds no calls at all; TooLittleDataError (also a NoDataError
    and an AnalysisError) if no signal has enough data (at least 2 x min_segment buckets of
    min_bucket_calls calls) and none regressed on what there is.
    """
    bucket = bucket or default_bucket(window)
    scan = Window(window.start - min(LOOKBACK, window.end - window.start), window.end)
    series = _series(store, scan, bucket, filters, None if signals is None else [get_signal(s) for s in signals])
    if not series or all(int(parts[WHOLE].loc[parts[WHOLE]["time"] >= window.start, "calls"].sum()) == 0 for _, parts in series):
        raise NoDataError(f"no calls between {window.start.isoformat()} and {window.end.isoformat()}")
    found, judged, unsliced, quiet = [], 0, [], []
    for spec, parts in series:
        whole, enough = _prepared(spec, parts[WHOLE], settings)
        judged += enough
        regression = _sliced_regression(spec, whole, parts, window.start, settings)
        if regression is not None:
            found.append(_with_evidence(regression, scan, bucket, filters))
        elif spec.source == "scores":
            unsliced.append(spec.name)
        else:
            quiet.append((spec, parts))
    moments = _moments(store, window, filters, settings) if unsliced or quiet else []
    steps = _share_steps(store, scan, window, bucket, filters, settings) if unsliced or any(s.of_inputs for s, _ in quiet) else []
    quiet = _with_tenants(store, scan, bucket, filters, quiet, steps)
    for spec, parts in _quality_slices(store, scan, bucket, filters, unsliced, moments, steps):
        regression = _slice_regression(spec, parts, window.start, settings)
        if regression is not None:
            found.append(_with_evidence(regression, scan, bucket, filters))
        else:
            quiet.append((spec, parts))
    found += [_with_evidence(r, scan, bucket, filters) for r in _at_known_moments(moments, steps, filters, quiet, settings, window)]
    if judged == 0 and not found:  # a regression found on thin buckets passed its own test: it is reported
        raise TooLittleDataError(f"too little data to detect anything: every signal has fewer than {2 * settings.min_segment} "
                            f"buckets with {settings.min_bucket_calls}+ calls; widen the window (--since)")  # fmt: skip
    return sorted(found, key=lambda r: (r.anchor is not None, r.ended_at is not None, -r.confidence, -abs(r.relative_change)))


def _slices(parts: dict[Slice, pandas.DataFrame]) -> dict[Slice, pandas.DataFrame]:
    """The route, provider and service slices of a scan's frames (not the whole, nor a change's segment)."""
    return {k: f for k, f in parts.items() if k[0] in SLICE_DIMENSIONS}


def _sliced_regression(spec: Signal, whole: pandas.DataFrame, parts: dict[Slice, pandas.DataFrame], since: datetime,
                       settings: DetectionSettings) -> Regression | None:  # fmt: skip
    """The whole scope's regression starting at or after `since`, else the strongest of the slices'.

    Judging many slices gives noise many chances, so a slice's shift must clear a higher bar:
    z^2 >= min_z^2 + 2 ln(slices judged) (the Bonferroni-like growth of a normal maximum).
    A shift over several routes, or a route's operations, counts only where their own calls show it
    (`_routes_mix`)."""
    found = _scored_regression(spec, whole, settings, since)
    if found is not None and _within_cells(spec, parts, WHOLE, settings, found[1]):
        return found[1]
    return _slice_regression(spec, parts, since, settings)


def _slice_regression(spec: Signal, parts: dict[Slice, pandas.DataFrame], since: datetime,
                      settings: DetectionSettings) -> Regression | None:  # fmt: skip
    """The strongest regression of the slices', starting at or after `since`, at the slices' bar."""
    frames = {k: test for k, f in _slices(parts).items() if int(f["calls"].sum()) > settings.min_affected
              for test, enough in [_prepared(spec, f, settings)] if enough}  # fmt: skip
    if not frames:
        return None
    stricter = replace(settings, min_z=math.sqrt(settings.min_z**2 + 2 * math.log(len(frames))))
    scored = [(z, replace(r, slice=SliceRef(*k))) for k, f in frames.items() if (c := _scored_regression(spec, f, stricter, since))
              for z, r in [c] if _within_cells(spec, parts, k, settings, r)]  # fmt: skip
    return max(scored, key=lambda c: (c[1].ended_at is None, c[0]))[1] if scored else None


def _within_cells(spec: Signal, parts: dict[Slice, pandas.DataFrame], part: Slice, settings: DetectionSettings, regression: Regression) -> bool:
    """Whether the regression of one part of the scan (the whole scope, a route, a provider or a
    service) shows within its cells, read as their tests read them (`_routes_mix.shows_within`)."""
    cells = [_prepared(spec, frame, settings)[0] for frame in cells_within(parts, part)]
    return shows_within(regression, cells, usable_calls=_usable_calls(spec, settings), percentile=spec.quantile is not None,
                        floor=_relative_floor(spec, settings))  # fmt: skip


def _relative_floor(spec: Signal, settings: DetectionSettings) -> float:
    """The smallest relative shift reported of a signal (`min_relative`, `min_relative_heavy`)."""
    return max(settings.min_relative, settings.min_relative_heavy if spec.heavy_tailed else 0.0)


def _moments(store: Store, window: Window, filters: Filters, settings: DetectionSettings) -> list[Anchor]:
    """The changes' first appearances anchored tests are made at, per route and, for a value that
    reached several, over all of them (`pooled`); none when they are turned off."""
    if settings.anchored_alpha <= 0:
        return []
    found = anchors(store, window, filters, settle=default_bucket(window, target=120), min_calls=settings.min_bucket_calls)
    return found + pooled(found)


def _share_steps(store: Store, scan: Window, window: Window, bucket: timedelta, filters: Filters, settings: DetectionSettings) -> list[ShareStep]:
    """The tenants' share steps the composition tests are made at (`_mix`); none when anchored tests are off."""
    if settings.anchored_alpha <= 0:
        return []
    return share_steps(store, scan, window, bucket, filters, min_segment=settings.min_segment, min_z=settings.min_z)


def _at_known_moments(moments: Sequence[Anchor], steps: Sequence[ShareStep], filters: Filters, quiet: Sequence[tuple[Signal, dict[Slice, pandas.DataFrame]]],
                      settings: DetectionSettings, window: Window) -> list[Regression]:  # fmt: skip
    """Regressions of the signals nothing else found, at a moment known before any signal was
    looked at: a change's first appearance (`_anchored`), else a tenant's share step (`_mixed`).
    A fixed moment has a plain normal null, so over m such tests (tests of the same calls count
    once) the bar is the one-sided normal quantile of anchored_alpha / m, about 3.1 where the
    search needs 4.6."""
    tests, mixes = _anchored_tests(moments, filters, quiet, settings), _mix_tests(steps, quiet, settings)
    if not tests and not mixes:
        return []
    strict = replace(settings, min_z=NormalDist().inv_cdf(1 - settings.anchored_alpha / (len(tests) + len(mixes))))
    anchored = _anchored(tests, strict)
    taken = {r.signal for r in anchored}
    return anchored + _mixed([m for m in mixes if m[0].name not in taken], strict, window)


_Test = tuple["_Series", SliceRef | None, Anchor, str, Callable[[Regression], bool]]
"""An anchored test: the series, the slice it reads, the moment, the change when it reads only its
calls, and whether a regression of the route's calls shows within the cells of what it reads
(`_within_cells`; a value's own calls are not asked: the scan reads no cells of them)."""


def _anchored_tests(moments: Sequence[Anchor], filters: Filters, quiet: Sequence[tuple[Signal, dict[Slice, pandas.DataFrame]]],
                    settings: DetectionSettings) -> dict[tuple[str, int, tuple[float, ...]], _Test]:  # fmt: skip
    """The tests at each change's known moment (`anchors`) on a route it reached, one per set of
    calls. Where the new value reached only part of its route (an A/B test, a canary) and the scan
    read its own calls (`_segment`), they are tested too, undiluted by the rest; a value that
    reached several routes is tested on its calls over all of them as well (a new snapshot behind
    three routes), as a regression of the whole scope."""
    tests: dict[tuple[str, int, tuple[float, ...]], _Test] = {}
    for spec, parts in quiet if moments else ():
        built: dict[Slice, _Series | None] = {}  # moments on one route share its series
        for i, moment in enumerate(moments):
            on_route = filters.route == moment.route  # a route filter leaves no route slices: the whole is the route
            part = WHOLE if on_route else ("route", moment.route)
            if part not in built:
                built[part] = None if part not in parts else _Series.of(spec, _prepared(spec, parts[part], settings)[0], settings)
            where = None if on_route or moment.routes else SliceRef("route", moment.route)
            segment = _segment(parts, segment_alias(i))
            made = [(built[part], "")] + ([] if segment is None else [(_Series.of(spec, segment, settings), moment.change)])
            shows = functools.partial(_within_cells, spec, parts, part, settings)
            for series, own in ((s, o) for s, o in made if s is not None):  # the route's calls; the value's own, where it reached part of them
                k = series.position(moment.at)
                if settings.min_segment <= k <= len(series.raw) - settings.min_segment:
                    tests.setdefault((spec.name, k, series.signature), (series, where, moment, own, shows))  # one test per set of calls
    return tests


def _anchored(tests: dict[tuple[str, int, tuple[float, ...]], _Test], strict: DetectionSettings) -> list[Regression]:
    """The strongest regression per signal of the anchored tests at the bar `strict` sets: a small
    steady drop that a prompt edit or an index rebuild brought to one route is found, and a
    percentile that every bucket since a deploy shows higher (the rank test at a fixed split,
    whose few buckets cannot reach the search's bar). As the search's, a regression of a route's
    calls counts only where its cells show it: a deploy landing as a retrieval route's mix of
    embeddings and chat calls moves is not what moved its median."""
    best: dict[str, tuple[float, Regression]] = {}
    for (name, k, _), (series, where, moment, own, shows) in tests.items():
        judged = replace(series, settings=strict).judge(k, [len(series.raw)])
        if judged is not None and judged[0] > best.get(name, (-math.inf,))[0]:  # it starts at the change, not at its bucket
            regression = replace(judged[1], slice=where, anchor=moment.change, started_at=moment.at, anchor_calls_only=bool(own))
            if own or shows(regression):
                best[name] = (judged[0], regression)
    return [r for _, r in best.values()]


_Mix = tuple[Signal, ShareStep, Composition]


def _mix_tests(steps: Sequence[ShareStep], quiet: Sequence[tuple[Signal, dict[Slice, pandas.DataFrame]]], settings: DetectionSettings) -> list[_Mix]:
    """The composition test of each quiet score, and quiet signal of the calls' inputs, at each share
    step, where both the tenant's calls with a value and the others' number `min_bucket_calls` on
    each side (`_mix.composition`)."""
    out = []
    for spec, parts in quiet if steps else ():
        for i, step in enumerate(steps):
            tenant, rest = parts.get((mix_alias(i), "2")), parts.get((mix_alias(i), "1"))
            if tenant is not None and rest is not None:
                k = int((tenant["time"] < step.at).sum())
                end = None if step.until is None else int((tenant["time"] < step.until).sum())
                made = composition(tenant, rest, k, end, min_calls=settings.min_bucket_calls) if settings.min_segment <= k <= len(tenant) - settings.min_segment else None
                out += [] if made is None else [(spec, step, made)]
    return out


def _mixed(mixes: Sequence[_Mix], strict: DetectionSettings, window: Window) -> list[Regression]:
    """The strongest tenant-mix regression per signal: the score moved the bad way, the move the
    share step explains clears the bar `strict` sets, and the tenant's calls differ from the
    others' by `min_relative` at least (the floor a slice's own shift must clear: the step moved
    that much on the calls it added); it lasts `min_duration` with `min_affected` calls."""
    best: dict[str, tuple[float, Regression]] = {}
    for spec, step, made in mixes:
        sign = 1.0 if spec.bad == "up" else -1.0
        z, moved = made.z * sign, (made.after - made.before) * sign
        if moved <= 0 or z < strict.min_z or abs(made.gap) < strict.min_relative * abs(made.rest) or made.calls < strict.min_affected:
            continue
        if (step.until or window.end) - step.at < strict.min_duration or z <= best.get(spec.name, (-math.inf,))[0]:
            continue
        regression = Regression(
            signal=spec.name, started_at=step.at, baseline=made.before, current=made.after, direction=spec.bad,
            relative_change=(made.after - made.before) / abs(made.before) if made.before != 0 else sign,
            confidence=round(math.erf(z / math.sqrt(2)), 6), calls=made.calls, evidence=Evidence("sliced_by_bucket"),
            anchor=step.change, share_step=(round(step.before, 6), round(step.after, 6)), ended_at=step.until,
        )  # fmt: skip
        best[spec.name] = (z, regression)
    return [r for _, r in best.values()]


def _segment(parts: dict[Slice, pandas.DataFrame], column: str) -> pandas.DataFrame | None:
    """The calls carrying a new value on its route from its first appearance, after the route's
    calls of the same request models before it, as one series (`_anchors.segment_columns`); None
    where the scan did not read them."""
    before, after = parts.get((column, "1")), parts.get((column, "2"))
    return None if before is None or after is None else _pooled(before, after)


def _pooled(a: pandas.DataFrame, b: pandas.DataFrame) -> pandas.DataFrame:
    """Two mean series of one grid as the series of their calls together."""
    calls = a["calls"].to_numpy() + b["calls"].to_numpy()
    sums = np.nan_to_num(a["value"].to_numpy(dtype=float)) * a["calls"].to_numpy() + np.nan_to_num(b["value"].to_numpy(dtype=float)) * b["calls"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(calls > 0, sums / calls, np.nan)
    return a.assign(value=value, calls=calls, squares=a["squares"].to_numpy(dtype=float) + b["squares"].to_numpy(dtype=float))


def _prepared(spec: Signal, frame: pandas.DataFrame, settings: DetectionSettings) -> tuple[pandas.DataFrame, bool]:
    """The buckets the test reads, and whether there are enough to judge (2 x min_segment buckets
    of `min_calls`, once thin ones are merged). A percentile's test reads the merged buckets; a
    mean's or a rate's reads them as they are (it weighs each by its calls, so thin ones cost no
    false alarms)."""
    merged = merge_thin_buckets(frame, min_calls(spec, settings))
    enough = int((merged["calls"] >= min_calls(spec, settings)).sum()) >= 2 * settings.min_segment
    return (merged if spec.quantile is not None else frame), enough


def _series(store: Store, window: Window, bucket: timedelta, filters: Filters,
            specs: list[Signal] | None) -> list[tuple[Signal, dict[Slice, pandas.DataFrame]]]:  # fmt: skip
    """The requested signals' series: one scan for the llm_calls ones, whole and per slice; one for
    the evaluations, whole only (`_quality_slices` slices them where the whole shows nothing)."""
    calls = list(CALL_SIGNALS.values()) if specs is None else [s for s in specs if s.source == "calls"]
    wanted_quality = None if specs is None else {s.name for s in specs if s.source == "scores"}
    out = []
    if calls:
        frames = sliced_series(store, calls, window, bucket, filters, segments=cell_columns(filters))
        out += [(s, frames[s.name]) for s in calls if s.name in frames]
    if wanted_quality is None or wanted_quality:
        for name, parts in sliced_series(store, [ALL_SCORES], window, bucket, filters, by_evaluation=True, sliced=False).items():
            if wanted_quality is None or name in wanted_quality:
                out.append((get_signal(name), parts))
    return out


def _quality_slices(store: Store, window: Window, bucket: timedelta, filters: Filters, names: list[str],
                    moments: Sequence[Anchor], steps: Sequence[ShareStep]) -> list[tuple[Signal, dict[Slice, pandas.DataFrame]]]:  # fmt: skip
    """The named evaluations per slice, in one scan, only when some need it: slicing a score given
    after its call joins it to the call, the costliest part of detection. The same scan reads each
    change's own calls and its route's before it (`segment_columns`), for `_anchored`, and each
    stepped tenant's calls and the others' (`mix_columns`), for `_mixed`."""
    if not names:
        return []
    (changes, bound), (tenants, shares) = segment_columns(moments), mix_columns(list(steps))
    parts = sliced_series(store, [ALL_SCORES], window, bucket, filters, by_evaluation=True, segments=({**changes, **tenants}, {**bound, **shares}))
    return [(get_signal(n), parts[n]) for n in names if n in parts]


def _with_tenants(store: Store, window: Window, bucket: timedelta, filters: Filters, quiet: list[tuple[Signal, dict[Slice, pandas.DataFrame]]],
                  steps: Sequence[ShareStep]) -> list[tuple[Signal, dict[Slice, pandas.DataFrame]]]:  # fmt: skip
    """The quiet signals, those of the calls' inputs (`Signal.of_inputs`) with each stepped tenant's
    calls and the others' (`mix_columns`) for `_mixed`, as `_quality_slices` reads them for the
    scores: one more scan of the calls, only when a tenant's share stepped."""
    wanted = [spec for spec, _ in quiet if spec.of_inputs]
    if not steps or not wanted:
        return quiet
    frames = sliced_series(store, wanted, window, bucket, filters, sliced=False, segments=mix_columns(list(steps)))
    return [(spec, {**parts, **{k: f for k, f in frames.get(spec.name, {}).items() if k != WHOLE}}) for spec, parts in quiet]


def merge_thin_buckets(frame: pandas.DataFrame, min_calls: int) -> pandas.DataFrame:
    """When over a quarter of the buckets with calls hold fewer than `min_calls`, each run of thin
    buckets is merged with its neighbours until it holds `min_calls` (bucket size adapts to
    volume): a night's buckets are read in groups, the busy hours' one by one, so a step in the
    busy hours keeps every bucket of its evidence (one merge factor for the whole series, set by
    the night, left a busy hour's step three buckets, under the search's bar).

    Values are merged weighted by calls (exact for rates and means, an approximation for
    percentiles), so low-volume services and slices are judged on buckets that mean something
    rather than on the few busy ones.
    """
    import pandas as pd

    calls = frame["calls"].to_numpy()
    busy = calls[calls > 0]
    if not len(busy) or float(np.quantile(busy, 0.25)) >= min_calls:
        return frame
    group = _groups(calls, min_calls, longest=max(1, len(frame) // 12))
    merged = np.bincount(group, weights=calls)
    weighted = np.bincount(group, weights=np.nan_to_num(frame["value"].to_numpy(dtype=float)) * calls)
    squares = frame["squares"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(merged > 0, weighted / merged, np.nan)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return pd.DataFrame({"time": frame["time"].iloc[starts].reset_index(drop=True), "value": value, "calls": merged.astype(int),
                         "squares": np.bincount(group, weights=squares) if np.isfinite(squares).all() else np.full(len(starts), np.nan)})  # fmt: skip


def _groups(calls: np.ndarray, min_calls: int, *, longest: int) -> np.ndarray:
    """Each bucket's group: consecutive buckets, a group closed once it holds `min_calls` calls or
    spans `longest` buckets (a series thin all along keeps a dozen groups, too thin to judge)."""
    group, index, held, span = np.zeros(len(calls), dtype=int), 0, 0, 0
    for i, count in enumerate(calls):
        group[i], held, span = index, held + int(count), span + 1
        if held >= min_calls or span >= longest:
            index, held, span = index + 1, 0, 0
    if 0 < held < min_calls and index > 0:  # the last group fell short: it joins the one before
        group[group == index] = index - 1
    return group


def min_calls(spec: Signal, settings: DetectionSettings) -> int:
    """Calls a bucket needs for its value to mean something: a percentile needs 2 calls beyond it."""
    return settings.min_bucket_calls if spec.quantile is None else max(settings.min_bucket_calls, math.ceil(2 / (1 - spec.quantile)))


def _usable_calls(spec: Signal, settings: DetectionSettings) -> int:
    """Calls a bucket needs to take part in the test: a percentile `min_calls`; a mean or a rate
    one, since the test weighs every bucket by its calls (a thin bucket counts for little)."""
    return min_calls(spec, settings) if spec.quantile is not None else 1


def find_regression(spec: Signal, frame: pandas.DataFrame, *, settings: DetectionSettings = DetectionSettings()) -> Regression | None:
    """The regression of `frame` (time, value, calls, squares) in the signal's bad direction, if any."""
    found = _scored_regression(spec, frame, settings)
    return None if found is None else found[1]


def _scored_regression(spec: Signal, frame: pandas.DataFrame, settings: DetectionSettings,
                       since: datetime | None = None) -> tuple[float, Regression] | None:  # fmt: skip
    """The regression starting at or after `since` and its z (the shift in standard errors).

    Candidate starts come from `change_points` over the bucket values, each bucket's deviation
    from the median scaled by sqrt(its calls / the median calls) (a thin night-time bucket is
    noisier), and from the one split that the test itself rates worst (`_Series.best_split`:
    a regression still going on, found even where few buckets hide it from the search). A candidate k is a regression when the regime after it differs from everything
    before it by `min_z` standard errors of the two regime means (see `Regime`), by
    `min_relative` of the baseline, lasts `min_duration` and holds `min_affected` calls (a
    heavy-tailed signal must also step out of the trend before it: `_Series.drifting`); it lasts
    until a later regime is back within half the shift, and everything after it is too (a dip
    is no recovery). The strongest one still going on wins
    (else the strongest). Confidence is the two-sided normal probability of the shift's z.
    """
    series = _Series.of(spec, frame, settings)
    if series is None:
        return None
    raw, calls = series.raw, series.calls
    centre = float(np.median(raw))
    levelled = centre + (raw - centre) * np.sqrt(calls / np.median(calls))
    cuts = change_points(levelled, min_size=settings.min_segment, penalty=settings.penalty, model="l2")
    split = series.best_split()
    cuts = sorted({*cuts, split}) if split is not None else cuts
    bounds = [*cuts, len(raw)]
    found = [c for i, k in enumerate(cuts) if (c := series.judge(k, bounds[i + 1 :])) and (since is None or c[1].started_at >= since)]
    return max(found, key=lambda c: (c[1].ended_at is None, c[0])) if found else None


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

    @classmethod
    def of(cls, spec: Signal, frame: pandas.DataFrame, settings: DetectionSettings) -> _Series | None:
        """The frame's usable buckets; None when fewer than 2 x min_segment."""
        usable = (frame["calls"].to_numpy() >= _usable_calls(spec, settings)) & frame["value"].notna().to_numpy()
        index = np.flatnonzero(usable)
        if len(index) < 2 * settings.min_segment:
            return None
        squares = frame["squares"].to_numpy(dtype=float)[index] if "squares" in frame and spec.quantile is None else None
        return cls(spec, frame, index, frame["value"].to_numpy(dtype=float)[index], frame["calls"].to_numpy(dtype=float)[index], squares, settings)

    @functools.cached_property
    def signature(self) -> tuple[float, ...]:
        """The buckets' size and sums: equal for two series of the same calls (a new snapshot and its
        fingerprint; a value on one route and over all the routes it reached, where only one of them
        is judged), so that a test is counted, and made, once."""
        return (len(self.raw), float(self.calls.sum()), float(np.nansum(self.raw * self.calls)), float(self.index.sum()))

    @functools.cached_property
    def rate(self) -> bool:
        """A 0/1 per call signal: its squares equal its sums."""
        return self.squares is not None and bool(np.allclose(self.squares, self.raw * self.calls))

    def regime(self, start: int, end: int) -> Regime:
        return Regime.of(self.raw[start:end], self.calls[start:end], None if self.squares is None else self.squares[start:end])

    def time(self, position: int) -> datetime:
        return self.frame["time"].iloc[int(self.index[position])].to_pydatetime()

    def position(self, moment: datetime) -> int:
        """The usable bucket holding `moment`, as the split before it: a new value's first call
        opens its regime, so the bucket it falls in is the first after (its calls before that
        call are few, where counting the bucket before would leave a thin route one bucket short)."""
        times = self.frame["time"]
        held = times[times <= moment]
        return int((times.iloc[self.index] < held.iloc[-1]).sum()) if len(held) else 0

    def end_of(self, k: int, ends: list[int], before: Regime, shift: float) -> tuple[int, datetime | None]:
        """Where the regime from k ends: the first later regime less than half the shift worse than
        before (or never), when everything after it is too (a dip of a few buckets in a failure rate
        that then comes back is no recovery), and is no regression of its own against before (a
        failure that came down by two thirds and stays there has not ended)."""
        last = ends[0]

        def back(start: int, end: int) -> bool:
            return (self.regime(start, end).mean - before.mean) * math.copysign(1.0, shift) < abs(shift) / 2

        for start, end in itertools.pairwise(ends):
            if back(start, end) and back(start, len(self.raw)) and not self.still_worse(k, start, before):
                return last, self.time(start)
            last = end
        return last, None

    def still_worse(self, k: int, start: int, before: Regime) -> bool:
        """Whether the buckets from `start` on are worse than those before k by `min_z` standard
        errors and the relative floor: a regression of their own."""
        after = self.regime(start, len(self.raw))
        shift = (after.mean - before.mean) * (1.0 if self.spec.bad == "up" else -1.0)
        if shift <= 0 or shift < self.floor() * abs(before.mean):
            return False
        return self.z(k, len(self.raw), before, after, start=start) >= self.settings.min_z

    def floor(self) -> float:
        return _relative_floor(self.spec, self.settings)

    def bar(self, ended: datetime | None) -> float:
        """The z a regression must reach: `min_z` while it goes on; more once it has ended, since a
        start and an end chosen among n buckets give noise ~n times more chances (z^2 + 2 ln n)."""
        return self.settings.min_z if ended is None else math.sqrt(self.settings.min_z**2 + 2 * math.log(len(self.raw)))

    def judge(self, k: int, ends: list[int]) -> tuple[float, Regression] | None:
        """Score the regression starting at k (its first regime, and the later ones until it is
        back) against everything before k; None if it is no regression, or if its first regime is
        less than half the shift away from before (not moved yet, as `end_of` reads "back"): the
        regression starts at a later cut, and a start a few quiet buckets early would never end."""
        before, first = self.regime(0, k), self.regime(k, ends[0])
        if ("up" if first.mean > before.mean else "down") != self.spec.bad:
            return None
        last, ended = self.end_of(k, ends, before, first.mean - before.mean)
        current = self.regime(k, last)
        shift = current.mean - before.mean
        if abs(first.mean - before.mean) < abs(shift) / 2:
            return None
        z = self.z(k, last, before, current)
        if ("up" if shift > 0 else "down") != self.spec.bad or z < self.bar(ended) or abs(shift) < self.floor() * abs(before.mean):
            return None
        if self.drifting(k, last, self.bar(ended)):
            return None
        started = self.time(k)
        lasted = (ended or self.time(len(self.raw) - 1) + self._bucket()) - started
        excess_ok = not self.rate or current.calls * abs(shift) >= 5
        if lasted < self.settings.min_duration or current.calls < self.settings.min_affected or not excess_ok:
            return None
        regression = Regression(
            signal=self.spec.name, started_at=started, baseline=before.mean, current=current.mean,
            direction="up" if shift > 0 else "down",
            relative_change=(current.mean - before.mean) / abs(before.mean) if before.mean != 0 else math.copysign(1.0, shift),
            confidence=round(math.erf(z / math.sqrt(2)), 6), calls=int(current.calls), evidence=Evidence("sliced_by_bucket"), ended_at=ended,
        )  # fmt: skip
        return z, regression

    def drifting(self, k: int, last: int, bar: float) -> bool:
        """Whether the buckets from k to last beat those before k only by the trend those were
        already on: their ranks clear `bar` as they are and not once the trend is taken out.
        Latencies, costs and token counts (heavy-tailed signals) climb through a morning with
        load and prompt growth, and the late buckets of a steady climb beat the early ones by any
        test of two regimes with no change behind it; a deploy or a new snapshot steps out of it."""
        if not self.spec.heavy_tailed:
            return False
        sign, x = (1.0 if self.spec.bad == "up" else -1.0), self.index.astype(float)
        slope = trend_slope(x[:k], self.raw[:k], up=sign > 0)
        if slope == 0.0:
            return False
        level = self.raw[:last] - slope * x[:last]
        return rank_z(self.raw[:k], self.raw[k:last]) * sign >= bar and rank_z(level[:k], level[k:last]) * sign < bar

    def best_split(self) -> int | None:
        """The start k whose regime to the end differs most, in the bad direction, from everything
        before it, by the same test as `judge` (all splits at once, from running sums)."""
        n, low = len(self.raw), self.settings.min_segment
        if n < 2 * low:
            return None
        z = np.nan_to_num(rank_z_splits(self.raw), nan=0.0, posinf=0.0, neginf=0.0) if self.squares is None else split_z(self.raw, self.calls, self.squares, rate=self.rate)
        z = z if self.spec.bad == "up" else -z
        k = low + int(np.argmax(z[low : n - low + 1]))
        return k if z[k] > 0 else None

    def z(self, k: int, end: int, before: Regime, after: Regime, *, start: int | None = None) -> float:
        """The shift in standard errors of the two regimes' means (before k; from `start`, default
        k, to `end`). For a percentile (heavy-tailed bucket values, no per-call variance) the
        rank-sum z of the buckets after against those before instead: one slow spike is no shift,
        a steady move of every bucket is."""
        if self.squares is not None:
            return abs(shift_z(before, after, rate=self.rate))
        after_k = k if start is None else start
        return max(0.0, rank_z(self.raw[:k], self.raw[after_k:end]) * math.copysign(1.0, after.mean - before.mean))

    def _bucket(self) -> timedelta:
        times = self.frame["time"]
        return (times.iloc[1] - times.iloc[0]).to_pytimedelta() if len(times) > 1 else timedelta(0)


def _with_evidence(regression: Regression, window: Window, bucket: timedelta, filters: Filters) -> Regression:
    params = {"signal": regression.signal, "start": window.start.isoformat(), "end": window.end.isoformat(),
              "bucket_seconds": int(bucket.total_seconds())} | {k: v for k, v in vars(filters).items() if v is not None}  # fmt: skip
    if regression.slice is not None:
        params["slice"] = regression.where
    return replace(regression, evidence=Evidence("sliced_by_bucket", params))
