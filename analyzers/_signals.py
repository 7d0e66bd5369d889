"""Signals: what detection watches and attribution explains, each one SQL aggregate.

A signal is defined per call as a numerator (`num`) over the calls that carry data for it
(`den`, a condition): a rate (errors, 429s, validation failures, low-confidence input), a mean
(cost, tokens after cancel, an evaluation score) or a percentile (latency, TTFT). Percentiles
are computed as such per time bucket; for attribution they become the share of calls slower
than the baseline's percentile, which adds up over segments the way a percentile does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from driftline.collector._errors import AnalysisError, NoDataError

from ._model import Direction, Filters, Window
from ._sql import quote_identifier, render

if TYPE_CHECKING:
    import pandas

    from driftline.collector.store._store import Store

__all__ = ["QUALITY_PREFIX", "Signal", "default_bucket", "get_signal", "signal_names", "signal_series"]

QUALITY_PREFIX = "quality:"
LOW_CONFIDENCE = 0.6
"""ASR/OCR mean word confidence under which an input counts as low-confidence (as in record_confidence)."""


@dataclass(frozen=True)
class Signal:
    """One watched quantity; `num`/`den`/`column` are SQL over the call (or scored call) row."""

    name: str
    description: str
    bad: Direction
    num: str
    den: str
    source: Literal["calls", "scores"] = "calls"
    quantile: float | None = None
    column: str | None = None
    """The llm_calls column the signal reads, where it reads one: a percentile's, a confidence's."""
    evaluation: str | None = None
    binary: bool = False
    """A rate: `num` is 0 or 1 per call, so its squares are its sums (one aggregate, not two)."""
    heavy_tailed: bool = False
    """Per-call values spread over orders of magnitude (a latency, a token count, a cost): the
    percentile or mean moves a tenth with load, prompt growth or the mix of routes in an ordinary
    day, so detection asks a larger relative shift of it (`DetectionSettings.min_relative_heavy`)."""
    of_inputs: bool = False
    """It measures what came in (a transcript's or a scan's confidence), not what the model did:
    a tenant whose inputs are poorer growing moves it with no call worse than before, as it moves
    a score, so it gets the tenant-mix test (`_mix`) where latency and cost do not."""

    @property
    def value_sql(self) -> str:
        """The bucket aggregate: a percentile, or sum(num) over the calls with data."""
        if self.quantile is not None:  # one digest per column serves all its percentiles (ClickHouse dedupes it)
            return f"quantilesBFloat16If{_PERCENTILES}({self.column}, {self.den})[{_PERCENTILES.index(self.quantile) + 1}]"
        return f"sumIf({self.num}, {self.den}) / nullIf(countIf({self.den}), 0)"

    def numerator(self, threshold: str) -> str:
        """The per-call numerator; for a percentile, being slower than `threshold` (the SQL alias
        of the baseline's percentile), which adds up over segments as a percentile does not."""
        return f"{self.column} > {threshold}" if self.quantile is not None else self.num

    @property
    def calls_sql(self) -> str:
        return f"countIf({self.den})"

    @property
    def squares_sql(self) -> str:
        """Sum of the squared per-call values (0 for a percentile): with the mean and the count, the
        per-call variance that detection's standard errors need. A product, not pow(): the scan is
        about a sixth faster (the value is computed once either way)."""
        if self.quantile is not None:
            return "0"
        value = f"toFloat64({self.num})"
        return f"sumIf({self.num}, {self.den})" if self.binary else f"sumIf({value} * {value}, {self.den})"

    def partials(self) -> dict[str, str]:
        """Partial aggregates for the sliced scan (sliced_by_bucket.sql) by role: sums for a mean or
        a rate, the column's digest for a percentile, so the roll-up into slices stays exact. Signals
        share equal expressions (one digest serves p50, p95 and p99), and the scan computes each once."""
        if self.quantile is None:
            return {"sum": f"sumIf({self.num}, {self.den})", "calls": self.calls_sql, "squares": self.squares_sql}
        return {"digest": f"quantilesBFloat16IfState{_PERCENTILES}({self.column}, {self.den})", "calls": self.calls_sql}

    def merged_sql(self, i: int, alias: Mapping[str, str]) -> str:
        """The roll-up of `partials()`, each named by `alias[role]`: value v{i}, calls c{i} and squares q{i}."""
        calls = f"sum({alias['calls']})"
        if self.quantile is None:
            return f"sum({alias['sum']}) / nullIf({calls}, 0) AS v{i}, {calls} AS c{i}, sum({alias['squares']}) AS q{i}"
        level = _PERCENTILES.index(self.quantile) + 1
        return f"quantilesBFloat16IfMerge{_PERCENTILES}({alias['digest']})[{level}] AS v{i}, {calls} AS c{i}, 0 AS q{i}"

    @property
    def worst_sql(self) -> str:
        """A call's badness as an ascending sort key (worst calls first), for exemplar trace ids."""
        return f"{'-' if self.bad == 'up' else ''}toFloat64({self.num})"

    def is_bad(self, direction: Direction) -> bool:
        return direction == self.bad


_PERCENTILES = (0.5, 0.95, 0.99)
"""Percentile signals per bucket come from one bfloat16 histogram per column (within ~0.4%)."""


def _percentiles(name: str, column: str, what: str) -> list[Signal]:
    return [
        Signal(f"{name}_p{round(q * 100)}", f"{round(q * 100)}th percentile of {what} (seconds)", "up", column,
               f"{column} IS NOT NULL", quantile=q, column=column, heavy_tailed=True)
        for q in _PERCENTILES
    ]  # fmt: skip


_STREAMED = "(ifNull(stream, false) OR cancelled)"
"""The calls a cancellation signal counts: only a stream can be cut short (a call that says it was
cancelled counts even where its instrumentation did not record the stream flag). Counting the
others would dilute the signal, and make "the streamed calls of the new version" look like a
narrower cause than the version itself."""

_CALL_SIGNALS: tuple[Signal, ...] = (
    Signal("error_rate", "share of calls that failed", "up", "status = 'Error'", "1", binary=True),
    Signal("rate_limit_rate", "share of calls rate-limited (HTTP 429)", "up", "rate_limited", "1", binary=True),
    *_percentiles("latency", "duration_s", "call duration"),
    *_percentiles("ttft", "ttft_s", "time to first token"),
    Signal("cost_per_call", "mean cost per call (USD)", "up", "cost_usd", "cost_usd IS NOT NULL", heavy_tailed=True),
    Signal("cancellation_tax", "tokens generated after the caller cancelled, per streamed call", "up",
           "ifNull(tokens_after_cancel, 0)", _STREAMED, heavy_tailed=True),  # fmt: skip
    Signal("cancellation_cost", "cost (USD) of the tokens generated after cancel, per streamed call: the call's cost "
           "times the share of its output tokens that came after the cancel (an upper bound: input is in the cost too)",
           "up", "ifNull(cost_usd * tokens_after_cancel / nullIf(output_tokens, 0), 0)", _STREAMED, heavy_tailed=True),  # fmt: skip
    Signal("validation_failure_rate", "share of structured outputs that failed validation", "up",
           "validation != 'ok'", "validation IS NOT NULL", binary=True),  # fmt: skip
    Signal("low_confidence_share", f"share of ASR/OCR inputs with mean word confidence under {LOW_CONFIDENCE}", "up",
           f"confidence_mean < {LOW_CONFIDENCE}", "confidence_mean IS NOT NULL", column="confidence_mean", binary=True, of_inputs=True),  # fmt: skip
    Signal("input_confidence", "mean word confidence of ASR/OCR inputs (0-1)", "down", "confidence_mean", "confidence_mean IS NOT NULL",
           column="confidence_mean", of_inputs=True),  # fmt: skip
)
CALL_SIGNALS: dict[str, Signal] = {s.name: s for s in _CALL_SIGNALS}


def quality_signal(evaluation: str) -> Signal:
    """`quality:<evaluation>`: the mean score of that evaluation; down is bad."""
    return Signal(f"{QUALITY_PREFIX}{evaluation}", f"mean {evaluation} score", "down", "score", "1",
                  source="scores", evaluation=evaluation)  # fmt: skip


def get_signal(name: str) -> Signal:
    """The signal called `name`; AnalysisError listing the valid names otherwise."""
    if name in CALL_SIGNALS:
        return CALL_SIGNALS[name]
    if name.startswith(QUALITY_PREFIX) and len(name) > len(QUALITY_PREFIX):
        return quality_signal(name[len(QUALITY_PREFIX) :])
    raise AnalysisError(f"unknown signal {name!r}: use one of {', '.join(CALL_SIGNALS)} or quality:<evaluation name>")


# --- query building -----------------------------------------------------------------------------

_FILTER_COLUMNS = ("service", "route", "tenant", "environment", "provider")
"""The filter columns (fixed); their values are always bound."""


def filter_sql(filters: Filters, *, only: tuple[str, ...] = _FILTER_COLUMNS) -> tuple[str, dict[str, Any]]:
    """`AND col = {f_col:String}` for each filter given, and the bound values."""
    parts, params = [], {}
    for column in only:
        value = getattr(filters, column)
        if value is not None:
            parts.append(f"\n  AND {quote_identifier(column)} = {{f_{column}:String}}")
            params[f"f_{column}"] = value
    return "".join(parts), params


def source_sql(signal: Signal, *, with_dimensions: bool, filters: Filters) -> str:
    """What the signal's rows come from: llm_calls, llm_scores, or scores joined to their calls."""
    if signal.source == "calls":
        return "llm_calls"
    needs_calls = with_dimensions or any(getattr(filters, c) is not None for c in _FILTER_COLUMNS if c not in _filterable("llm_scores"))
    if not needs_calls:
        return "llm_scores"
    evaluation = "" if signal.evaluation is None else " AND evaluation = {evaluation:String}"
    return render("scored_calls", evaluation=evaluation)


def scope_params(signal: Signal, lo: datetime, hi: datetime) -> dict[str, Any]:
    """Parameters every source needs: its overall time range, and the evaluation for quality."""
    params: dict[str, Any] = {"lo": utc(lo), "hi": utc(hi)}
    if signal.evaluation is not None:
        params["evaluation"] = signal.evaluation
    return params


def utc(value: datetime) -> datetime:
    """A datetime as timezone-aware UTC: the store's naive ones are UTC; aware ones are converted
    (bound values are sent in UTC, the store's zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NICE_BUCKETS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def default_bucket(window: Window, *, target: int = 150) -> timedelta:
    """The smallest round bucket that cuts the window into at most `target` pieces."""
    seconds = (window.end - window.start).total_seconds() / target
    return timedelta(seconds=next((b for b in _NICE_BUCKETS if b >= seconds), _NICE_BUCKETS[-1]))


def bucket_params(window: Window, bucket: timedelta) -> dict[str, Any]:
    """Bound values of a bucketed query: bucket width in seconds and the window in UTC."""
    if bucket.total_seconds() < 1:
        raise AnalysisError(f"bucket {bucket} is shorter than a second")
    return {"bucket": int(bucket.total_seconds()), "start": utc(window.start), "end": utc(window.end)}


# --- public functions -----------------------------------------------------------------------------


def signal_names(store: Store, window: Window, filters: Filters = Filters()) -> list[str]:
    """The signals with data in the window: llm_calls signals, then one quality:<name> per evaluation."""
    where, params = filter_sql(filters)
    columns = "".join(f",\n       {s.calls_sql} AS {quote_identifier(s.name)}" for s in _CALL_SIGNALS)
    params |= {"start": utc(window.start), "end": utc(window.end)}
    row = store.rows(render("present", columns=columns, filters=where), params)[0]
    names = [s.name for s, count in zip(_CALL_SIGNALS, row[1:]) if count]
    return names + [f"{QUALITY_PREFIX}{e}" for e in evaluations(store, window, filters)]


def evaluations(store: Store, window: Window, filters: Filters) -> list[str]:
    """The evaluation names with scores in the window."""
    sql, params = _all_scores_query("evaluations", window, filters)
    return [str(r[0]) for r in store.rows(sql, params)]


ALL_SCORES = Signal(f"{QUALITY_PREFIX}*", "every evaluation", "down", "score", "1", source="scores")


def _all_scores_query(name: str, window: Window, filters: Filters) -> tuple[str, dict[str, Any]]:
    """A query over the scores of every evaluation (llm_scores alone unless a filter needs the calls)."""
    where, params = filter_sql(filters, only=filter_columns(ALL_SCORES, filters))
    sql = render(name, source=source_sql(ALL_SCORES, with_dimensions=False, filters=filters), filters=where)
    return sql, params | {"start": utc(window.start), "end": utc(window.end)} | scope_params(ALL_SCORES, window.start, window.end)


def _frame(grid: list[datetime], values: dict[datetime, tuple[float, int, float]]) -> pandas.DataFrame:
    """time, value, calls and squares (sum of squared per-call values; NaN for percentiles) per bucket."""
    import pandas as pd

    empty = (math.nan, 0, 0.0)
    return pd.DataFrame({
        "time": pd.to_datetime(grid, utc=True),
        "value": [values.get(t, empty)[0] for t in grid],
        "calls": [values.get(t, empty)[1] for t in grid],
        "squares": [values.get(t, empty)[2] for t in grid],
    })  # fmt: skip


def filter_columns(signal: Signal, filters: Filters) -> tuple[str, ...]:
    """The filters the signal's source can apply (see `_filterable`)."""
    return _filterable(source_sql(signal, with_dimensions=False, filters=filters))


def _filterable(source: str) -> tuple[str, ...]:
    """The filter columns a source can apply: llm_scores alone none. Its service is the one that
    recorded the score, which for a score an evaluation job gave later (its own service, on a span
    linked to the call) is not the judged call's: any filter reads the scores through their calls."""
    return () if source == "llm_scores" else _FILTER_COLUMNS


def signal_series(store: Store, signal: str, window: Window, *, bucket: timedelta | None = None,
                  filters: Filters = Filters()) -> pandas.DataFrame:  # fmt: skip
    """The signal per time bucket, in ONE query: columns time (UTC bucket start), value
    (float, NaN where no call had data), calls (int). Every bucket of the window is present.

    NoDataError if no call in the window carries the signal.
    """
    spec = get_signal(signal)
    bucket = bucket or default_bucket(window)
    frame = query_series(store, [spec], window, bucket, filters)[spec.name]
    if int(frame["calls"].sum()) == 0:
        raise NoDataError(f"no data for {signal} between {window.start.isoformat()} and {window.end.isoformat()}")
    return frame


def query_series(store: Store, specs: list[Signal], window: Window, bucket: timedelta,
                 filters: Filters) -> dict[str, pandas.DataFrame]:  # fmt: skip
    """Several signals of one source per bucket in one query, as {name: frame}."""
    params = bucket_params(window, bucket)
    source = source_sql(specs[0], with_dimensions=False, filters=filters)
    where, fparams = filter_sql(filters, only=filter_columns(specs[0], filters))
    columns = "".join(f",\n       {s.value_sql} AS v{i}, {s.calls_sql} AS c{i}, {s.squares_sql} AS q{i}" for i, s in enumerate(specs))
    sql = render("by_bucket", columns=columns, source=source, filters=where)
    rows = store.rows(sql, params | fparams | scope_params(specs[0], window.start, window.end))
    grid = full_grid(window, bucket)
    return {spec.name: _frame(grid, {utc(r[0]): (_float(r[1 + 3 * i]), int(r[2 + 3 * i]), _float(r[3 + 3 * i]) if spec.quantile is None else math.nan)
                                     for r in rows})
            for i, spec in enumerate(specs)}  # fmt: skip


SLICE_DIMENSIONS = ("route", "provider", "service")
"""Where a regression hides in the aggregate (one route's prompt, one provider's outage, one
service's deploy): detection also judges each value of these on its own."""
Slice = tuple[str, str]
"""(dimension, value) of a slice; WHOLE for all calls in scope."""
WHOLE: Slice = ("", "")
"""The slice key of the whole scope."""
Segments = tuple[Mapping[str, str], Mapping[str, Any]]
"""Extra slice columns of the sliced scan, {alias: SQL expression}, and the values they bind."""
MAX_SLICES = 20
"""Values per slice dimension judged (the busiest): more would only add chances of a false alarm."""


def sliced_series(store: Store, specs: list[Signal], window: Window, bucket: timedelta, filters: Filters, *,
                  by_evaluation: bool = False, sliced: bool = True, segments: Segments | None = None) -> dict[str, dict[Slice, pandas.DataFrame]]:  # fmt: skip
    """Several signals of one source per bucket, over the whole scope and per slice, in ONE scan:
    {signal name: {slice: frame}}. With `by_evaluation`, `specs` is one scores signal and the result
    has one quality:<evaluation> entry per evaluation. Slice dimensions fixed by a filter are left out
    (all of them when not `sliced`: the whole scope only); scores are sliced by their calls'
    dimensions (joined for a score given after its call). `segments` ({alias: SQL expression}, the
    values they bind) adds a slice per value of each expression, keyed (alias, value)."""
    dims = [d for d in SLICE_DIMENSIONS if getattr(filters, d, None) is None] if sliced else []
    columns, segment_params = segments or ({}, {})
    source = source_sql(specs[0], with_dimensions=bool(dims) or bool(columns), filters=filters)
    where, fparams = filter_sql(filters, only=_filterable(source))
    keys = ", evaluation" if by_evaluation else ""
    slice_dim, slice_value = _slice_of([*dims, *columns])
    named: dict[str, str] = {}  # partial aggregate expression -> its alias, each computed once
    roles = [{role: named.setdefault(expression, f"p{len(named)}") for role, expression in s.partials().items()} for s in specs]
    grouped = [quote_identifier(d) for d in [*dims, *columns]]
    sql = render("sliced_by_bucket", source=source, filters=where, keys=keys, slice_dim=slice_dim, slice_value=slice_value,
                 slice_columns="".join([f", {quote_identifier(d)}" for d in dims] + [f", {e} AS {quote_identifier(a)}" for a, e in columns.items()]),
                 slice_keys="".join(f", {g}" for g in grouped),
                 sets=", ".join([f"(bucket{keys})", *(f"(bucket{keys}, {g})" for g in grouped)]),
                 partial="".join(f",\n           {expression} AS {alias}" for expression, alias in named.items()),
                 merged="".join(f",\n       {s.merged_sql(i, roles[i])}" for i, s in enumerate(specs)))  # fmt: skip
    rows = store.rows(sql, params_of(window, bucket, fparams, specs[0]) | dict(segment_params))
    return _frames(rows, specs, full_grid(window, bucket), by_evaluation=by_evaluation)


def _slice_of(dims: list[str]) -> tuple[str, str]:
    """SQL naming the grouping set of a row, as (dimension, value); ('', '') for the whole scope.
    GROUPING(col) is 0 where col is in the row's set (the standard, ClickHouse's default)."""
    if not dims:
        return "''", "''"
    tests = [f"grouping({quote_identifier(d)}) = 0" for d in dims]
    dimension = "multiIf(" + "".join(f"{t}, '{d}', " for t, d in zip(tests, dims)) + "'')"
    value = "multiIf(" + "".join(f"{t}, toString({quote_identifier(d)}), " for t, d in zip(tests, dims)) + "'')"
    return dimension, value


def _frames(rows: list[tuple[Any, ...]], specs: list[Signal], grid: list[datetime], *, by_evaluation: bool) -> dict[str, dict[Slice, pandas.DataFrame]]:
    """The sliced query's rows as one frame per signal and slice, on the full grid (arrays, not row loops)."""
    import numpy as np
    import pandas as pd

    rows = [r for r in rows if r[1] == "" or r[2] is not None]  # a slice of NULLs (calls without a route) is none
    if not rows:
        return {}
    columns = list(zip(*rows))
    times = pd.Series(pd.to_datetime(grid, utc=True))
    step = (grid[1] - grid[0]).total_seconds() if len(grid) > 1 else 1.0
    first = grid[0].timestamp()
    position = np.array([int((utc(t).timestamp() - first) // step) for t in columns[0]])
    keys = list(zip(*columns[1 : 4 if by_evaluation else 3]))
    width = 4 if by_evaluation else 3
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    data = [np.array(c, dtype=float) for c in columns[width:]]
    out: dict[str, dict[Slice, pandas.DataFrame]] = {}
    for key, members in groups.items():
        take, where = np.array(members), position[members]
        for i, spec in enumerate(specs):
            name = f"{QUALITY_PREFIX}{key[2]}" if by_evaluation else spec.name
            value, calls, squares = np.full(len(grid), np.nan), np.zeros(len(grid), dtype=int), np.zeros(len(grid))
            value[where], calls[where] = data[3 * i][take], data[3 * i + 1][take]
            squares[where] = data[3 * i + 2][take] if spec.quantile is None else np.nan
            out.setdefault(name, {})[(str(key[0]), str(key[1]))] = pd.DataFrame({"time": times, "value": value, "calls": calls, "squares": squares})
    return {name: _busiest(parts) for name, parts in out.items()}


def params_of(window: Window, bucket: timedelta, fparams: dict[str, Any], spec: Signal) -> dict[str, Any]:
    """Bound values of a bucketed query: bucket, window, filter values and the source's scope."""
    return bucket_params(window, bucket) | fparams | scope_params(spec, window.start, window.end)


def _busiest(parts: dict[Slice, pandas.DataFrame]) -> dict[Slice, pandas.DataFrame]:
    """The whole scope and the MAX_SLICES busiest values of each slice dimension, in a fixed order
    (busiest first; ties by dimension, then value), not the order the store returned rows in: two
    slices holding the same calls (a provider's only route) tie in every test, and the first wins."""
    ranked = sorted(parts, key=lambda part: (-int(parts[part]["calls"].sum()), _dimension_rank(part[0]), part[1]))
    kept: dict[str, int] = {}
    out = {}
    for part in ranked:
        if part == WHOLE or kept.get(part[0], 0) < MAX_SLICES:
            kept[part[0]] = kept.get(part[0], 0) + 1
            out[part] = parts[part]
    return out


def _dimension_rank(dimension: str) -> int:
    """The whole scope first, then SLICE_DIMENSIONS in their order, then segment columns."""
    return -1 if dimension == "" else SLICE_DIMENSIONS.index(dimension) if dimension in SLICE_DIMENSIONS else len(SLICE_DIMENSIONS)


def full_grid(window: Window, bucket: timedelta) -> list[datetime]:
    """Every bucket start of the window, aligned as toStartOfInterval aligns them (on the epoch)."""
    step = int(bucket.total_seconds())
    first = int(window.start.timestamp()) // step * step
    end = window.end.timestamp()
    return [datetime.fromtimestamp(t, UTC) for t in range(first, math.ceil(end), step) if t < end]


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
