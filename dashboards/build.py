"""Write dashboards/*.json, driftline's Grafana dashboards, from the panel specs below.

The specs are the one place each panel's SQL, unit, thresholds, description and runbook live;
the JSON files are what Grafana loads, and they are committed. Edit here, then run

    .venv/bin/python dashboards/build.py          # rewrite dashboards/*.json
    .venv/bin/python dashboards/build.py --check  # exit 1 if the JSON is stale (tests do this)

Every query targets the official grafana-clickhouse-datasource plugin through the `datasource`
template variable, so no data source uid is written anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent
PLUGIN = "grafana-clickhouse-datasource"
DS = {"type": PLUGIN, "uid": "${datasource}"}
FORMATS = {"timeseries": 0, "table": 1, "traces": 3}
"""The plugin's `format` per query type (src/data/utils.ts mapQueryTypeToGrafanaFormat)."""
RUNBOOK_BASE = "https://github.com/driftline-dev/driftline/blob/main/runbooks"

SIGNAL_RUNBOOKS = {
    "quality": "quality-regression",
    "error_rate": "provider-outage-429",
    "rate_429": "provider-outage-429",
    "latency_p95": "ttft-regression",
    "ttft_p95": "ttft-regression",
    "stall_p95": "streaming-stalls",
    "cancellation": "cancellation-tax",
    "cost_per_call": "cost-spike",
    "structured_output_failures": "structured-output-failures",
    "low_confidence": "asr-ocr-confidence",
}
"""Drill-down signal -> its runbook (the `runbook` variable resolves the selected one)."""

SIGNAL_LABELS = {
    "quality": "Quality (mean evaluation score)",
    "error_rate": "Error rate",
    "rate_429": "429 / rate-limit rate",
    "latency_p95": "Latency p95 (s)",
    "ttft_p95": "Time to first token p95 (s)",
    "stall_p95": "Longest stream stall p95 (s)",
    "cancellation": "Cancelled stream share",
    "cost_per_call": "Cost per call (USD)",
    "structured_output_failures": "Structured-output failure rate",
    "low_confidence": "Low-confidence ASR/OCR input share",
}

DIMENSIONS = {
    "request_model": "request_model",
    "response_model": "response_model",
    "system_fingerprint": "system_fingerprint",
    "prompt_version": "concat(ifNull(prompt_name, '?'), ':', prompt_version)",
    "index_version": "concat(ifNull(index_name, '?'), ':', index_version)",
    "route": "route",
    "tenant": "tenant",
    "provider": "provider",
    "service_version": "service_version",
    "confidence_bucket": "if(confidence_mean IS NULL, NULL, toString(floor(confidence_mean * 10) / 10))",
}
"""Drill-down dimension -> its expression over llm_calls."""

# --- SQL building blocks ------------------------------------------------------------------

FILTERS = {
    "service": "service",
    "provider": "provider",
    "model": "request_model",
    "route": "route",
    "tenant": "tenant",
}
"""Multi-value filter variable -> llm_calls column."""


def where(*names: str, prefix: str = "") -> str:
    """`$__conditionalAll` filters for the named variables (All selected -> no filter)."""
    return "".join(f"\n  AND $__conditionalAll({prefix}{FILTERS[n]} IN (${{{n}:singlequote}}), ${n})" for n in names)


OVERVIEW_FILTERS = ("service", "provider", "model", "route", "tenant")
QUALITY_FILTERS = ("service", "route", "tenant")

JUDGED_COLUMNS = ("span_id", "service", "route", "tenant", "provider", "service_version", "request_model", "response_model",
                  "system_fingerprint", "prompt_name", "prompt_version", "index_name", "index_version", "confidence_mean")
"""The judged call's columns that llm_scores carries (collector/store/migrations/0005)."""


def judged(scores_where: str) -> str:
    """Scores matching `scores_where`, each with `call_time` and the columns of the call it judges.

    A score recorded on the judged span carries them in llm_scores itself (call_time set): no
    join. The others (scores given later on a linked span, log events, rows older than the
    columns) look their call up in llm_calls by span id: a scan of the window's span ids when
    there are any (about 0.25 s of CPU per 5 M calls), nothing when there are none."""
    return (
        f"  SELECT time, score, call_time, {', '.join(JUDGED_COLUMNS)}\n  FROM llm_scores\n"
        f"  WHERE {scores_where} AND call_time IS NOT NULL\n"
        f"  UNION ALL\n"
        f"  SELECT s.time, s.score, c.time, {', '.join('c.' + c for c in JUDGED_COLUMNS)}\n"
        f"  FROM llm_calls AS c\n  INNER JOIN (\n"
        f"    SELECT span_id, time, score FROM llm_scores\n    WHERE {scores_where} AND call_time IS NULL\n"
        f"  ) AS s ON c.span_id = s.span_id"
    )


