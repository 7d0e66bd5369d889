"""Attribution: which dimension values (and pairs) explain a regression, and how much of it.

The store hands over leaf aggregates — one row per combination of the allow-listed dimensions,
baseline and incident side by side — from ONE GROUP BY query; everything else is arithmetic
on that small frame (`attribute_frame`, also usable on any DataFrame of leaf aggregates).

For a rate R = sum(num) / sum(den) going from R_b (baseline) to R_c (current), a candidate
(a value, or a pair of values) gets two parts, in units of the change R_c - R_b:
- *within* — its calls got worse: sum over its leaves l of w_c,l * (r_c,l - r~_b,l), where w_c
  are current call shares and r~_b,l the leaf's expected baseline rate (hierarchically shrunk,
  see `_counterfactual`). A leaf carrying a value the baseline never saw (a new response
  model) is compared with what calls with its other values did before the value came.
- *mix* — it merely grew or shrank: (w_c - w_b) * (r~_b - R_b) with its own call shares and
  baseline rate (shrunk). A value that is new (`is_new`) or looked average before has no mix part, so a
  version that replaced every call is not blamed for a shift of traffic between tenants.
Within parts add up to the total within change over the values of any dimension; with the
mix parts, the values of one dimension explain about all of R_c - R_b (Simpson's paradox: a
segment can explain the drop while no segment got worse). Candidates are ranked
by share^1.5 / coverage^0.5 — the share they explain, favouring the ones that explain it with
fewer calls (coverage = mean of baseline and current call share) — so a value that carries the
damage beats both the broader slices that merely contain it and the narrower ones inside it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.collector._errors import AnalysisError, NoDataError

from ._model import Attribution, Evidence, Filters, Suspect, Window
from ._signals import Signal, filter_sql, get_signal, scope_params, source_sql, utc
from ._sql import quote_identifier, render

if TYPE_CHECKING:
    import pandas

    from driftline.collector.store._store import Store

__all__ = ["DIMENSIONS", "attribute", "attribute_frame", "attribute_many"]

DIMENSIONS: dict[str, str] = {
    "request_model": "request_model",
    "response_model": "response_model",
    "system_fingerprint": "system_fingerprint",
    "provider": "provider",
    "prompt_version": "prompt_version",
    "index_version": "index_version",
    "input_confidence": "multiIf(confidence_mean IS NULL, NULL, confidence_mean < 0.6, 'low', confidence_mean < 0.8, 'medium', 'high')",
    "route": "route",
    "tenant": "tenant",
    "service_version": "service_version",
}
"""The allow-list: attribution dimension -> its SQL over an llm_calls row. ASR/OCR confidence is bucketed."""

NONE = "(none)"
"""How a missing dimension value (NULL) is labelled."""
PRIOR_CALLS = 5.0
"""Pseudo-calls shrinking a leaf's baseline rate towards the overall baseline rate."""
NEW_RATIO = 0.01
"""Baseline share under this fraction of the current share makes a value count as new."""
MIX_PRIOR = 30.0
"""Pseudo-calls shrinking a candidate's baseline rate in its mix part (a share that moves a lot
multiplies the noise of a thinly measured baseline rate)."""
MIN_SEGMENT_CALLS = 20
"""attribute() ignores candidates with fewer incident calls: no suspects made of a handful of calls."""
ALIGNED_BOOST = 1.5
"""Score multiplier for a candidate whose first appearance or annotated change lines up with the start."""
PAIR_FACTOR = 0.9
"""Per dimension beyond the first: a pair ranks below a single value that explains the same thing."""
EXEMPLARS = 5
EXEMPLAR_SUSPECTS = 3


