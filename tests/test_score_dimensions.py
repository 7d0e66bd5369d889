"""A score recorded on the judged call's span carries that call's time and dimensions into
llm_scores, so the quality dashboards read llm_scores alone; a score given later (linked span,
log event, rows older than the columns) does not, and the dashboards look its call up.

Real hooks, the real StoreSpanExporter and materialized views; panel SQL expanded as Grafana and
the ClickHouse plugin would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from driftline.analyzers._sql import render
from driftline.collector import Store, StoreSpanExporter, connect, llm_call, record_confidence, record_score, release
from driftline.collector.store._migrate import MIGRATIONS_TABLE, _ensure_table, migrate, migrations
from driftline.dashboards import _check as _dashboards
from driftline.dashboards._grafana_macros import ALL, QueryContext, Variable, grafana_interval, interpolate

DIMENSIONS = ("environment", "route", "tenant", "service_version", "provider", "request_model", "response_model",
              "system_fingerprint", "prompt_name", "prompt_version", "index_name", "index_version", "confidence_mean")  # fmt: skip


def _ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _call(traced: TracerProvider, prompt_version: str, *, score: float | None = None, confidence: float = 0.9) -> tuple[str, str]:
    """One GenAI call under a release context; `score`: judged on its own span."""
    with release(prompt_name="answer", prompt_version=prompt_version, route="/chat", tenant="acme", index_name="kb", index_version="41"):
        record_confidence(mean=confidence, minimum=confidence)
        with llm_call(provider="openai", model="gpt-4o", tracer_provider=traced) as call:
            call.span.set_attributes({"gen_ai.response.model": "gpt-4o-2024-11-20", "openai.response.system_fingerprint": "fp_1"})
            if score is not None:
                record_score("answer_quality", value=score)
    return _ids(call.span)


def test_score_on_the_call_span_carries_the_calls_time_and_dimensions(store: Store, traced: TracerProvider) -> None:
    _call(traced, "v7", score=0.8)
    columns = ", ".join(DIMENSIONS)
    call = store.rows(f"SELECT time, {columns} FROM llm_calls")
    assert len(call) == 1 and [d for d, v in zip(DIMENSIONS, call[0][1:]) if v is None] == ["environment"]  # no such resource attribute
    assert store.rows(f"SELECT call_time, {columns} FROM llm_scores") == call


def test_score_on_a_foreign_convention_span_is_normalised_as_llm_calls(store: Store) -> None:
    """An OpenInference LLM span judged by a third-party evaluator: same columns as its llm_calls row."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    span = provider.get_tracer("openinference").start_span("ChatCompletion", kind=SpanKind.CLIENT, attributes={
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "OpenAI", "llm.prompt_template.version": "3"})  # fmt: skip
    span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "hallucination", "gen_ai.evaluation.score.value": 0.1})
    span.end()
    assert store.rows("SELECT call_time, provider, request_model, prompt_version FROM llm_scores") == store.rows(
        "SELECT time, provider, request_model, prompt_version FROM llm_calls"
    ) == [(store.rows("SELECT time FROM llm_calls")[0][0], "openai", "gpt-4o-mini", "3")]


def test_later_scores_and_scores_on_plain_spans_carry_no_call(store: Store, traced: TracerProvider) -> None:
    trace_id, span_id = _call(traced, "v7")
    record_score("user_feedback", value=0.0, label="down", trace_id=trace_id, span_id=span_id, tracer_provider=traced)
    with traced.get_tracer("app").start_as_current_span("GET /health"):
        record_score("health", value=1.0)
    rows = store.rows("SELECT evaluation, span_id = {s:String}, call_time FROM llm_scores ORDER BY evaluation", {"s": span_id})
    assert rows == [("health", False, None), ("user_feedback", True, None)]  # the dimension columns are the call's only with call_time


# --- the dashboards' quality panels: both kinds of score, each with its call's dimensions ---------


def _panel(dashboard: str, title: str) -> str:
    panel = next(p for p in _dashboards._panels(_dashboards.load()[dashboard]) if p["title"] == title)
    return str(panel["targets"][0]["rawSql"])


def _run(store: Store, sql: str, evaluation: str, **choices: str) -> Any:
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=2)
    variables = {name: Variable(name, [ALL]) for name in ("service", "route", "tenant")}
    variables["evaluation"] = Variable("evaluation", evaluation)
    for name, value in choices.items():
        variables[name] = Variable(name, value)
    return store.df(interpolate(sql, variables, QueryContext(start, end, grafana_interval(start, end))))


def _by_prompt(store: Store, evaluation: str) -> dict[str, float]:
    frame = _run(store, _panel("quality-changes.json", "Quality by prompt version"), evaluation)
    return {label: round(score, 6) for label, score in frame.groupby("label")["score"].mean().items()}