def scored(select: str, group: str, *, order: str = "t", extra: str = "") -> str:
    """Scores of the chosen evaluation in the range, of calls in the range, with the calls' columns."""
    evaluation = "$__timeFilter(time) AND evaluation = ${evaluation:singlequote} AND score IS NOT NULL"
    return (
        f"SELECT {select}\nFROM (\n{judged(evaluation)}\n) AS s\n"
        f"WHERE $__timeFilter(call_time){extra}{where(*QUALITY_FILTERS)}\n"
        f"GROUP BY {group}\nORDER BY {order}"
    )


def per_interval(select: str, group_by: str, filters: tuple[str, ...] = OVERVIEW_FILTERS, extra: str = "") -> str:
    """A time-series query over llm_calls: one row per interval (and label), long format."""
    return (
        f"SELECT $__timeInterval(time) AS t, {select}\n"
        f"FROM llm_calls\n"
        f"WHERE $__timeFilter(time){where(*filters)}{extra}\n"
        f"GROUP BY t{', ' + group_by if group_by else ''}\nORDER BY t"
    )


def percentiles(column: str, label: str, extra: str = "") -> str:
    """p50/p95/p99 of `column` per interval and label (one quantile sketch per group)."""
    inner = per_interval(f"{label}, quantiles(0.5, 0.95, 0.99)({column}) AS q", "label", extra=extra)
    return f"SELECT t, label, q[1] AS p50, q[2] AS p95, q[3] AS p99\nFROM (\n{inner}\n)\nORDER BY t"


# --- Grafana JSON building blocks ----------------------------------------------------------


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


GOOD_LOW = (("green", None), ("orange", 0.02), ("red", 0.05))
GOOD_HIGH = (("red", None), ("orange", 0.6), ("green", 0.75))