def attribute_frame(frame: pandas.DataFrame, *, dimensions: Sequence[str], baseline: str, current: str,
                    baseline_count: str | None = None, current_count: str | None = None, max_order: int = 2,
                    min_count: float = 0) -> pandas.DataFrame:  # fmt: skip
    """Rank the dimension values and pairs of values that explain the change between two sets of leaves.

    `frame` holds one row per leaf (a combination of `dimensions` values; repeated
    combinations are summed). Two measures are understood:

    - *additive* (no counts): `baseline` and `current` are the leaf's KPI (e.g. the forecast and
      the real value of RiskLoc/Squeeze/HotSpot datasets); the total is their sum, and a
      candidate explains sum(current - baseline) over its leaves.
    - *rate* (`baseline_count` and `current_count` given): `baseline`/`current` are sums of a
      per-call numerator and the counts their denominators (errors and calls, score sums and
      scored calls); the total is sum(numerator) / sum(count), and a candidate's part splits
      into within (its rate changed) and mix (its share of calls changed), see the module doc.

    Candidates are every value of each dimension and every combination of values of up to
    `max_order` dimensions (pairs by default; 3 for benchmarks with three-dimensional
    causes), each with at least `min_count` current volume (count, or KPI when additive); a
    combination with exactly the volumes and share of a candidate ranked above it is left out
    (an alias, such as a value paired with the version every call had). Returns one row per
    candidate, best first: `dimensions` and `values` (tuples),
    `label`, `explained_share` (part of the total change; the shares of one dimension's
    values add to 1, about 1 for a rate), `within_share`, `mix_share`, `effect` ('worse' where the within part
    carries the change, 'mix' where the shift of volume does, 'better' if it works against the
    change), `baseline_value`/`current_value` (the candidate's own rate or KPI sum; NaN for a
    rate without baseline calls), `baseline_count`/`current_count` (volume), `coverage`
    (mean of its baseline and current volume shares) and `score`.
    """
    import pandas as pd

    dims = list(dimensions)
    if not dims:
        raise ValueError("attribute_frame needs at least one dimension")
    missing = [c for c in [*dims, baseline, current, baseline_count, current_count] if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in the frame: {', '.join(missing)}")
    if (baseline_count is None) != (current_count is None):
        raise ValueError("give both baseline_count and current_count (a rate), or neither (an additive KPI)")
    leaves = _leaf_parts(frame, dims, baseline, current, baseline_count, current_count)
    groups = [g for order in range(1, max_order + 1) for g in itertools.combinations(dims, order)]
    parts = [_candidates(leaves, g, leaves.change) for g in groups]
    out = pd.DataFrame({c: list(itertools.chain.from_iterable(p[c] for p in parts)) if c in _OBJECT_COLUMNS
                        else np.concatenate([p[c] for p in parts]) for c in parts[0]})  # fmt: skip
    out = out[out["current_count"] >= min_count]
    out = out.sort_values(["score", "explained_share"], ascending=False, kind="stable")
    return out[~_aliases(out)].reset_index(drop=True)


_OBJECT_COLUMNS = ("dimensions", "values", "label", "effect")


def _aliases(ranked: pandas.DataFrame) -> pandas.Series:
    """Combinations with exactly the volumes and share of a candidate ranked above them (a pair of a
    value with the version every call had, or of two values that always come together): they
    say nothing that candidate does not. Single values are always kept."""
    import pandas as pd

    seen: set[tuple[float, float, float]] = set()
    flags = []
    for dims, b, c, share in zip(ranked["dimensions"], ranked["baseline_count"], ranked["current_count"], ranked["explained_share"]):
        key = (round(float(b), 6), round(float(c), 6), round(float(share), 9))
        flags.append(len(dims) > 1 and key in seen)
        seen.add(key)
    return pd.Series(flags, index=ranked.index, dtype=bool)


@dataclass
class _Leaves:
    """Leaf arrays: dimension codes and labels, volumes, sums, and within/mix parts of the change."""

    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    rate: bool

    @property
    def change(self) -> float:
        """The total change: additive KPI sum(current - baseline), or R_c - R_b for a rate."""
        b, c = self.sums["b_den"].sum(), self.sums["c_den"].sum()
        if not self.rate:
            return float(self.sums["c_num"].sum() - self.sums["b_num"].sum())
        return float(self.sums["c_num"].sum() / c - self.sums["b_num"].sum() / b)


def _leaf_parts(frame: pandas.DataFrame, dims: list[str], baseline: str, current: str,
                baseline_count: str | None, current_count: str | None) -> _Leaves:  # fmt: skip
    """Per leaf: volumes, sums, and its within and mix parts of the total change."""
    import pandas as pd

    keys = frame[dims].astype("object").where(frame[dims].notna(), NONE).astype(str)
    data = keys.assign(b_num=frame[baseline].astype(float), c_num=frame[current].astype(float))
    counts = (data["b_num"].abs(), data["c_num"].abs()) if baseline_count is None else (frame[baseline_count], frame[current_count])
    data = data.assign(b_den=counts[0].astype(float), c_den=counts[1].astype(float))
    data = data.groupby(dims, sort=False, as_index=False)[["b_num", "c_num", "b_den", "c_den"]].sum()
    codes, labels = {}, {}
    for d in dims:
        codes[d], labels[d] = pd.factorize(data[d], sort=False)
    sums = {c: data[c].to_numpy(dtype=float) for c in ("b_num", "c_num", "b_den", "c_den")}
    b_total, c_total = sums["b_den"].sum(), sums["c_den"].sum()
    sums["b_share"] = sums["b_den"] / b_total if b_total > 0 else np.zeros(len(data))
    sums["c_share"] = sums["c_den"] / c_total if c_total > 0 else np.zeros(len(data))
    if baseline_count is None:
        sums["within"] = sums["c_num"] - sums["b_num"]
    else:
        if b_total <= 0 or c_total <= 0:
            raise ValueError("a rate needs counts in both the baseline and the current leaves")
        rate_b = sums["b_num"].sum() / b_total
        expected = _counterfactual(codes, sums, rate_b)
        sums["within"] = (sums["c_num"] - sums["c_den"] * expected) / c_total
    return _Leaves(codes, {d: np.asarray(labels[d], dtype=object) for d in dims}, sums, baseline_count is not None)


def _counterfactual(codes: dict[str, np.ndarray], sums: dict[str, np.ndarray], rate_b: float) -> np.ndarray:
    """Each leaf's expected baseline rate, by hierarchical shrinkage.

    Starting from R_b, the estimate is refined cell by cell, adding one dimension at a time —
    the dimensions whose values differ most in the baseline first — each cell's baseline
    pulled towards the coarser estimate by PRIOR_CALLS pseudo-calls, so a thinly measured
    leaf borrows from the cells around it. A value the baseline never saw (a new model,
    prompt or index) is left out of its leaf's cells: those calls are compared with what
    calls like them (same other values) did before it came.
    """
    dims = sorted(codes, key=lambda d: -_baseline_spread(codes[d], sums, rate_b))
    novel = np.column_stack([_is_new(codes[d], sums) for d in dims])
    patterns = [(np.array(p), (novel == np.array(p)).all(axis=1)) for p in {tuple(row) for row in novel}]
    estimate = np.full(len(sums["b_den"]), rate_b)
    for depth in range(1, len(dims) + 1):
        refined = estimate.copy()
        for pattern, rows in patterns:
            kept = [d for d, is_new in zip(dims[:depth], pattern) if not is_new]
            if not kept:
                continue
            _, inverse = np.unique(_key(codes, kept), return_inverse=True)
            num, den = np.bincount(inverse, weights=sums["b_num"]), np.bincount(inverse, weights=sums["b_den"])
            cell = inverse[rows]
            refined[rows] = (num[cell] + PRIOR_CALLS * estimate[rows]) / (den[cell] + PRIOR_CALLS)
        estimate = refined
    return estimate


def _is_new(codes: np.ndarray, sums: dict[str, np.ndarray]) -> np.ndarray:
    """Per leaf: does its value of this dimension count as new (see `is_new`)?"""
    b_share, c_share = (np.bincount(codes, weights=sums[c]) for c in ("b_share", "c_share"))
    return is_new(b_share, c_share)[codes]


def is_new(b_share: np.ndarray, c_share: np.ndarray) -> np.ndarray:
    """A value is new when its baseline share is under NEW_RATIO of its current share: it came
    around the start (a window boundary a bucket off leaves a few of its calls in the baseline)."""
    return b_share < NEW_RATIO * c_share


def _baseline_spread(codes: np.ndarray, sums: dict[str, np.ndarray], rate_b: float) -> float:
    """How much a dimension's values differ in the baseline: sum of count * (rate - R_b)^2."""
    num, den = np.bincount(codes, weights=sums["b_num"]), np.bincount(codes, weights=sums["b_den"])
    seen = den > 0
    return float((den[seen] * (num[seen] / den[seen] - rate_b) ** 2).sum())


def _key(codes: dict[str, np.ndarray], dims: Sequence[str]) -> np.ndarray:
    """One int64 key per leaf for the combination of `dims` values."""
    key = np.zeros(len(codes[dims[0]]), dtype=np.int64)
    for d in dims:
        key = key * (int(codes[d].max()) + 1) + codes[d]
    return key


def _candidates(leaves: _Leaves, dims: tuple[str, ...], total: float) -> dict[str, Any]:
    """The candidates of one dimension (or pair) as columns: shares, effect and score."""
    rate = leaves.rate
    uniq, first, inverse = np.unique(_key(leaves.codes, dims), return_index=True, return_inverse=True)
    g = {name: np.bincount(inverse, weights=col) for name, col in leaves.sums.items()}
    scale = total if total != 0 else math.nan
    rate_b = leaves.sums["b_num"].sum() / max(leaves.sums["b_den"].sum(), 1e-12)
    own_rate = (g["b_num"] + MIX_PRIOR * rate_b) / (g["b_den"] + MIX_PRIOR) if rate else rate_b
    within = g["within"] / scale
    grew = (g["c_share"] - g["b_share"]) * (own_rate - rate_b) / scale if rate else np.zeros(len(uniq))
    mix = np.where(is_new(g["b_share"], g["c_share"]), 0.0, grew)
    share = within + mix
    coverage = np.clip((g["b_share"] + g["c_share"]) / 2, 1e-12, None)
    score = np.nan_to_num(np.clip(share, 0, None) ** 1.5 / coverage**0.5) * PAIR_FACTOR ** (len(dims) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_value = g["b_num"] / np.where(g["b_den"] > 0, g["b_den"], np.nan) if rate else g["b_num"]
        c_value = g["c_num"] / np.where(g["c_den"] > 0, g["c_den"], np.nan) if rate else g["c_num"]
    values = list(zip(*(leaves.labels[d][leaves.codes[d][first]] for d in dims)))
    return {
        "dimensions": [dims] * len(uniq), "values": values,
        "label": [" & ".join(f"{d}={v}" for d, v in zip(dims, vs)) for vs in values],
        "explained_share": share, "within_share": within, "mix_share": mix,
        "effect": np.where(share <= 0, "better", np.where(within >= mix, "worse", "mix")),
        "baseline_value": b_value, "current_value": c_value, "baseline_count": g["b_den"], "current_count": g["c_den"],
        "coverage": coverage, "score": score,
    }  # fmt: skip


# --- attribution over the store ---------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    time: datetime
    kind: str
    target: str
    version: str | None
    description: str

    def matches(self) -> set[tuple[str, str]]:
        """The (dimension, value) pairs this annotation changed."""
        to = self.version or self.target
        return {
            "prompt": {("prompt_version", to)},
            "index": {("index_version", to)},
            "model": {("request_model", to), ("response_model", to)},
            "deploy": {("service_version", to)},
            "provider_incident": {("provider", self.target)},
        }.get(self.kind, {(d, to) for d in DIMENSIONS})

    @property
    def text(self) -> str:
        what = f"{self.kind} {self.target}" + (f" -> {self.version}" if self.version else "")
        return f"{what} at {self.time.isoformat()}" + (f": {self.description}" if self.description else "")


def _dimensions(dimensions: Sequence[str] | None) -> list[str]:
    dims = list(DIMENSIONS) if dimensions is None else list(dimensions)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        raise AnalysisError(f"unknown dimension {', '.join(unknown) or '(none given)'}: use some of {', '.join(DIMENSIONS)}")
    return dims


def _prelude(specs: Sequence[Signal], where: str) -> str:
    """WITH items the signals need before their rows: the baseline percentile of each latency/TTFT one."""
    return "".join(
        f"(SELECT quantileTDigestIf({spec.quantile})({spec.column}, {spec.den}) FROM llm_calls "
        f"WHERE time >= {{b_start:DateTime64(9)}} AND time < {{b_end:DateTime64(9)}}{where}) AS threshold_{i},\n    "
        for i, spec in enumerate(specs) if spec.quantile is not None
    )  # fmt: skip


def _aggregates(specs: Sequence[Signal]) -> str:
    """Four conditional aggregates per signal: count and numerator sum in the baseline and the incident."""
    return "".join(
        f",\n       countIf({s.den} AND in_base) AS b_den_{i}, sumIf({s.numerator(f'threshold_{i}')}, {s.den} AND in_base) AS b_num_{i},"
        f" countIf({s.den} AND in_inc) AS c_den_{i}, sumIf({s.numerator(f'threshold_{i}')}, {s.den} AND in_inc) AS c_num_{i}"
        for i, s in enumerate(specs)
    )  # fmt: skip


def leaves_query(specs: Sequence[Signal], dims: list[str], filters: Filters) -> str:
    """The one GROUP BY query of attribution, for signals of one source (also what the benchmark times)."""
    where, _ = filter_sql(filters)
    return render(
        "leaves", prelude=_prelude(specs, where), aggregates=_aggregates(specs),
        dimensions=",\n       ".join(f"{DIMENSIONS[d]} AS {quote_identifier(d)}" for d in dims),
        keys=", ".join(quote_identifier(d) for d in dims), source=source_sql(specs[0], with_dimensions=True, filters=filters),
        filters=where,
    )  # fmt: skip


def window_params(spec: Signal, baseline: Window, incident: Window, filters: Filters) -> dict[str, Any]:
    """Bound values of the leaf and exemplar queries."""
    lo, hi = min(baseline.start, incident.start), max(baseline.end, incident.end)
    _, fparams = filter_sql(filters)
    return {"b_start": baseline.start, "b_end": baseline.end, "i_start": incident.start, "i_end": incident.end} | fparams | scope_params(spec, lo, hi)


_SUMS = ("b_den", "b_num", "c_den", "c_num")


def fetch_leaves(store: Store, specs: Sequence[Signal], dims: list[str], baseline: Window, incident: Window,
                 filters: Filters) -> dict[str, pandas.DataFrame]:  # fmt: skip
    """Leaf aggregates of signals of one source from ONE query: per signal, dims + b_num, b_den,
    c_num, c_den (only leaves with calls for it), NULL values labelled NONE."""
    frame = store.df(leaves_query(specs, dims, filters), window_params(specs[0], baseline, incident, filters))
    if frame.empty:
        return {s.name: frame.reindex(columns=[*dims, *_SUMS]) for s in specs}
    for d in dims:
        frame[d] = frame[d].astype("object").where(frame[d].notna(), NONE).astype(str)
    out = {}
    for i, spec in enumerate(specs):
        own = frame[[*dims, *(f"{c}_{i}" for c in _SUMS)]].rename(columns={f"{c}_{i}": c for c in _SUMS})
        out[spec.name] = own[(own["b_den"] + own["c_den"]) > 0].reset_index(drop=True)
    return out


def attribute(store: Store, signal: str, *, baseline: Window, incident: Window, filters: Filters = Filters(),
              dimensions: Sequence[str] | None = None, top: int = 10, align_within: timedelta | None = None) -> Attribution:  # fmt: skip
    """The ranked suspects of a regression of `signal` from the `baseline` to the `incident` window.

    Dimensions default to the whole allow-list (`DIMENSIONS`). A suspect's first appearance
    (first_seen table) or an annotated change (changes table) within `align_within` of the
    incident start lines up with the regression and raises its rank (default: a fifth of the
    incident window, at least 5 minutes: about as far as a start found two buckets off). For
    latency/TTFT percentiles the values compared are the share of calls slower than the
    baseline's percentile.

    NoDataError if either window holds no calls with the signal; AnalysisError for an unknown
    signal or dimension, or too few calls to say anything.
    """
    return attribute_many(store, [signal], baseline=baseline, incident=incident, filters=filters, dimensions=dimensions,
                          top=top, align_within=align_within)[get_signal(signal).name]  # fmt: skip


def attribute_many(store: Store, signals: Sequence[str], *, baseline: Window, incident: Window, filters: Filters = Filters(),
                   dimensions: Sequence[str] | None = None, top: int = 10,
                   align_within: timedelta | None = None) -> dict[str, Attribution]:  # fmt: skip
    """`attribute` for several signals over the same windows, {signal: Attribution}: the
    llm_calls signals share one leaf query (one scan for all), each evaluation has its own."""
    specs = list(dict.fromkeys(get_signal(s) for s in signals))
    dims = _dimensions(dimensions)
    calls = [s for s in specs if s.source == "calls"]
    groups = ([calls] if calls else []) + [[s] for s in specs if s.source == "scores"]
    leaves: dict[str, pandas.DataFrame] = {}
    for group in groups:
        leaves |= fetch_leaves(store, group, dims, baseline, incident, filters)
    context = _Context(store, baseline, incident, filters, align_within or max(timedelta(minutes=5), (incident.end - incident.start) / 5))
    return {s.name: _attribution(context, s, dims, leaves[s.name], top) for s in specs}


@dataclass(frozen=True)
class _Context:
    """What every attribution of one pass shares: the store, the windows, the alignment data."""

    store: Store
    baseline: Window
    incident: Window
    filters: Filters
    tolerance: timedelta

    @functools.cached_property
    def first_seen(self) -> dict[tuple[str, str], datetime]:
        return _first_seen(self.store, self.filters)

    @functools.cached_property
    def changes(self) -> list[_Change]:
        return _changes(self.store, self.incident.start - self.tolerance, self.incident.start + self.tolerance, self.filters)


def _attribution(context: _Context, spec: Signal, dims: list[str], leaves: pandas.DataFrame, top: int) -> Attribution:
    """One signal's Attribution from its leaves (errors when a window is empty or too thin)."""
    b_calls, c_calls = int(leaves["b_den"].sum()), int(leaves["c_den"].sum())
    for calls, name, window in ((b_calls, "baseline", context.baseline), (c_calls, "incident", context.incident)):
        if calls == 0:
            raise NoDataError(f"no {spec.name} data in the {name} window {window.start.isoformat()} .. {window.end.isoformat()}")
        if calls < MIN_SEGMENT_CALLS:
            raise AnalysisError(f"too little data: {calls} calls with {spec.name} in the {name} window (need {MIN_SEGMENT_CALLS})")
    ranked = attribute_frame(leaves, dimensions=dims, baseline="b_num", current="c_num", baseline_count="b_den",
                             current_count="c_den", min_count=MIN_SEGMENT_CALLS)  # fmt: skip
    return Attribution(signal=spec.name, baseline=context.baseline, incident=context.incident,
                       baseline_value=float(leaves["b_num"].sum()) / b_calls, incident_value=float(leaves["c_num"].sum()) / c_calls,
                       suspects=tuple(_suspects(context, spec, ranked, top)))  # fmt: skip


def _suspects(context: _Context, spec: Signal, ranked: pandas.DataFrame, top: int) -> list[Suspect]:
    """Top candidates, re-ranked by alignment with the start, as Suspects with evidence."""
    incident, baseline, tolerance = context.incident, context.baseline, context.tolerance
    pool = ranked[ranked["explained_share"] > 0].head(max(top * 4, 20))
    scored = []
    for row in pool.itertuples(index=False):
        pairs = list(zip(row.dimensions, row.values))
        first = max((context.first_seen[p] for p in pairs if p in context.first_seen), default=None)
        aligned_first = first is not None and abs(first - incident.start) <= tolerance
        change = next((c for c in context.changes if c.matches() & set(pairs)), None)
        boost = ALIGNED_BOOST if (aligned_first or change is not None) else 1.0
        scored.append((row.score * boost, row, first, change))
    scored.sort(key=lambda s: (-s[0], len(s[1].dimensions)))
    suspects = []
    for rank, (_, row, first, change) in enumerate(scored[:top]):
        traces = _exemplars(context, spec, row.dimensions, row.values) if rank < EXEMPLAR_SUSPECTS else ()
        params = {"signal": spec.name, "dimensions": list(row.dimensions), "values": list(row.values),
                  "baseline": [baseline.start.isoformat(), baseline.end.isoformat()],
                  "incident": [incident.start.isoformat(), incident.end.isoformat()]}  # fmt: skip
        suspects.append(Suspect(
            dimensions=tuple(row.dimensions), values=tuple(row.values), explained_share=round(float(row.explained_share), 6),
            effect=row.effect, baseline_value=_maybe(row.baseline_value), current_value=_maybe(row.current_value),
            baseline_calls=int(row.baseline_count), current_calls=int(row.current_count), first_seen=first,
            aligned_change=None if change is None else change.text, evidence=Evidence("leaves", params, tuple(traces)),
        ))  # fmt: skip
    return suspects


def _maybe(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _first_seen(store: Store, filters: Filters) -> dict[tuple[str, str], datetime]:
    """First appearance of each value of the change-bearing dimensions (the first_seen table)."""
    where, params = filter_sql(filters, only=("service",))
    rows = store.rows(render("first_seen", filters=where), params | {"dimensions": list(DIMENSIONS)})
    return {(str(d), str(v)): utc(t) for d, v, t in rows}


def _changes(store: Store, lo: datetime, hi: datetime, filters: Filters) -> list[_Change]:
    """Annotated changes in [lo, hi) (the window around the regression start)."""
    where, params = filter_sql(filters, only=("service",))
    rows = store.rows(render("changes", filters=where), params | {"lo": lo, "hi": hi})
    return [_Change(utc(t), str(k), str(target), None if v is None else str(v), str(desc)) for t, k, target, v, desc in rows]


def segment_terms(dimensions: Sequence[str], values: Sequence[str], prefix: str) -> tuple[list[str], dict[str, str]]:
    """SQL terms (to AND together) matching one segment, values bound as `{<prefix><i>:String}`.

    NULL-safe: a call without the dimension never matches a value, so `NOT (…)` stays exact.
    """
    terms, params = [], {}
    for i, (dimension, value) in enumerate(zip(dimensions, values)):
        if value == NONE:
            terms.append(f"{DIMENSIONS[dimension]} IS NULL")
        else:
            terms.append(f"ifNull({DIMENSIONS[dimension]} = {{{prefix}{i}:String}}, 0)")
            params[f"{prefix}{i}"] = value
    return terms, params


def _exemplars(context: _Context, spec: Signal, dims: Sequence[str], values: Sequence[str]) -> list[str]:
    """Trace ids of the worst incident calls inside the suspect segment."""
    where, _ = filter_sql(context.filters)
    terms, params = segment_terms(dims, values, "v")
    params |= window_params(spec, context.baseline, context.incident, context.filters) | {"limit": EXEMPLARS}
    match = "".join(f"\n  AND {term}" for term in terms)
    sql = render("exemplars", source=source_sql(spec, with_dimensions=True, filters=context.filters), den=spec.den,
                 filters=where, match=match, worst=spec.worst_sql)  # fmt: skip
    return [str(r[0]) for r in context.store.rows(sql, params)]
