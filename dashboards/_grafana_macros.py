"""Expand a panel's SQL the way Grafana and the ClickHouse data source plugin do, without Grafana.

A query travels through three steps before ClickHouse sees it, and this module repeats each:

1. the plugin's frontend replaces `$__conditionalAll(condition, $var)` by `condition`, or by
   `1=1` when `$var` is "All" or empty (grafana/clickhouse-datasource `applyConditionalAll`);
2. Grafana's template service replaces `$var`, `${var}`, `${var:format}` and `[[var]]`; values
   with no explicit format go through the plugin's formatter, which quotes a multi-value list as
   `'a','b'` and leaves a single value bare; "All" becomes the variable's custom all-value
   (unformatted) or the list of every option;
3. the plugin's backend expands its `$__` macros (pkg/macros on grafana/macropro): comments are
   stripped first, macro names are matched longest first, arguments split on top-level commas.

Only what driftline's dashboards and the plugin's documented macro table need is covered; the
statement macros (`$__columns`, `$__lttb`, ...) and ad hoc filters are not, and an unexpanded
`$__` token left in a query is reported by `leftover_macros`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "ALL",
    "MacroError",
    "QueryContext",
    "Variable",
    "apply_conditional_all",
    "expand_macros",
    "grafana_interval",
    "interpolate",
    "leftover_macros",
    "replace_variables",
    "strip_comments",
]

ALL = "$__all"
"""The value Grafana gives a variable whose "All" option is selected."""


class MacroError(ValueError):
    """A macro was called with the wrong arguments (the plugin fails the query the same way)."""


@dataclass(frozen=True)
class Variable:
    """A dashboard template variable as the template service sees it at query time.

    `value` is one string, or a list for a multi-value variable (`[ALL]` when All is selected);
    `options` are the values All expands to when the variable has no custom `all_value`.
    """

    name: str
    value: str | Sequence[str]
    options: Sequence[str] = ()
    all_value: str | None = None

    @property
    def is_all(self) -> bool:
        values = [self.value] if isinstance(self.value, str) else list(self.value)
        return ALL in values


@dataclass(frozen=True)
class QueryContext:
    """The time range and interval Grafana sends with a query (the plugin's QueryContext)."""

    start: datetime
    end: datetime
    interval: timedelta = field(default=timedelta(minutes=1))

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("query time range must be timezone-aware")


# Grafana's nice interval steps (rangeutil.roundInterval), in seconds.
_NICE_STEPS = (0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200,
               1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800, 2592000, 31536000)  # fmt: skip


def grafana_interval(start: datetime, end: datetime, *, max_data_points: int = 1000, min_interval: timedelta | None = None) -> timedelta:
    """The `$__interval` Grafana computes: range / max data points, rounded up to a nice step,
    never below the panel's minimum interval."""
    raw = (end - start).total_seconds() / max_data_points
    step = next((s for s in _NICE_STEPS if s >= raw), _NICE_STEPS[-1])
    interval = timedelta(seconds=step)
    return max(interval, min_interval) if min_interval else interval


# --- step 1: $__conditionalAll (plugin frontend) -------------------------------------------

_CONDITIONAL_ALL = "$__conditionalAll("
_VAR_REF = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _macro_args(text: str, open_paren: int) -> list[str] | None:
    """Top-level comma-separated arguments of the call whose '(' is at `open_paren`, as the
    plugin's getMacroArgs splits them (untrimmed); None when the parentheses never close."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
        if depth == 0:
            args.append(text[start:i])
            return args
    return None


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    """Replace each `$__conditionalAll(cond, $var)`, innermost-last as the plugin does."""
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        args = _macro_args(sql, index + len(_CONDITIONAL_ALL) - 1)
        if args is None or len(args) != 2:
            return sql
        phrase = args[0]
        ref = _VAR_REF.search(args[1].strip())
        if ref:
            variable = variables.get(ref.group(0))
            current = "" if variable is None else _as_string(variable.value)
            if variable is not None and current in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{_CONDITIONAL_ALL}{args[0]},{args[1]})", phrase, 1)
        index = sql.rfind(_CONDITIONAL_ALL)
    return sql


def _as_string(value: str | Sequence[str]) -> str:
    """A variable's current value as JavaScript's toString() renders it (lists comma-joined)."""
    return value if isinstance(value, str) else ",".join(value)


# --- step 2: template variables (Grafana's template service) -------------------------------

_TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")


def _quote(value: str, quote: str) -> str:
    return quote + value.replace(quote, "\\" + quote) + quote


_FORMATS: dict[str, Callable[[list[str], bool], str]] = {
    "singlequote": lambda vs, _: ",".join(_quote(v, "'") for v in vs),
    "doublequote": lambda vs, _: ",".join(_quote(v, '"') for v in vs),
    "sqlstring": lambda vs, _: ",".join("'" + v.replace("'", "''") + "'" for v in vs),
    "csv": lambda vs, _: ",".join(vs),
    "raw": lambda vs, _: ",".join(vs),
    "text": lambda vs, _: " + ".join(vs),
    "pipe": lambda vs, _: "|".join(vs),
    "regex": lambda vs, multi: (f"({'|'.join(re.escape(v) for v in vs)})" if multi else re.escape(vs[0])),
    "distributed": lambda vs, _: ",".join(vs),
}
"""Grafana's variable formats, over the list of values (and whether it was a list)."""


def _plugin_format(values: list[str], multi: bool) -> str:
    """The ClickHouse plugin's default formatter: a list becomes 'a','b'; one value stays bare."""
    return "'" + "','".join(values) + "'" if multi else values[0]


def _format(variable: Variable, fmt: str | None) -> str:
    value = variable.value
    if variable.is_all:
        if variable.all_value is not None and fmt not in ("text", "percentencode"):
            return variable.all_value
        value = list(variable.options)
    multi = not isinstance(value, str)
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    if fmt is None:
        return _plugin_format(values, multi)
    formatter = _FORMATS.get(fmt)
    if formatter is None:
        raise MacroError(f"variable format {fmt!r} of ${{{variable.name}}} is not one driftline can expand")
    if not values:
        return ""
    return formatter(values, multi)


def replace_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Substitute template variables; unknown names (and every `$__` macro) are left as they are."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        variable = variables.get(name)
        return match.group(0) if variable is None else _format(variable, fmt)

    return _TEMPLATE.sub(substitute, sql)


# --- step 3: the plugin's backend macros (pkg/macros on grafana/macropro) ------------------


def _scan_quoted(text: str, pos: int) -> int:
    """Index just past the quoted region starting at `pos` (', ", or `), honouring ClickHouse's
    backslash escapes and doubled quotes; the end of text when unterminated."""
    quote, j = text[pos], pos + 1
    while j < len(text):
        if text[j] == "\\" and quote != "`":
            j += 2
            continue
        if text[j] == quote:
            if j + 1 < len(text) and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)