def test_quality_panels_split_scores_on_the_span_and_later_ones_by_their_calls(store: Store, traced: TracerProvider) -> None:
    _call(traced, "v1", score=0.9, confidence=0.95)
    _call(traced, "v1", score=0.7, confidence=0.95)
    later = _call(traced, "v2", confidence=0.55)
    record_score("answer_quality", value=0.2, trace_id=later[0], span_id=later[1], tracer_provider=traced)
    record_score("user_feedback", value=1.0, label="up", trace_id=later[0], span_id=later[1], tracer_provider=traced)
    assert store.rows("SELECT evaluation, countIf(call_time IS NOT NULL), countIf(call_time IS NULL) FROM llm_scores GROUP BY ALL ORDER BY 1") == [
        ("answer_quality", 2, 1), ("user_feedback", 0, 1)]  # fmt: skip
    assert _by_prompt(store, "answer_quality") == {"answer:v1": 0.8, "answer:v2": 0.2}
    assert _by_prompt(store, "user_feedback") == {"answer:v2": 1.0}
    confidence = _run(store, _panel("quality-changes.json", "Quality by input confidence"), "answer_quality")
    assert confidence[["confidence_from", "scored_calls"]].values.tolist() == [["0.5", 1], ["0.9", 2]]


@pytest.mark.parametrize("dimension", ["prompt_version", "confidence_bucket"])
def test_drilldown_quality_counts_each_judged_call_once_with_its_dimension(store: Store, traced: TracerProvider, dimension: str) -> None:
    _call(traced, "v1", score=0.9, confidence=0.95)
    twice = _call(traced, "v2", score=0.4, confidence=0.55)
    record_score("answer_quality", value=0.6, trace_id=twice[0], span_id=twice[1], tracer_provider=traced)  # a second, later score
    sql = _panel("incident-drilldown.json", "${signal} by ${dimension}: baseline vs now")
    dimension_sql = store.rows(interpolate(_variable_sql("dimension_sql"), {"dimension": Variable("dimension", dimension)}, QueryContext(
        datetime.now(UTC), datetime.now(UTC))))[0][0]  # fmt: skip
    frame = _run(store, sql, "answer_quality", signal="quality", dimension=dimension, dimension_sql=dimension_sql,
                 signal_sql="NULL", signal_agg="avgIf", baseline_offset="86400")  # fmt: skip
    now = {value: round(score, 6) for value, score in zip(frame["value"], frame["now"])}
    expected = {"prompt_version": {"answer:v1": 0.9, "answer:v2": 0.5}, "confidence_bucket": {"0.9": 0.9, "0.5": 0.5}}[dimension]
    assert now == expected and frame["calls_now"].tolist() == [1, 1]


def _variable_sql(name: str) -> str:
    spec = next(v for v in _dashboards._variables(_dashboards.load()["incident-drilldown.json"]) if v["name"] == name)
    return str(spec["query"]["rawSql"])


# --- migrating a store that already holds scores ---------------------------------------------


def test_migrating_a_store_with_scores_keeps_them_and_fills_dimensions_from_then_on(store_url: str) -> None:
    store = connect(store_url)
    try:
        _ensure_table(store)
        for migration in migrations()[:4]:  # a store at schema version 4, before the call's columns
            for statement in migration.statements(ttl_days=0, database=store.client.database):
                store.command(statement)
            store.insert(MIGRATIONS_TABLE, [[migration.version], [migration.name], [datetime.now(UTC)]], ["version", "name", "applied_at"])
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
        old = _call(provider, "v1", score=0.9)
        assert [m.version for m in migrate(store)] == [m.version for m in migrations()[4:]]
        new = _call(provider, "v2", score=0.3)
        assert migrate(store) == []
        rows = store.rows("SELECT span_id, call_time IS NOT NULL, prompt_version FROM llm_scores ORDER BY score DESC")
        assert rows == [(old[1], False, None), (new[1], True, "v2")]
        assert _by_prompt(store, "answer_quality") == {"answer:v1": 0.9, "answer:v2": 0.3}
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
        store.close()


def test_analyzers_scored_calls_equal_the_scores_joined_to_their_calls(store: Store, traced: TracerProvider) -> None:
    _call(traced, "v1", score=0.9)
    later = _call(traced, "v2", confidence=0.55)
    record_score("answer_quality", value=0.2, trace_id=later[0], span_id=later[1], tracer_provider=traced)
    columns = "time, evaluation, score, trace_id, span_id, service, route, tenant, service_version, provider, request_model, prompt_version, confidence_mean"
    params = {"lo": datetime.now(UTC) - timedelta(hours=1), "hi": datetime.now(UTC) + timedelta(minutes=1)}
    source = render("scored_calls", evaluation="")
    joined = ("SELECT s.time AS time, s.evaluation AS evaluation, s.score AS score, c.trace_id AS trace_id, c.span_id AS span_id, c.service AS service,"
              " c.route AS route, c.tenant AS tenant, c.service_version AS service_version, c.provider AS provider, c.request_model AS request_model,"
              " c.prompt_version AS prompt_version, c.confidence_mean AS confidence_mean"
              " FROM llm_scores AS s JOIN llm_calls AS c ON c.trace_id = s.trace_id AND c.span_id = s.span_id")  # fmt: skip
    rows = store.rows(f"SELECT {columns} FROM {source} ORDER BY score", params)
    assert len(rows) == 2 and rows == store.rows(f"SELECT {columns} FROM ({joined}) ORDER BY score")
