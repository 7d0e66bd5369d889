"""Attribution over the store: which dimension values (and combinations) explain a regression.

The store hands over leaf aggregates — one row per combination of the allow-listed dimensions,
baseline and incident side by side — from ONE GROUP BY query; `attribute_frame`
(`_attribute_frame`) does the arithmetic on that small frame. Here the candidates become
Suspects a person can act on: aligned with first appearances and annotated changes, with
exemplar traces.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from driftline.collector._errors import AnalysisError, NoDataError, TooLittleDataError

from ._attribute_frame import NONE, attribute_frame, holds_missing
from ._model import Attribution, Evidence, Filters, Suspect, Window
from ._regimes import arcsine_z
from ._signals import LOW_CONFIDENCE, Signal, filter_sql, get_signal, scope_params, source_sql, utc
from ._sql import quote_identifier, render

if TYPE_CHECKING:
    import pandas

    from driftline.collector.store._store import Store

__all__ = ["DIMENSIONS", "attribute", "attribute_many"]

DIMENSIONS: dict[str, str] = {
    "request_model": "request_model",
    "response_model": "response_model",
    "system_fingerprint": "system_fingerprint",
    "provider": "provider",
    "prompt_version": "prompt_version",
    "index_version": "index_version",
    "input_confidence": f"multiIf(confidence_mean IS NULL, NULL, confidence_mean < {LOW_CONFIDENCE}, 'low', confidence_mean < 0.8, 'medium', 'high')",
    "route": "route",
    "tenant": "tenant",
    "service_version": "service_version",
}
"""The allow-list: attribution dimension -> its SQL over an llm_calls row. ASR/OCR confidence is bucketed."""
BUCKETED_FROM = {"input_confidence": "confidence_mean"}
"""The column a bucketed dimension is computed from. For a signal that reads the same column it
restates the symptom ("more low-confidence inputs: the low-confidence ones"), so it is no suspect
there; for any other signal (quality falling on low-confidence transcripts) it is a cause."""

MIN_SEGMENT_CALLS = 20
"""attribute() ignores candidates with fewer incident calls: no suspects made of a handful of calls."""
ALIGNED_BOOST = 1.5
"""Score multiplier for a candidate whose first appearance or annotated change is at the start (less further off)."""
PRESENT_Z = 3.0
"""Standard errors by which calls count as worse than before, or than other calls (`_Calls`)."""
AS_MUCH = 0.1
"""Shares (capped at all of the change) within this of each other explain as much of it: a share
read off a few hundred calls, or a start dated a bucket early, moves it by several points."""
EXEMPLARS = 5
EXEMPLAR_SUSPECTS = 3


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
    """Four conditional aggregates per signal: count and numerator sum in the baseline and the
    incident; for a mean of values that are not 0 or 1 (scores, costs) also their sums of squares."""
    return "".join(
        f",\n       countIf({s.den} AND in_base) AS b_den_{i}, sumIf({s.numerator(f'threshold_{i}')}, {s.den} AND in_base) AS b_num_{i},"
        f" countIf({s.den} AND in_inc) AS c_den_{i}, sumIf({s.numerator(f'threshold_{i}')}, {s.den} AND in_inc) AS c_num_{i}"
        + (f", {s.squares_sql} AS sq_{i}" if _has_spread(s) else "")
        for i, s in enumerate(specs)
    )  # fmt: skip


def _has_spread(spec: Signal) -> bool:
    """Whether the signal's per-call spread is measured (sq): a mean of values that are not 0 or 1."""
    return spec.quantile is None and not spec.binary


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
    c_num, c_den (and sq, the sum of squared values of both windows, where `_has_spread`; only
    leaves with calls for it), NULL values labelled NONE."""
    frame = store.df(leaves_query(specs, dims, filters), window_params(specs[0], baseline, incident, filters))
    if frame.empty:
        return {s.name: frame.reindex(columns=[*dims, *_SUMS]) for s in specs}
    for d in dims:
        frame[d] = frame[d].astype("object").where(frame[d].notna(), NONE).astype(str)
    out = {}
    for i, spec in enumerate(specs):
        sums = (*_SUMS, "sq") if _has_spread(spec) else _SUMS
        own = frame[[*dims, *(f"{c}_{i}" for c in sums)]].rename(columns={f"{c}_{i}": c for c in sums})
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
                   dimensions: Sequence[str] | None = None, top: int = 10, align_within: timedelta | None = None,
                   exemplars: bool = True, seen: Mapping[tuple[str, str], datetime] | None = None) -> dict[str, Attribution]:  # fmt: skip
    """`attribute` for several signals over the same windows, {signal: Attribution}: the
    llm_calls signals share one leaf query (one scan for all), each evaluation has its own.
    Without `exemplars`, suspects carry no trace ids (`with_exemplars` adds them later, to the
    attributions a reader will see). `seen`: the first appearances as `first_seen` read them for
    these filters, when a caller attributing many times has read them once."""
    specs = list(dict.fromkeys(get_signal(s) for s in signals))
    dims = _dimensions(dimensions)
    calls = [s for s in specs if s.source == "calls"]
    groups = ([calls] if calls else []) + [[s] for s in specs if s.source == "scores"]
    leaves: dict[str, pandas.DataFrame] = {}
    for group in groups:
        leaves |= fetch_leaves(store, group, dims, baseline, incident, filters)
    context = _Context(store, baseline, incident, filters, align_within or max(timedelta(minutes=5), (incident.end - incident.start) / 5), seen)
    found = {s.name: _attribution(context, s, dims, leaves[s.name], top) for s in specs}
    for group in groups if exemplars else []:  # one exemplar scan per leaf scan
        found |= _with_traces(context, group, found)
    return found


@dataclass(frozen=True)
class _Context:
    """What every attribution of one pass shares: the store, the windows, the alignment data."""

    store: Store
    baseline: Window
    incident: Window
    filters: Filters
    tolerance: timedelta
    seen: Mapping[tuple[str, str], datetime] | None = None

    @functools.cached_property
    def first_seen(self) -> Mapping[tuple[str, str], datetime]:
        return self.seen if self.seen is not None else first_seen(self.store, self.filters)

    @functools.cached_property
    def changes(self) -> list[_Change]:
        return _changes(self.store, self.incident.start - self.tolerance, self.incident.start + self.tolerance, self.filters)


def _attribution(context: _Context, spec: Signal, dims: list[str], leaves: pandas.DataFrame, top: int) -> Attribution:
    """One signal's Attribution from its leaves, without exemplar traces (errors when a window is
    empty or too thin)."""
    b_calls, c_calls = int(leaves["b_den"].sum()), int(leaves["c_den"].sum())
    for calls, name, window in ((b_calls, "baseline", context.baseline), (c_calls, "incident", context.incident)):
        if calls == 0:
            raise NoDataError(f"no {spec.name} data in the {name} window {window.start.isoformat()} .. {window.end.isoformat()}")
        if calls < MIN_SEGMENT_CALLS:
            raise TooLittleDataError(f"too little data: {calls} calls with {spec.name} in the {name} window (need {MIN_SEGMENT_CALLS})")
    ranked = attribute_frame(leaves, dimensions=_not_restating(spec, dims), baseline="b_num", current="c_num", baseline_count="b_den",
                             current_count="c_den", min_count=MIN_SEGMENT_CALLS, spread=_spread(leaves))  # fmt: skip
    return Attribution(signal=spec.name, baseline=context.baseline, incident=context.incident,
                       baseline_value=float(leaves["b_num"].sum()) / b_calls, incident_value=float(leaves["c_num"].sum()) / c_calls,
                       suspects=tuple(_suspect(context, spec, *entry) for entry in _suspect_entries(context, spec, leaves, ranked, top)))  # fmt: skip


def _not_restating(spec: Signal, dims: list[str]) -> list[str]:
    """The dimensions but those computed from the column the signal itself reads (`BUCKETED_FROM`)."""
    kept = [d for d in dims if spec.column is None or BUCKETED_FROM.get(d) != spec.column]
    return kept or dims


def _spread(leaves: pandas.DataFrame) -> float | None:
    """Per-call standard deviation within each window, pooled, where the leaves carry squares."""
    if "sq" not in leaves:
        return None
    total = {c: float(leaves[c].sum()) for c in ("b_num", "b_den", "c_num", "c_den", "sq")}
    between = total["b_num"] ** 2 / total["b_den"] + total["c_num"] ** 2 / total["c_den"]  # n * mean^2 of each window
    return math.sqrt(max(total["sq"] - between, 0.0) / (total["b_den"] + total["c_den"]))


def _suspect_entries(context: _Context, spec: Signal, leaves: pandas.DataFrame, ranked: pandas.DataFrame, top: int) -> list[tuple[Any, ...]]:
    """Top candidates a person can act on: (root cause, row, equivalents, first seen, change).

    A segment defined by a missing value (`(none)`: failed calls have no response model, calls
    without retrieval no index) describes the signal's population, not a change, so it is no
    suspect. Segments covering exactly the same calls are one suspect naming all of them. Ranked
    by score, raised where a first appearance or annotated change lines up with the start; for a
    0/1 signal a root cause is raised above the candidates the calls say it explains better
    (`_causes_up`); the root-cause set is marked on each suspect.
    """
    pool = ranked[(ranked["explained_share"] > 0) & ~holds_missing(ranked)].head(max(top * 4, 20))
    scored = []
    for row in pool.itertuples(index=False):
        pairs = list(zip(row.dimensions, row.values))
        first = max((context.first_seen[p] for p in pairs if p in context.first_seen), default=None)
        change = next((c for c in context.changes if c.matches() & set(pairs)), None)
        moments = [t for t in (first, None if change is None else change.time) if t is not None]
        boost = max((_alignment(context, t) for t in moments), default=1.0)
        scored.append((bool(row.root_cause), row.score * boost, row, first, change))
    calls = _Calls(spec, leaves)
    ordered = _roots_over_overlaps(calls, _explained_below_causes(scored))
    return _merge_equivalents(_causes_up(calls, ordered) if spec.binary else ordered)[:top]


@dataclass(frozen=True)
class _Calls:
    """The calls of any set of leaves of a 0/1 signal, and how they compare: what it takes to weigh
    two candidates that claim overlapping calls."""

    spec: Signal
    leaves: pandas.DataFrame

    def mask(self, row: Any) -> Any:
        return functools.reduce(lambda m, dv: m & (self.leaves[dv[0]] == dv[1]), zip(row.dimensions, row.values), True)

    def inside(self, row: Any, rows: Any) -> bool:
        """Whether candidate `row` holds fewer than MIN_SEGMENT_CALLS incident calls outside the
        leaves `rows`: too few to say anything of their own."""
        return float(self.leaves["c_den"][self.mask(row) & ~rows].sum()) < MIN_SEGMENT_CALLS

    def sums(self, rows: Any) -> Any:
        return self.leaves.loc[rows, ["b_num", "b_den", "c_num", "c_den"]].sum()

    def moved(self, rows: Any) -> bool:
        """Whether the calls of these leaves got worse, by PRESENT_Z standard errors, than they were
        in the baseline (than the whole scope was, if they were too few there)."""
        part = self.sums(rows)
        if part["c_den"] < MIN_SEGMENT_CALLS:
            return False
        before = part if part["b_den"] >= MIN_SEGMENT_CALLS else self.sums(slice(None))
        return self.worse_z(before["b_num"], before["b_den"], part["c_num"], part["c_den"]) >= PRESENT_Z

    def spared(self, rows: Any, hit: Any) -> bool:
        """Whether the incident calls of `rows` are better, by PRESENT_Z standard errors, than those of `hit`."""
        part, damaged = self.sums(rows), self.sums(hit)
        if min(part["c_den"], damaged["c_den"]) < MIN_SEGMENT_CALLS:
            return False
        return self.worse_z(part["c_num"], part["c_den"], damaged["c_num"], damaged["c_den"]) >= PRESENT_Z

    def rather(self, mine: Any, other: Any) -> bool:
        """Whether the calls say the cause whose leaves are `mine` rather than candidate `other`:
        where only one of them claims calls, the damage follows the cause (its own calls moved, or
        the other's own were spared) and nothing says it follows the other."""
        theirs = self.mask(other)
        both, only_mine, only_theirs = mine & theirs, mine & ~theirs, theirs & ~mine
        for_cause = self.moved(only_mine) or self.spared(only_theirs, both)
        return for_cause and not (self.moved(only_theirs) or self.spared(only_mine, both))

    def worse_z(self, num: float, den: float, c_num: float, c_den: float) -> float:
        """How much worse, in the signal's bad direction, c_num bad calls of c_den are than num of
        den, in standard errors on the arcsine scale."""
        z = float(arcsine_z(num, den, c_num, c_den, 1.0))
        return z if self.spec.bad == "up" else -z


def _causes_up(sets: _Calls, ordered: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each root cause moved above the candidates ranked over it that the calls say it explains
    better (`_Calls.rather`): a provider's 429 storm over an index rebuilt at the same moment, whose
    calls on other providers are fine. A new model on the one route it serves keeps its place
    above the route: the route's few other calls tell nothing. Only for 0/1 signals (errors,
    429s, failed validations), whose calls compare directly: a mean of costs or scores differs
    between segments before anything changed."""
    out = list(ordered)
    for cause in [entry for entry in ordered if entry[0]]:
        at = top = next(i for i, entry in enumerate(out) if entry is cause)
        mine = sets.mask(cause[2])
        while top > 0 and not out[top - 1][0] and (_same_calls(cause[2], out[top - 1][2]) or sets.rather(mine, out[top - 1][2])):
            top -= 1
        # the cause and the candidates holding its very calls move up together, in their order (the
        # first names their one suspect); those it explains better follow
        passed = out[top : at + 1]
        together = [e for e in passed if e is cause or _same_calls(cause[2], e[2])]
        out[top : at + 1] = together + [e for e in passed if not any(e is t for t in together)]
    return out


def _roots_over_overlaps(sets: _Calls, ordered: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each root cause moved above the candidates ranked over it that it does not merely narrow:
    the stopping rule weighed them and found the cause explains the change better (a fingerprint
    rotated while a prompt changed, or the route the prompt serves). A candidate inside the cause
    that explains as much keeps its place (the new response model within the request model the
    set names is what a person acts on), and so does one the cause pairs with another dimension
    (a client deploy, over the deploy on the one model whose streams it cut)."""
    out = list(ordered)
    for cause in [entry for entry in ordered if entry[0]]:
        at = top = next(i for i, entry in enumerate(out) if entry is cause)
        mine = sets.mask(cause[2])
        while top > 0 and not out[top - 1][0] and not _within(sets, out[top - 1][2], cause[2], mine) and not _narrows(cause[2], out[top - 1][2]):
            top -= 1
        out.insert(top, out.pop(at))
    return out


def _within(sets: _Calls, row: Any, cause: Any, mine: Any) -> bool:
    """Whether candidate `row` lies within the cause and explains as much of the change: fewer
    incident calls than it, too few outside its leaves to say anything of their own
    (`_Calls.inside`), and a share (capped at 1) within AS_MUCH of the cause's. A candidate with
    more calls than the cause is no narrower part of it, however few its own (a fingerprint rotated
    minutes before the prompt that the stopping rule chose); one that explains less is a part the
    change had already reached before it (a prompt edited twelve minutes into a proxy's TTFT
    regression)."""
    as_much = min(float(row.explained_share), 1.0) >= min(float(cause.explained_share), 1.0) - AS_MUCH
    return as_much and float(row.current_count) <= float(cause.current_count) and sets.inside(row, mine)


def _narrows(row: Any, other: Any) -> bool:
    """Whether candidate `row` is `other` paired with a further dimension."""
    return set(zip(row.dimensions, row.values)) > set(zip(other.dimensions, other.values))


def _same_calls(row: Any, other: Any) -> bool:
    """Whether two candidates hold the same incident calls, changed the same (one suspect, `_merge_equivalents`)."""
    return _calls_key(row) == _calls_key(other)


def _calls_key(row: Any) -> tuple[float, float]:
    return round(float(row.current_count), 6), round(float(row.within_share), 6)


def _explained_below_causes(scored: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Ranked by score, except that a segment inside a shift of traffic marked as the root cause
    (a pair holding the grown tenant, with fewer incident calls) ranks right below it: the shift
    explains it, and naming a narrower part first would send the on-call after one model of a
    tenant whose calls are all as they were, only more of them."""
    causes = [(s[2], s[1]) for s in scored if s[0] and s[2].effect == "mix"]

    def rank(entry: tuple[Any, ...]) -> float:
        row = entry[2]
        return min([entry[1], *(score for cause, score in causes if _narrows(row, cause) and row.current_count < cause.current_count)])

    return sorted(scored, key=lambda s: (-rank(s), len(s[2].dimensions)))


def _alignment(context: _Context, moment: datetime) -> float:
    """Score multiplier for a change at `moment`: ALIGNED_BOOST at the start, falling to 1 at the
    tolerance, so of two changes before a regression the one nearer its start ranks higher."""
    off = abs((moment - context.incident.start).total_seconds()) / max(context.tolerance.total_seconds(), 1.0)
    return 1.0 + (ALIGNED_BOOST - 1.0) * max(0.0, 1.0 - off)


def _merge_equivalents(scored: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One entry per set of incident calls: a later candidate with the same incident calls and the
    same part of the change where they got worse joins the first as an equivalent (a new response
    model, its fingerprint, and the request model or route whose every call moved to it)."""
    out: list[tuple[Any, ...]] = []
    index: dict[tuple[float, float], int] = {}
    for root, _, row, first, change in scored:
        key = _calls_key(row)
        if key in index:
            kept = out[index[key]]
            out[index[key]] = (kept[0] or root, kept[1], (*kept[2], (tuple(row.dimensions), tuple(row.values))), kept[3], kept[4] or change)
            continue
        index[key] = len(out)
        out.append((root, row, (), first, change))
    return out


def _suspect(context: _Context, spec: Signal, root: bool, row: Any, equivalents: tuple[Any, ...],
             first: datetime | None, change: _Change | None) -> Suspect:  # fmt: skip
    params = {"signal": spec.name, "dimensions": list(row.dimensions), "values": list(row.values),
              "baseline": [context.baseline.start.isoformat(), context.baseline.end.isoformat()],
              "incident": [context.incident.start.isoformat(), context.incident.end.isoformat()]}  # fmt: skip
    share = float(row.explained_share)
    return Suspect(
        dimensions=tuple(row.dimensions), values=tuple(row.values), explained_share=round(min(share, 1.0), 6),
        effect=row.effect, baseline_value=_maybe(row.baseline_value), current_value=_maybe(row.current_value),
        baseline_calls=int(row.baseline_count), current_calls=int(row.current_count), first_seen=first,
        aligned_change=None if change is None else change.text, evidence=Evidence("leaves", params),
        root_cause=root, equivalents=equivalents, uncapped_share=round(share, 6),
    )  # fmt: skip


def _maybe(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def first_seen(store: Store, filters: Filters) -> dict[tuple[str, str], datetime]:
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


def segment_conditions(segments: Sequence[tuple[Sequence[str], Sequence[str]]], prefix: str) -> tuple[list[str], dict[str, str]]:
    """One bound SQL condition per (dimensions, values) segment, `(a = {<prefix>0_0:String} AND …)`."""
    conditions: list[str] = []
    params: dict[str, str] = {}
    for i, (dimensions, values) in enumerate(segments):
        terms, bound = segment_terms(dimensions, values, f"{prefix}{i}_")
        conditions.append("(" + " AND ".join(terms) + ")")
        params |= bound
    return conditions, params


def with_exemplars(store: Store, attribution: Attribution, filters: Filters = Filters()) -> Attribution:
    """The attribution with exemplar trace ids on its leading suspects (one scan)."""
    spec = get_signal(attribution.signal)
    context = _Context(store, attribution.baseline, attribution.incident, filters, timedelta(0))
    return _with_traces(context, [spec], {spec.name: attribution})[spec.name]


def _with_traces(context: _Context, specs: Sequence[Signal], found: dict[str, Attribution]) -> dict[str, Attribution]:
    """The signals' attributions with exemplar trace ids on their leading suspects, from one scan."""
    traces = _exemplars(context, specs, {s.name: found[s.name].suspects[:EXEMPLAR_SUSPECTS] for s in specs})
    out = {}
    for spec in specs:
        suspects = list(found[spec.name].suspects)
        for rank, trace_ids in enumerate(traces[spec.name]):
            suspects[rank] = dataclasses.replace(suspects[rank], evidence=dataclasses.replace(suspects[rank].evidence, trace_ids=trace_ids))
        out[spec.name] = dataclasses.replace(found[spec.name], suspects=tuple(suspects))
    return out


def _exemplars(context: _Context, specs: Sequence[Signal], rows: Mapping[str, Sequence[Suspect]]) -> dict[str, list[tuple[str, ...]]]:
    """Trace ids of the worst incident calls inside each suspect segment of each signal of one
    source, in one scan: {signal: [trace ids per segment]}."""
    if not any(rows.values()):
        return {s.name: [] for s in specs}
    where, _ = filter_sql(context.filters)
    columns, conditions, params = [], [], window_params(specs[0], context.baseline, context.incident, context.filters)
    for i, spec in enumerate(specs):
        matches, bound = segment_conditions([(row.dimensions, row.values) for row in rows[spec.name]], f"e{i}_")
        params |= bound
        conditions += [f"({spec.den} AND {m})" for m in matches]
        columns += [f"arrayMap(x -> x.3, groupArraySortedIf({EXEMPLARS})(({spec.worst_sql}, time, trace_id), ({spec.den} AND {m})))"
                    for m in matches]  # fmt: skip
    sql = render("exemplars", source=source_sql(specs[0], with_dimensions=True, filters=context.filters), filters=where,
                 columns=", ".join(columns), any=" OR ".join(conditions))  # fmt: skip
    [row] = context.store.rows(sql, params)
    found = iter(tuple(str(t) for t in traces) for traces in row)
    return {s.name: [next(found) for _ in rows[s.name]] for s in specs}