def strip_comments(sql: str) -> str:
    """Blank out `--` and `/* */` comments outside quotes, keeping every character's position."""
    out, i = [], 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"`":
            end = _scan_quoted(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = len(sql)
            for stop in ("\n", "\r"):
                found = sql.find(stop, i)
                end = min(end, found) if found != -1 else end
            out.append(" " * (end - i))
            i = end
        elif sql.startswith("/*", i):
            found = sql.find("*/", i + 2)
            end = len(sql) if found == -1 else found + 2
            out.append(re.sub(r"[^\n]", " ", sql[i:end]))
            i = end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _outside_quotes(text: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth before it) for each character outside quoted strings."""
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            i = _scan_quoted(text, i)
            continue
        yield i, char, depth
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1


def _closing_paren(text: str) -> int | None:
    """Index of the ')' closing the '(' that `text` starts with; None when it never closes."""
    return next((i for i, char, depth in _outside_quotes(text) if char == ")" and depth == 1), None)


def _split_args(raw: str) -> list[str]:
    """Arguments of a backend macro: trimmed, split on commas outside parentheses and quotes."""
    raw = raw.strip()
    if not raw:
        return []
    cuts = [i for i, char, depth in _outside_quotes(raw) if char == "," and depth == 0]
    return [raw[a + 1 : b].strip() for a, b in zip([-1, *cuts], [*cuts, len(raw)])]


def _seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds(), 1))


def _date_time(moment: datetime) -> str:
    return f"toDateTime({math.floor(moment.timestamp())})"


def _date_time_ms(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(moment.timestamp() * 1000)})"


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _range(col: str, lower: str, upper: str) -> str:
    return f"{col} >= {lower} AND {col} <= {upper}"


def _need(name: str, args: list[str], count: int) -> None:
    if len(args) != count:
        raise MacroError(f"$__{name} expected {count} argument(s), received {len(args)}")


def _one_column(name: str, build: Callable[[QueryContext, str], str]) -> Callable[[QueryContext, list[str]], str]:
    def handler(ctx: QueryContext, args: list[str]) -> str:
        _need(name, args, 1)
        return build(ctx, args[0])

    return handler


def _date_time_filter(ctx: QueryContext, args: list[str]) -> str:
    _need("dateTimeFilter", args, 2)
    dates = _range(args[0], _date(ctx.start), _date(ctx.end))
    times = _range(args[1], _date_time(ctx.start), _date_time(ctx.end))
    return f"({dates}) AND ({times})"


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _time_group(ctx: QueryContext, args: list[str]) -> str:
    _need("timeGroup", args, 2)
    period = args[1].strip().strip("'\"")
    parts = _GO_DURATION.findall(period)
    if not parts or "".join(n + u for n, u in parts) != period:
        raise MacroError(f"$__timeGroup: invalid interval {period!r}")
    seconds = round(sum(float(n) * _GO_UNITS[u] for n, u in parts))
    if seconds <= 0:
        raise MacroError(f"$__timeGroup: interval must be positive, got {period!r}")
    return f"toStartOfInterval(toDateTime({args[0].strip()}), INTERVAL {seconds} second)"


def _go_duration(delta: timedelta) -> str:
    """macropro's FormatDuration: the largest whole unit (5m, 2h, 300s), else milliseconds."""
    ms = round(delta.total_seconds() * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


_MACROS: dict[str, Callable[[QueryContext, list[str]], str]] = {
    "timeFilter": _one_column("timeFilter", lambda c, col: _range(col, _date_time(c.start), _date_time(c.end))),
    "timeFilter_ms": _one_column("timeFilter_ms", lambda c, col: _range(col, _date_time_ms(c.start), _date_time_ms(c.end))),
    "dateFilter": _one_column("dateFilter", lambda c, col: _range(col, _date(c.start), _date(c.end))),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeFrom": _one_column("timeFrom", lambda c, col: f"{col} >= {_date_time(c.start)}"),
    "timeTo": _one_column("timeTo", lambda c, col: f"{col} <= {_date_time(c.end)}"),
    "fromTime": lambda c, _: _date_time(c.start),
    "toTime": lambda c, _: _date_time(c.end),
    "fromTime_ms": lambda c, _: _date_time_ms(c.start),
    "toTime_ms": lambda c, _: _date_time_ms(c.end),
    "timeInterval": _one_column("timeInterval", lambda c, col: f"toStartOfInterval(toDateTime({col}), INTERVAL {_seconds(c)} second)"),
    "timeInterval_ms": _one_column(
        "timeInterval_ms",
        lambda c, col: f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {int(max(c.interval.total_seconds() * 1000, 1))} millisecond)",
    ),
    "interval_s": lambda c, _: str(_seconds(c)),
    "interval_ms": lambda c, _: str(round(c.interval.total_seconds() * 1000)),
    "interval": lambda c, _: _go_duration(c.interval),
    "timeGroup": _time_group,
}
"""The plugin's macro set (ClickHouseMacros): macropro's defaults with ClickHouse overrides."""

_NAMES = sorted(_MACROS, key=lambda n: (-len(n), n))


def _is_name_char(char: str) -> bool:
    return char == "_" or char.isascii() and char.isalnum()


def _expand_one(sql: str, name: str, ctx: QueryContext) -> str:
    token, out, rest = "$__" + name, [], sql
    while (index := rest.find(token)) != -1:
        after = index + len(token)
        if after < len(rest) and _is_name_char(rest[after]):
            out.append(rest[:after])
            rest = rest[after:]
            continue
        out.append(rest[:index])
        rest = rest[after:]
        raw = ""
        if rest.startswith("("):
            end = _closing_paren(rest)
            if end is not None:
                raw, rest = rest[1:end], rest[end + 1 :]
        out.append(_MACROS[name](ctx, _split_args(raw)))
    out.append(rest)
    return "".join(out)


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """The plugin backend's pass: strip comments, then expand each macro, longest name first."""
    sql = strip_comments(sql)
    for name in _NAMES:
        sql = _expand_one(sql, name, ctx)
    return sql


_LEFTOVER = re.compile(r"\$__\w+|\$\{?\w+")


def leftover_macros(sql: str) -> list[str]:
    """Macro or variable tokens still in an expanded query (outside quotes): each is a bug."""
    found, i = [], 0
    while i < len(sql):
        if sql[i] in "'\"`":
            i = _scan_quoted(sql, i)
            continue
        match = _LEFTOVER.match(sql, i)
        if match:
            found.append(match.group(0))
            i = match.end()
        else:
            i += 1
    return found


def interpolate(sql: str, variables: Mapping[str, Variable], ctx: QueryContext) -> str:
    """A panel's raw SQL as ClickHouse receives it from Grafana and the plugin."""
    return expand_macros(replace_variables(apply_conditional_all(sql, variables), variables), ctx)
