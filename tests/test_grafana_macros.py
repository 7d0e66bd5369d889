"""Macro and variable expansion, matched against the ClickHouse plugin's documented expansions
(docs/sources/query-editor.md and template-variables.md, pkg/macros tests) and Grafana's formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.collector import Store
from driftline.dashboards._grafana_macros import (
    ALL,
    MacroError,
    QueryContext,
    Variable,
    apply_conditional_all,
    expand_macros,
    grafana_interval,
    interpolate,
    leftover_macros,
    replace_variables,
)

# The plugin's test range: 2014-11-12T11:45:26.123Z .. 2015-11-12T11:45:26.456Z.
FROM = datetime(2014, 11, 12, 11, 45, 26, 123000, tzinfo=UTC)
TO = datetime(2015, 11, 12, 11, 45, 26, 456000, tzinfo=UTC)
CTX = QueryContext(FROM, TO, timedelta(seconds=20))


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        ("select * from foo where $__timeFilter(cast(sth as timestamp))",
         "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"),
        ("select * from foo where $__timeFilter(cast(sth as timestamp) )",
         "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"),
        ("select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
         "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"),
        ("select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
         "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100"),
        ("select * from foo where ( date >= $__fromTime_ms ) and ( date <= $__toTime_ms ) limit 100",
         "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) ) and ( date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100"),
        ("$__dateFilter(date)", "date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')"),
        ("$__dateTimeFilter(d, t)",
         "(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND (t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))"),
        ("$__dt(d, t)",
         "(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND (t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))"),
        ("$__timeFrom(time)", "time >= toDateTime(1415792726)"),
        ("$__timeTo(time)", "time <= toDateTime(1447328726)"),
        ("$__interval_s", "20"),
        ("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"),
        ("$__timeInterval_ms(column)", "toStartOfInterval(toDateTime64(column, 3), INTERVAL 20000 millisecond)"),
        ("$__timeGroup(column, 5m)", "toStartOfInterval(toDateTime(column), INTERVAL 300 second)"),
        ("$__timeGroup(column, '1h30m')", "toStartOfInterval(toDateTime(column), INTERVAL 5400 second)"),
    ],
)  # fmt: skip
def test_macros_expand_as_the_plugin_documents(sql: str, expanded: str) -> None:
    assert expand_macros(sql, CTX) == expanded


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        ("SELECT $__timeInterval($__fromTime) AS from_time",
         "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) AS from_time"),
        ("SELECT $__timeInterval_ms($__fromTime_ms)",
         "SELECT toStartOfInterval(toDateTime64(fromUnixTimestamp64Milli(1415792726123), 3), INTERVAL 60000 millisecond)"),
        ("select * from foo where $__timeFilter(coalesce(closed_at, $__toTime))",
         "select * from foo where coalesce(closed_at, toDateTime(1447328726)) >= toDateTime(1415792726) AND coalesce(closed_at, toDateTime(1447328726)) <= toDateTime(1447328726)"),
    ],
)  # fmt: skip
def test_nested_macros_expand_innermost_first(sql: str, expanded: str) -> None:
    assert expand_macros(sql, QueryContext(FROM, TO, timedelta(minutes=1))) == expanded


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        (r"select * from foo where msg = 'it\'s -- fine' and $__fromTime", r"select * from foo where msg = 'it\'s -- fine' and toDateTime(1415792726)"),
        (r"select * from foo where msg = 'a\'/*x' and $__toTime", r"select * from foo where msg = 'a\'/*x' and toDateTime(1447328726)"),
        ("select * from foo where msg = 'it''s' and $__fromTime", "select * from foo where msg = 'it''s' and toDateTime(1415792726)"),
    ],
)  # fmt: skip
def test_quoted_strings_keep_comment_markers_and_later_macros(sql: str, expanded: str) -> None:
    assert expand_macros(sql, CTX) == expanded


def test_macros_inside_comments_are_blanked_not_expanded() -> None:
    out = expand_macros("SELECT 1 -- $__timeFilter(broken\n/* $__fromTime */ FROM t", CTX)
    assert "$__" not in out and "toDateTime" not in out
    assert out.startswith("SELECT 1 ") and out.endswith("FROM t") and out.count("\n") == 1


def test_longer_macro_names_win_over_their_prefixes() -> None:
    assert expand_macros("$__interval_s $__timeFilter_ms(x)", CTX) == "20 x >= fromUnixTimestamp64Milli(1415792726123) AND x <= fromUnixTimestamp64Milli(1447328726456)"


def test_wrong_argument_count_is_an_error() -> None:
    with pytest.raises(MacroError, match=r"timeFilter expected 1 argument\(s\), received 2"):
        expand_macros("$__timeFilter(a, b)", CTX)


def test_interval_is_at_least_one_second() -> None:
    assert expand_macros("$__interval_s", QueryContext(FROM, TO, timedelta(milliseconds=200))) == "1"


DATABASE = "database"


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        (["db1", "db2"], "WHERE database IN ('db1','db2')"),
        ([ALL], "WHERE 1=1"),
        ("", "WHERE 1=1"),
        ("db1", "WHERE database IN ('db1')"),
    ],
)
def test_conditional_all_keeps_the_condition_unless_all_or_empty(value: str | list[str], expanded: str) -> None:
    variables = {DATABASE: Variable(DATABASE, value, options=["db1", "db2", "db3"])}
    sql = "WHERE $__conditionalAll(database IN (${database:singlequote}), $database)"
    assert interpolate(sql, variables, CTX) == expanded


def test_conditional_all_handles_nested_parentheses_and_several_macros() -> None:
    variables = {"a": Variable("a", [ALL], ["x"]), "b": Variable("b", ["y"], ["y"])}
    sql = "$__conditionalAll(f(a, g(1)) IN (${a:singlequote}), $a) AND $__conditionalAll(lower(b) IN (${b:singlequote}), ${b})"
    assert replace_variables(apply_conditional_all(sql, variables), variables) == "1=1 AND lower(b) IN ('y')"


@pytest.mark.parametrize(
    ("ref", "value", "expanded"),
    [
        ("$v", "api", "api"),  # one value, no format: bare
        ("$v", ["a", "b"], "'a','b'"),  # a list through the plugin's formatter
        ("${v}", ["a"], "'a'"),
        ("[[v]]", "api", "api"),
        ("${v:singlequote}", ["O'Brien", "b"], r"'O\'Brien','b'"),
        ("${v:singlequote}", "x", "'x'"),
        ("${v:doublequote}", ["a", "b"], '"a","b"'),
        ("${v:sqlstring}", ["it's"], "'it''s'"),
        ("${v:csv}", ["a", "b"], "a,b"),
        ("${v:pipe}", ["a", "b"], "a|b"),
        ("${v:raw}", "a.b", "a.b"),
        ("${v:singlequote}", [ALL], "'a','b','c'"),  # All without a custom all-value: every option
    ],
)
def test_variables_format_as_grafana_does(ref: str, value: str | list[str], expanded: str) -> None:
    assert replace_variables(ref, {"v": Variable("v", value, options=["a", "b", "c"])}) == expanded


def test_custom_all_value_is_not_formatted() -> None:
    variable = Variable("v", [ALL], options=["a"], all_value=".*")
    assert replace_variables("${v:singlequote}", {"v": variable}) == ".*"


def test_unknown_variables_and_macros_are_left_for_later() -> None:
    assert replace_variables("$nope ${__from} $__timeFilter(t)", {}) == "$nope ${__from} $__timeFilter(t)"
    assert leftover_macros("SELECT '$kept' , $nope, $__columns(a)") == ["$nope", "$__columns"]


def test_grafana_interval_rounds_up_to_a_nice_step_above_the_panel_minimum() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert grafana_interval(start, start + timedelta(hours=24)) == timedelta(minutes=2)
    assert grafana_interval(start, start + timedelta(hours=1)) == timedelta(seconds=5)
    assert grafana_interval(start, start + timedelta(hours=1), min_interval=timedelta(minutes=1)) == timedelta(minutes=1)


def test_expanded_filters_select_exactly_the_range_in_clickhouse(store: Store) -> None:
    """The expansion is valid ClickHouse SQL and its bounds are the range's, to the second."""
    start = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    ctx = QueryContext(start, start + timedelta(hours=1), timedelta(minutes=10))
    sql = ("SELECT count(), countIf($__timeFilter_ms(t)), min(b), uniqExact(b), $__interval_s FROM ("
           "SELECT toDateTime64('2026-03-01 11:00:00', 3, 'UTC') + toIntervalSecond(number) AS t, $__timeInterval(t) AS b "
           "FROM numbers(10800)) WHERE $__timeFilter(t) AND $__dateFilter(toDate(t))")  # fmt: skip
    total, in_ms, first_bucket, buckets, interval = store.rows(expand_macros(sql, ctx))[0]
    assert total == 3601  # 12:00:00 .. 13:00:00 inclusive, seconds precision
    assert in_ms == 3600  # the millisecond bounds start at 12:00:00.500
    assert first_bucket.replace(tzinfo=UTC) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert (buckets, interval) == (7, 600)