@dataclass
class Panel:
    """One panel: what it shows, how to read it, and where the on-call goes next."""

    title: str
    kind: str  # timeseries | table | traces
    sql: str
    description: str
    runbook: str  # a runbook name, or "${runbook}" for the drill-down's selected signal
    also: tuple[str, ...] = ()  # further runbooks the panel is the first place to look for
    unit: str = "short"
    steps: tuple[tuple[str, float | None], ...] = (("green", None),)
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    links: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit, "thresholds": thresholds(*self.steps), "color": {"mode": "palette-classic"}}
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        panel: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "links": [{"title": f"Runbook: {name}", "url": f"${{runbook_base}}/{name}.md", "targetBlank": True}
                      for name in (self.runbook, *self.also)],
            "targets": [{
                "refId": "A", "datasource": DS, "editorType": "sql", "queryType": self.kind,
                "format": FORMATS[self.kind], "rawSql": self.sql,
            }],
        }  # fmt: skip
        if self.kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                  "spanNulls": False, "thresholdsStyle": {"mode": "dashed"}}  # fmt: skip
            panel["interval"] = "1m"
            panel["options"] = {
                "legend": {"showLegend": True, "displayMode": "table", "placement": "right", "calcs": ["mean", "max", "lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif self.kind == "table":
            defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
            panel["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
        else:
            panel["options"] = {}
        panel["fieldConfig"] = {"defaults": defaults, "overrides": self.overrides}
        return panel


def link_override(column: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "links", "value": links}]}


def unit_override(column: str, unit: str, steps: tuple[tuple[str, float | None], ...] | None = None) -> dict[str, Any]:
    props: list[dict[str, Any]] = [{"id": "unit", "value": unit}]
    if steps:
        props += [{"id": "thresholds", "value": thresholds(*steps)}, {"id": "custom.cellOptions", "value": {"type": "color-text"}}]
    return {"matcher": {"id": "byName", "options": column}, "properties": props}


def var_datasource() -> dict[str, Any]:
    return {"name": "datasource", "label": "ClickHouse", "type": "datasource", "query": PLUGIN, "current": {},
            "hide": 0, "refresh": 1, "regex": "", "options": []}  # fmt: skip


def var_query(name: str, label: str, sql: str, *, multi: bool = True, hide: int = 0, refresh: int = 2, custom_values: bool = True) -> dict[str, Any]:
    """A query variable on the ClickHouse data source (multi-value with All unless told)."""
    return {
        "name": name, "label": label, "type": "query", "datasource": DS, "definition": sql,
        "query": {"editorType": "sql", "rawSql": sql, "refId": f"var-{name}"},
        "multi": multi, "includeAll": multi, "current": {}, "hide": hide, "refresh": refresh, "sort": 1, "options": [],
        "allowCustomValue": custom_values,
    }  # fmt: skip


def var_custom(name: str, label: str, options: dict[str, str], default: str) -> dict[str, Any]:
    """A fixed list (value : text); its values are compared as strings in SQL, never spliced as identifiers."""
    opts = [{"text": text, "value": value, "selected": value == default} for value, text in options.items()]
    return {
        "name": name, "label": label, "type": "custom", "multi": False, "includeAll": False,
        "query": ",".join(f"{text} : {value}" for value, text in options.items()),
        "current": {"text": options[default], "value": default}, "options": opts, "hide": 0, "allowCustomValue": False,
    }  # fmt: skip


def var_runbook_base() -> dict[str, Any]:
    return {"name": "runbook_base", "label": "Runbook base URL", "type": "constant", "hide": 2, "query": RUNBOOK_BASE,
            "current": {"text": RUNBOOK_BASE, "value": RUNBOOK_BASE}, "options": []}  # fmt: skip


def distinct_var(name: str, label: str, column: str, after: tuple[str, ...] = ()) -> dict[str, Any]:
    """Values seen in the range, narrowed by the filters chosen before it (`after`)."""
    sql = (f"SELECT DISTINCT {column} FROM llm_calls WHERE $__timeFilter(time) AND {column} IS NOT NULL"
           + where(*after).replace("\n ", "") + f" ORDER BY {column}")  # fmt: skip
    return var_query(name, label, sql)


def filter_vars(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Cascading filter variables: each lists only the values left by the ones before it."""
    labels = {"service": "Service", "provider": "Provider", "model": "Model", "route": "Route", "tenant": "Tenant"}
    return [distinct_var(n, labels[n], FILTERS[n], names[:i]) for i, n in enumerate(names)]


CHANGES_ANNOTATION = (
    "SELECT time, concat(kind, ': ', target, if(version IS NULL, '', concat(' -> ', version))) AS title,\n"
    "  concat(title, if(description = '', '', concat(' - ', description)), if(author IS NULL, '', concat(' (', author, ')'))) AS text,\n"
    "  concat('change,', kind, ',', service) AS tags\n"
    "FROM changes\nWHERE $__timeFilter(time)\n  AND $__conditionalAll(service IN (${service:singlequote}), $service)\nORDER BY time"
)
FIRST_SEEN_ANNOTATION = (
    "SELECT min(first_seen) AS time, concat('new ', dimension, ': ', value) AS title,\n"
    "  concat(title, if(scope = '', '', concat(' (', scope, ')')), ' first seen in ', service) AS text,\n"
    "  concat('first_seen,', dimension, ',', service) AS tags\n"
    "FROM first_seen\nWHERE $__conditionalAll(service IN (${service:singlequote}), $service)\n"
    "GROUP BY dimension, scope, value, service\nHAVING $__timeFilter(time)\nORDER BY time"
)


def dashboard_annotations() -> dict[str, Any]:
    """Explicit changes and inferred first appearances, on every time-series panel (no panel filter)."""
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
               "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}  # fmt: skip

    def ch(name: str, sql: str, color: str) -> dict[str, Any]:
        return {"name": name, "datasource": DS, "enable": True, "hide": False, "iconColor": color,
                "target": {"refId": "Anno", "editorType": "sql", "format": 1, "rawSql": sql}}  # fmt: skip

    return {"list": [builtin, ch("Changes", CHANGES_ANNOTATION, "#F2495C"), ch("First seen (inferred changes)", FIRST_SEEN_ANNOTATION, "#8F3BB8")]}


def dashboard(uid: str, title: str, description: str, tags: list[str], variables: list[dict[str, Any]], panels: list[Panel]) -> dict[str, Any]:
    laid_out, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(panel.to_json(i, x, y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return {
        "uid": uid, "title": title, "description": description, "tags": ["driftline", *tags],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "timezone": "", "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"}, "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
        "links": [{"title": "driftline dashboards", "type": "dashboards", "tags": ["driftline"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link"}],
        "annotations": dashboard_annotations(),
        "templating": {"list": [var_datasource(), *variables, var_runbook_base()]},
        "panels": laid_out,
    }  # fmt: skip


# --- LLM service overview ------------------------------------------------------------------


def latency_by(column: str) -> Panel:
    """The slowest values of `column` (route, tenant) by p95 latency. One table per column: a
    route x tenant table has thousands of groups, each with its quantile sketches (3x slower)."""
    sql = (f"SELECT ifNull(value, '(none)') AS {column}, calls, error_rate, q[1] AS p50, q[2] AS p95, q[3] AS p99, ttft_p95 FROM (\n"
           f"  SELECT {column} AS value, count() AS calls,\n"
           "    avg(status = 'Error') AS error_rate, quantiles(0.5, 0.95, 0.99)(duration_s) AS q, quantile(0.95)(ttft_s) AS ttft_p95\n"
           f"  FROM llm_calls\n  WHERE $__timeFilter(time){where(*OVERVIEW_FILTERS)}\n  GROUP BY value\n)\nORDER BY p95 DESC\nLIMIT 50")  # fmt: skip
    return Panel(f"Latency by {column}", "table", sql,
                 f"Slowest {column}s by p95 latency in the range, with their call count, error rate and TTFT p95 (approximate quantiles).",
                 "ttft-regression", unit="s", overrides=[unit_override("calls", "short"), unit_override("error_rate", "percentunit", GOOD_LOW)])  # fmt: skip


def overview() -> dict[str, Any]:
    provider = "ifNull(provider, 'unknown') AS provider"
    model = "ifNull(request_model, 'unknown') AS label"
    panels = [
        Panel("Calls per second by provider", "timeseries", per_interval(f"{provider}, count() / $__interval_s AS calls", "provider"),
              "GenAI calls per second, one line per provider. A drop with steady upstream traffic means calls are failing before they are recorded or being shed.",
              "provider-outage-429", unit="reqps", min=0),
        Panel("Error rate by provider", "timeseries", per_interval(f"{provider}, avg(status = 'Error') AS error_rate", "provider"),
              "Share of calls whose span ended with status Error, per provider. Dashed lines: 2% warn, 5% page.",
              "provider-outage-429", unit="percentunit", steps=GOOD_LOW, min=0),
        Panel("429 / rate-limited share by provider", "timeseries", per_interval(f"{provider}, avg(rate_limited) AS rate_429", "provider"),
              "Share of calls refused with HTTP 429 or a RateLimit error, per provider. Sustained values above 2% mean quota or a provider incident.",
              "provider-outage-429", unit="percentunit", steps=GOOD_LOW, min=0),
        Panel("Latency p50 / p95 / p99 by model", "timeseries", percentiles("duration_s", model),
              "Whole-call duration percentiles per requested model. Compare with time to first token: total latency can stay flat while TTFT triples.",
              "ttft-regression", unit="s", steps=(("green", None), ("orange", 10.0), ("red", 30.0)), min=0,
              also=("db-pool-exhaustion",)),
        Panel("Time to first token p50 / p95 / p99 by model", "timeseries", percentiles("ttft_s", model, "\n  AND ttft_s IS NOT NULL"),
              "Time from request to the first streamed chunk, per requested model (streamed calls only). This is the wait the user sees.",
              "ttft-regression", unit="s", steps=(("green", None), ("orange", 2.0), ("red", 5.0)), min=0),
        latency_by("route"),
        latency_by("tenant"),
        Panel("Tokens per second", "timeseries",
              per_interval("sum(input_tokens) / $__interval_s AS input, sum(output_tokens) / $__interval_s AS output,\n"
                           "  sum(cached_tokens) / $__interval_s AS cached_input, sum(reasoning_tokens) / $__interval_s AS reasoning", ""),
              "Input, output, cached-input and reasoning tokens per second. Output rising faster than calls usually means longer answers (a prompt change).",
              "cost-spike", unit="short", min=0),
        Panel("Cost per hour by model", "timeseries",
              per_interval(f"{model}, sum(cost_usd) / $__interval_s * 3600 AS usd_per_hour", "label"),
              "Spend rate in USD per hour, per requested model: the cost each call reported, or, for a call that reported none, the cost "
              "computed from the store's price table (genai-prices; the tenant table below shows the computed share).",
              "cost-spike", unit="currencyUSD", min=0),
        Panel("Cancellation tax", "timeseries",
              per_interval("avg(cancelled) AS cancelled_share,\n"
                           "  sum(tokens_after_cancel) / nullIf(sum(output_tokens), 0) AS billed_after_cancel_share", "",
                           extra="\n  AND stream"),
              "Streamed calls the user cancelled, and the share of billed output tokens generated after the cancel (paid for, never shown).",
              "cancellation-tax", unit="percentunit", steps=(("green", None), ("orange", 0.05), ("red", 0.15)), min=0),
        Panel("Stream stalls", "timeseries",
              per_interval("quantile(0.95)(longest_stall_s) AS longest_stall_p95, quantile(0.99)(longest_stall_s) AS longest_stall_p99", "",
                           extra="\n  AND longest_stall_s IS NOT NULL"),
              "Longest gap between two chunks of a stream, p95 and p99. Stalls above 2 s read as a frozen answer.",
              "streaming-stalls", unit="s", steps=(("green", None), ("orange", 2.0), ("red", 5.0)), min=0),
        Panel("Cost and tokens by tenant", "table",
              "SELECT ifNull(tenant, '(none)') AS tenant, count() AS calls, sum(cost_usd) AS total_usd,\n"
              "  total_usd / calls AS usd_per_call, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
              "  avgIf(cancelled, stream) AS cancelled_share, sumIf(cost_usd, cost_computed) / nullIf(total_usd, 0) AS computed_cost_share\n"
              f"FROM llm_calls\nWHERE $__timeFilter(time){where(*OVERVIEW_FILTERS)}\nGROUP BY tenant\nORDER BY total_usd DESC\nLIMIT 50",
              "Who spends what in the range: calls, cost, cost per call, tokens, the share of their streams cancelled, and the share "
              "of the cost computed from the store's price table (genai-prices) because the call reported none.",
              "cost-spike", unit="short", width=24,
              overrides=[unit_override("total_usd", "currencyUSD"), unit_override("usd_per_call", "currencyUSD"),
                         unit_override("cancelled_share", "percentunit"), unit_override("computed_cost_share", "percentunit")]),
    ]  # fmt: skip
    variables = filter_vars(OVERVIEW_FILTERS)
    return dashboard("driftline-overview", "driftline / LLM service overview",
                     "Traffic, errors and 429s by provider; latency and time to first token per model, route and tenant; tokens, cost, cancellation tax and stream stalls.",
                     ["overview"], variables, panels)  # fmt: skip


# --- Quality and changes -------------------------------------------------------------------


def score_by(label_sql: str, what: str) -> Panel:
    sql = scored(f"$__timeInterval(time) AS t, {label_sql} AS label, avg(s.score) AS score", "t, label")
    return Panel(f"Quality by {what}", "timeseries", sql,
                 f"Mean score of the selected evaluation per {what}. Change annotations mark deploys, prompt publishes, index rebuilds and first-seen models.",
                 "quality-regression", unit="none", steps=GOOD_HIGH, min=0, max=1)  # fmt: skip


def quality() -> dict[str, Any]:
    failure_steps = (("green", None), ("orange", 0.02), ("red", 0.1))
    panels = [
        score_by("ifNull(request_model, 'unknown')", "request model"),
        score_by("ifNull(response_model, 'unknown')", "response model"),
        score_by("concat(ifNull(prompt_name, '?'), ':', ifNull(prompt_version, '(none)'))", "prompt version"),
        score_by("concat(ifNull(index_name, '?'), ':', ifNull(index_version, '(none)'))", "index version"),
        Panel("Structured-output failures by outcome", "timeseries",
              "SELECT t, outcome, calls / sum(calls) OVER (PARTITION BY t) AS share\nFROM (\n"
              + per_interval("validation AS outcome, count() AS calls", "outcome", QUALITY_FILTERS, "\n  AND validation IS NOT NULL")
              + "\n)\nWHERE outcome != 'ok'\nORDER BY t",
              "Share of validated calls that failed, by outcome: parse_error (not JSON), schema_error (wrong shape), semantic_error (valid shape, wrong content).",
              "structured-output-failures", unit="percentunit", steps=failure_steps, min=0),
        Panel("Structured-output failures by model and prompt", "table",
              "SELECT ifNull(request_model, 'unknown') AS model, concat(ifNull(prompt_name, '?'), ':', ifNull(prompt_version, '(none)')) AS prompt,\n"
              "  count() AS validated, countIf(validation = 'parse_error') AS parse_error, countIf(validation = 'schema_error') AS schema_error,\n"
              "  countIf(validation = 'semantic_error') AS semantic_error, avg(validation != 'ok') AS failure_rate\n"
              f"FROM llm_calls\nWHERE $__timeFilter(time){where(*QUALITY_FILTERS)}\n  AND validation IS NOT NULL\n"
              "GROUP BY model, prompt\nORDER BY failure_rate DESC\nLIMIT 50",
              "Where structured-output failures come from: per model and prompt version, the count of each failure outcome.",
              "structured-output-failures", unit="short", overrides=[unit_override("failure_rate", "percentunit", failure_steps)]),
        Panel("ASR/OCR input confidence", "timeseries",
              per_interval("avg(confidence_mean) AS mean_confidence, quantile(0.1)(confidence_min) AS min_confidence_p10,\n"
                           "  avg(confidence_low_words > 0) AS low_word_share", "", QUALITY_FILTERS, "\n  AND confidence_mean IS NOT NULL"),
              "Confidence of the transcribed or scanned input the LLM read: mean, the 10th percentile of each input's weakest word, and the share of inputs with any low-confidence word.",
              "asr-ocr-confidence", unit="percentunit", steps=GOOD_HIGH, min=0, max=1),
        Panel("Quality by input confidence", "table",
              scored("toString(floor(confidence_mean * 10) / 10) AS confidence_from, count() AS scored_calls, avg(score) AS mean_score,\n"
                     "  quantile(0.1)(score) AS score_p10", "confidence_from", order="confidence_from",
                     extra="\n  AND confidence_mean IS NOT NULL"),
              "How quality falls with ASR/OCR confidence: mean and p10 score of the selected evaluation per confidence decile of the input.",
              "asr-ocr-confidence", unit="none", overrides=[unit_override("mean_score", "none", GOOD_HIGH), unit_override("score_p10", "none", GOOD_HIGH)]),
        Panel("Changes in this range", "table",
              "SELECT time, kind, target, version, description, author, service, 'explicit' AS source\nFROM changes\n"
              "WHERE $__timeFilter(time)\n  AND $__conditionalAll(service IN (${service:singlequote}), $service)\nUNION ALL\n"
              "SELECT min(first_seen) AS time, dimension AS kind, scope AS target, value AS version, '' AS description, NULL AS author, service, 'inferred' AS source\n"
              "FROM first_seen\nWHERE $__conditionalAll(service IN (${service:singlequote}), $service)\n"
              "GROUP BY dimension, scope, value, service\nHAVING $__timeFilter(time)\nORDER BY time DESC\nLIMIT 200",
              "Every change in the range: explicit annotations (deploys, prompt publishes, index rebuilds, model config, provider incidents) and inferred first appearances.",
              "quality-regression", unit="short", width=24),
    ]  # fmt: skip
    evaluation = var_query("evaluation", "Evaluation",
                           "SELECT DISTINCT evaluation FROM llm_scores WHERE $__timeFilter(time) ORDER BY evaluation", multi=False)  # fmt: skip
    variables = [*filter_vars(QUALITY_FILTERS), evaluation]
    return dashboard("driftline-quality", "driftline / Quality and changes",
                     "Evaluation scores by model, response model, prompt version and index version; structured-output failures; ASR/OCR confidence and quality; every change as an annotation.",
                     ["quality"], variables, panels)  # fmt: skip


# --- Incident drill-down -------------------------------------------------------------------

SIGNAL = "${signal:singlequote}"
DIMENSION = "${dimension:singlequote}"
OFFSET = "toUInt32(${baseline_offset:singlequote})"
NOW = "c.time >= $__fromTime AND c.time <= $__toTime"
BASELINE = f"c.time >= $__fromTime - {OFFSET} AND c.time <= $__toTime - {OFFSET}"


SIGNAL_VALUES = {
    "quality": "NULL",  # scores come from the llm_scores branch of calls_in_windows
    "error_rate": "toFloat64(c.status = 'Error')",
    "rate_429": "toFloat64(c.rate_limited)",
    "latency_p95": "c.duration_s",
    "ttft_p95": "c.ttft_s",
    "stall_p95": "c.longest_stall_s",
    "cancellation": "if(c.stream, toFloat64(c.cancelled), NULL)",
    "cost_per_call": "c.cost_usd",
    "structured_output_failures": "if(c.validation IS NULL, NULL, toFloat64(c.validation != 'ok'))",
    "low_confidence": "if(c.confidence_mean IS NULL, NULL, toFloat64(c.confidence_low_words > 0))",
}
"""Drill-down signal -> its value per call (NULL where the call says nothing about it)."""
QUANTILE_SIGNALS = ("latency_p95", "ttft_p95", "stall_p95")


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def allow_list(source: str, mapping: dict[str, str], name: str) -> dict[str, Any]:
    """A hidden variable that maps the selected `source` option to its SQL expression, in
    ClickHouse, from a fixed list: panels splice the expression (`${name:raw}`) and read only the
    columns it needs, and no typed or URL value can reach the SQL (custom values are refused)."""
    sql = (f"SELECT transform(${{{source}:singlequote}},\n  [{', '.join(_literal(k) for k in mapping)}],\n"
           f"  [{', '.join(_literal(v) for v in mapping.values())}], '')")  # fmt: skip
    return var_query(name, name, sql, multi=False, hide=2, refresh=1, custom_values=False)


def _qualify(expr: str) -> str:
    """Prefix llm_calls columns in a dimension expression with the `c.` alias."""
    columns = ("request_model", "response_model", "system_fingerprint", "prompt_name", "prompt_version", "index_name",
               "index_version", "route", "tenant", "provider", "service_version", "confidence_mean")  # fmt: skip
    return re.sub(r"\b(" + "|".join(columns) + r")\b", r"c.\1", expr)


def calls_in_windows(windows: str, extra_columns: str = "", *, worst: int | None = None) -> str:
    """The calls in the chosen windows, each with its dimension value `dim` and its signal value
    `v`. Two branches, one per source; the one the signal does not use has a constant-false
    WHERE, so ClickHouse reads nothing for it. Quality is the mean score per judged call, read
    from llm_scores with the call's columns (`judged`).

    `worst`: only that many worst calls per branch (highest value, lowest score). The extra
    columns are then read for those rows alone, and for quality the worst scores are picked in
    llm_scores first and their calls found through llm_calls' trace_id index, with no full join."""
    dim = "ifNull(${dimension_sql:raw}, '(none)')"
    filters = f"({windows}){where('service', prefix='c.')}"
    evaluation = f"{SIGNAL} = 'quality' AND evaluation = ${{evaluation:singlequote}}"
    score_windows = f"({windows.replace('c.time', 'time')})"
    calls = (
        f"SELECT c.time AS time, {dim} AS dim, ${{signal_sql:raw}} AS v{extra_columns}\n"
        f"  FROM llm_calls AS c\n  WHERE {SIGNAL} != 'quality' AND {filters}"
    )
    if worst is None:
        return (
            f"{calls}\n  UNION ALL\n"
            f"  SELECT c.time AS time, c.dim AS dim, c.v AS v{extra_columns}\n  FROM (\n"
            f"    SELECT any(c.call_time) AS time, any({dim}) AS dim, avg(c.score) AS v\n    FROM (\n"
            f"{judged(f'{evaluation} AND {score_windows} AND score IS NOT NULL')}\n"
            f"    ) AS c\n    WHERE {filters.replace('c.time', 'c.call_time')}\n    GROUP BY c.span_id\n  ) AS c"
        )
    scores = (
        f"    SELECT span_id, avg(score) AS mean_score, any(trace_id) AS trace_id FROM llm_scores\n"
        f"    WHERE {evaluation}\n"
        f"      AND {score_windows} AND score IS NOT NULL{where('service')}\n"
        f"    GROUP BY span_id ORDER BY mean_score ASC LIMIT {worst}"
    )
    return (
        f"{calls}\n    AND v IS NOT NULL ORDER BY v DESC, time DESC LIMIT {worst}\n"
        f"  UNION ALL\n"
        f"  SELECT c.time AS time, {dim} AS dim, s.mean_score AS v{extra_columns}\n"
        f"  FROM llm_calls AS c\n  INNER JOIN (\n{scores}\n  ) AS s ON c.span_id = s.span_id\n"
        f"  WHERE {SIGNAL} = 'quality' AND {filters}\n    AND c.trace_id IN (SELECT trace_id FROM (\n{scores}\n    ))"
    )


def aggregate(condition: str) -> str:
    """The signal's value over the rows matching `condition`: p95 for latency-like signals, else the mean."""
    return f"${{signal_agg:raw}}(v, {condition})"


def window_series(series: str, windows: str, shift: str) -> str:
    """The signal per interval over one window, its times moved by `shift` (SQL to add, or "").
    Each window is aggregated on its own before the two are put together: 40% less CPU than
    grouping both by (interval, series)."""
    return (f"  SELECT $__timeInterval(shifted) AS t, '{series}' AS series, {aggregate('1')} AS value\n  FROM (\n"
            f"    SELECT time{shift} AS shifted, v FROM (\n{calls_in_windows(windows)}\n    )\n  )\n  WHERE v IS NOT NULL\n  GROUP BY t")  # fmt: skip


def incident() -> dict[str, Any]:
    both = f"({NOW}) OR ({BASELINE})"
    over_time = (
        f"SELECT t, series, value FROM (\n{window_series('now', NOW, '')}\n  UNION ALL\n"
        f"{window_series('baseline', BASELINE, f' + toIntervalSecond({OFFSET})')}\n)\nORDER BY t"
    )
    by_dimension = (
        f"SELECT dim AS value, {aggregate('in_baseline')} AS baseline, {aggregate('in_now')} AS now, now - baseline AS change,\n"
        "  countIf(in_now) AS calls_now, calls_now / sum(calls_now) OVER () AS share_now, change * share_now AS weighted_change\nFROM (\n"
        + calls_in_windows(both, f",\n    {NOW} AS in_now, {BASELINE} AS in_baseline")
        + "\n)\nWHERE v IS NOT NULL\nGROUP BY dim\nORDER BY abs(weighted_change) DESC, calls_now DESC\nLIMIT 30"
    )
    split_over_time = (
        "SELECT t, dim, value FROM (\n"
        "  SELECT t, dim, value, dense_rank() OVER (ORDER BY dim_calls DESC, dim) AS dim_rank FROM (\n"
        f"    SELECT $__timeInterval(time) AS t, dim, {aggregate('1')} AS value, sum(count()) OVER (PARTITION BY dim) AS dim_calls\n"
        f"    FROM (\n{calls_in_windows(NOW)}\n    )\n    WHERE v IS NOT NULL\n    GROUP BY t, dim\n  )\n)\n"
        "WHERE dim_rank <= 8\nORDER BY t"
    )
    exemplar_columns = (",\n    c.trace_id AS trace_id, c.span_id AS span_id, c.service AS service, c.request_model AS model,"
                        "\n    c.duration_s AS duration_s, c.status AS status, c.error_type AS error_type")  # fmt: skip
    worst_first = f"if({SIGNAL} = 'quality', v, -v), time DESC"
    exemplars = (
        "SELECT time, trace_id, dim, v AS signal_value, service, model, duration_s, status, error_type\nFROM (\n"
        + calls_in_windows(NOW, exemplar_columns, worst=20) + f"\n)\nORDER BY {worst_first}\nLIMIT 20"
    )
    trace_var_sql = f"SELECT trace_id FROM (\n{calls_in_windows(NOW, ', c.trace_id AS trace_id', worst=20)}\n)\nORDER BY {worst_first} LIMIT 20"
    trace_view = (
        "WITH ${trace_id:singlequote} AS __trace_id,\n"
        "  (SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = __trace_id) AS __trace_start,\n"
        "  (SELECT max(End) + 1 FROM otel_traces_trace_id_ts WHERE TraceId = __trace_id) AS __trace_end\n"
        "SELECT TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID, ServiceName AS serviceName,\n"
        "  SpanName AS operationName, multiply(toUnixTimestamp64Nano(Timestamp), 0.000001) AS startTime,\n"
        "  multiply(Duration, 0.000001) AS duration,\n"
        "  arrayMap(key -> map('key', key, 'value', SpanAttributes[key]), mapKeys(SpanAttributes)) AS tags,\n"
        "  arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]), mapKeys(ResourceAttributes)) AS serviceTags,\n"
        "  if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) AS statusCode, SpanKind AS kind, StatusMessage AS statusMessage,\n"
        "  arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)),\n"
        "    arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))::Tuple(name String, timestamp String, fields Array(Map(String, String))),\n"
        "    Events.Name, Events.Timestamp, Events.Attributes) AS logs\n"
        "FROM otel_traces\nWHERE traceID = __trace_id AND Timestamp >= __trace_start AND Timestamp <= __trace_end\nORDER BY startTime"
    )
    keep = "&".join(f"var-{v}=${{{v}}}" for v in ("datasource", "signal", "dimension", "baseline_offset", "evaluation"))
    trace_links: list[dict[str, Any]] = [
        {"title": "Show this trace below", "url": f"/d/driftline-incident/?${{__url_time_range}}&{keep}&${{service:queryparam}}&var-trace_id=${{__value.raw}}"},
        {"title": "Open in Explore (trace view)", "url": "", "internal": {
            "datasourceUid": "${datasource}", "datasourceName": "ClickHouse",
            "query": {"refId": "A", "datasource": DS, "editorType": "sql", "queryType": "traces", "format": 3,
                      "rawSql": trace_view.replace("${trace_id:singlequote}", "'${__value.raw}'")}}},
    ]  # fmt: skip
    panels = [
        Panel("${signal}: now vs baseline", "timeseries", over_time,
              "The selected signal over the dashboard range ('now') and over the same range shifted back by the baseline offset ('baseline'), drawn on the same time axis.",
              "${runbook}", width=24),
        Panel("${signal} by ${dimension}: baseline vs now", "table", by_dimension,
              "The signal per value of the chosen dimension, in the baseline window and now. Sorted by change weighted by the value's share of calls now: the top rows explain most of the regression.",
              "${runbook}", unit="none", overrides=[unit_override("calls_now", "short"), unit_override("share_now", "percentunit")]),
        Panel("${signal} by ${dimension} over time (top 8)", "timeseries", split_over_time,
              "The signal over the range for the eight busiest values of the chosen dimension: shows when each value started to diverge.",
              "${runbook}"),
        Panel("Exemplar calls", "table", exemplars,
              "The worst calls for the signal in the range (lowest scores, errors, slowest). Click a trace id to show the trace below or open it in Explore's trace view.",
              "${runbook}", width=24, overrides=[link_override("trace_id", trace_links), unit_override("duration_s", "s")]),
        Panel("Trace ${trace_id}", "traces", trace_view,
              "The selected exemplar's trace from otel_traces, in the plugin's trace view (pick another in the trace variable or click one above).",
              "${runbook}", width=24, height=14),
    ]  # fmt: skip
    offsets = {"86400": "1 day before", "3600": "1 hour before", "604800": "1 week before"}
    variables = [
        *filter_vars(("service",)),
        var_custom("signal", "Signal", SIGNAL_LABELS, "quality"),
        var_custom("dimension", "Split by", {k: k.replace("_", " ") for k in DIMENSIONS}, "request_model"),
        var_custom("baseline_offset", "Baseline", offsets, "86400"),
        var_query("evaluation", "Evaluation (quality)", "SELECT DISTINCT evaluation FROM llm_scores WHERE $__timeFilter(time) ORDER BY evaluation", multi=False),
        allow_list("signal", SIGNAL_RUNBOOKS, "runbook"),
        allow_list("signal", SIGNAL_VALUES, "signal_sql"),
        allow_list("signal", {k: "quantileIf(0.95)" if k in QUANTILE_SIGNALS else "avgIf" for k in SIGNAL_VALUES}, "signal_agg"),
        allow_list("dimension", {k: _qualify(v) for k, v in DIMENSIONS.items()}, "dimension_sql"),
        var_query("trace_id", "Exemplar trace", trace_var_sql, multi=False),
    ]  # fmt: skip
    return dashboard("driftline-incident", "driftline / Incident drill-down",
                     "One signal, baseline vs now, split by a chosen dimension, with exemplar traces that open in the trace view.",
                     ["incident"], variables, panels)  # fmt: skip


DASHBOARDS = {"llm-overview.json": overview, "quality-changes.json": quality, "incident-drilldown.json": incident}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if dashboards/*.json differ from the specs")
    args = parser.parse_args()
    stale = [name for name, text in render().items() if not (OUT / name).is_file() or (OUT / name).read_text(encoding="utf-8") != text]
    if args.check:
        for name in stale:
            print(f"dashboards/{name} is stale: run dashboards/build.py", file=sys.stderr)
        return 1 if stale else 0
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
