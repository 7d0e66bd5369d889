"""`driftline demo`: a simulated app through the real hooks, with one injected incident.

The demo runs through the CLI into databases of the session engine; the assertions read the
store the way analyzers and users do, and take the injected times from the demo's answer key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from driftline.analyzers.cli import cli
from driftline.analyzers.demo._run import summary
from driftline.collector import Store, connect

CALLS = 3000
Demo = tuple[Store, dict[str, Any]]

_JUDGED = (
    "FROM llm_calls AS c JOIN llm_scores AS s ON s.trace_id = c.trace_id AND s.span_id = c.span_id"
    " WHERE s.evaluation = 'answer_quality'"
)
_FINGERPRINT = (
    "SELECT count(), sum(cityHash64(trace_id, span_id, ifNull(route, ''), ifNull(tenant, ''), ifNull(response_model, ''),"
    " ifNull(output_tokens, 0), ifNull(ttft_s, 0))) FROM llm_calls"
)
"""Row count and a checksum of what each call was (not when: the history ends at the real now)."""


def _invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["demo", "--store", url, *args])


def _run(url: str, *args: str, calls: int = CALLS) -> dict[str, Any]:
    result = _invoke(url, "--calls", str(calls), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demo(engine_dir: Path) -> Iterator[Demo]:
    """One seeded demo run in a database of its own, shared by the read-only tests below."""
    url = f"chdb://{engine_dir}?database=demo_{uuid.uuid4().hex[:12]}"
    output = _run(url, "--seed", "7", "--fresh")
    store = connect(url)
    yield store, output
    store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
    store.close()


def _one(store: Store, sql: str, params: dict[str, Any] | None = None) -> Any:
    return store.rows(sql, params)[0][0]


def _incident(output: dict[str, Any]) -> dict[str, Any]:
    [incident] = [c for c in output["run"]["changes"] if c["harmful"]]
    return incident


def test_demo_writes_exactly_the_calls_asked_for_through_every_hook(demo: Demo) -> None:
    store, _ = demo
    assert _one(store, "SELECT count() FROM llm_calls") == CALLS
    assert _one(store, "SELECT uniqExact(service) FROM llm_calls") >= 3
    assert _one(store, "SELECT uniqExact(tenant) FROM llm_calls") >= 10
    assert sorted(_one(store, "SELECT groupUniqArray(provider) FROM llm_calls")) == ["anthropic", "openai"]
    assert sorted(_one(store, "SELECT groupUniqArray(stream) FROM llm_calls")) == [False, True]
    assert _one(store, "SELECT countIf(ttft_s > 0 AND time_per_output_token_s > 0) FROM llm_calls WHERE stream") > 0
    assert _one(store, "SELECT countIf(cancelled AND tokens_after_cancel > 0) FROM llm_calls") > 0
    assert _one(store, "SELECT countIf(rate_limited AND http_status = 429) FROM llm_calls") > 0
    assert _one(store, "SELECT countIf(cost_usd > 0 AND input_tokens > 0 AND output_tokens > 0) FROM llm_calls") > CALLS * 0.9
    assert _one(store, "SELECT countIf(confidence_mean < 0.8 AND confidence_low_words > 0) FROM llm_calls") > 0
    assert len(_one(store, "SELECT groupUniqArray(validation) FROM llm_calls")) >= 3
    assert _one(store, "SELECT uniqExact(prompt_version) FROM llm_calls WHERE prompt_name = 'summarize'") == 2
    assert _one(store, "SELECT uniqExact(index_version) FROM llm_calls WHERE index_name = 'kb-docs'") == 2
    assert _one(store, "SELECT uniqExact(service_version) FROM llm_calls WHERE service = 'support-bot'") == 2


def test_demo_scores_arrive_inline_and_later_against_the_judged_call(demo: Demo) -> None:
    store, _ = demo
    inline, later = store.rows(
        "SELECT countIf(evaluation = 'answer_quality' AND source_span_id = span_id),"
        " countIf(evaluation = 'user_feedback' AND source_span_id != span_id AND label IN ('up', 'down')) FROM llm_scores"
    )[0]
    assert inline > CALLS / 3 and later > 0
    orphans = "SELECT count() FROM llm_scores AS s LEFT ANTI JOIN llm_calls AS c ON c.trace_id = s.trace_id AND c.span_id = s.span_id"
    assert _one(store, orphans) == 0


def test_demo_low_asr_confidence_answers_worse(demo: Demo) -> None:
    store, _ = demo
    low, high = store.rows(
        "SELECT avgIf(s.score, c.confidence_mean < 0.8), avgIf(s.score, c.confidence_mean >= 0.9) " + _JUDGED + " AND c.confidence_mean IS NOT NULL"
    )[0]
    assert low < high - 0.1


def test_demo_annotates_the_ordinary_changes_but_not_the_incident(demo: Demo) -> None:
    store, output = demo
    annotated = {(c["kind"], c["target"], c["version"]) for c in output["run"]["changes"] if c["annotated"]}
    stored = set(store.rows("SELECT kind, target, version FROM changes"))
    assert stored == annotated
    assert {kind for kind, _, _ in stored} >= {"deploy", "prompt", "index"}
    assert _incident(output)["target"] not in {target for _, target, _ in stored}


def test_demo_incident_switches_the_response_model_on_one_route_from_the_injected_time(demo: Demo) -> None:
    store, output = demo
    incident = _incident(output)
    params = {"model": incident["version"], "alias": incident["target"], "route": incident["route"], "at": incident["at"]}
    routes, delay = store.rows(
        "SELECT groupUniqArray(route), dateDiff('second', parseDateTime64BestEffort({at:String}, 9), min(time))"
        " FROM llm_calls WHERE response_model = {model:String}",
        params,
    )[0]
    assert routes == [incident["route"]]
    assert 0 <= delay < 300
    elsewhere = "SELECT count() FROM llm_calls WHERE request_model = {alias:String} AND route != {route:String} AND response_model IS NOT NULL"
    assert _one(store, elsewhere, params) > 0


def test_demo_incident_lowers_quality_and_slows_first_tokens_on_its_route(demo: Demo) -> None:
    store, output = demo
    incident = _incident(output)
    before_q, after_q, before_ttft, after_ttft = store.rows(
        "WITH parseDateTime64BestEffort({at:String}, 9) AS at"
        " SELECT avgIf(s.score, c.time < at), avgIf(s.score, c.time >= at + INTERVAL 5 MINUTE),"
        " quantileExactIf(0.95)(c.ttft_s, c.time < at), quantileExactIf(0.95)(c.ttft_s, c.time >= at + INTERVAL 5 MINUTE) "
        + _JUDGED + " AND c.route = {route:String}",
        {"at": incident["at"], "route": incident["route"]},
    )[0]
    assert after_q < before_q - 0.1
    assert after_ttft > before_ttft * 1.2


def test_demo_harmless_changes_leave_quality_alone(demo: Demo) -> None:
    store, output = demo
    incident_route = _incident(output)["route"]
    for change in (c for c in output["run"]["changes"] if not c["harmful"]):
        rows = store.rows(
            "WITH parseDateTime64BestEffort({at:String}, 9) AS at"
            " SELECT c.route, avgIf(s.score, c.time < at), avgIf(s.score, c.time >= at), countIf(c.time >= at) "
            + _JUDGED + " AND c.service = {service:String} AND c.route != {route:String} GROUP BY c.route",
            {"at": change["at"], "service": change["service"], "route": incident_route},
        )
        assert rows, change
        for route, before, after, judged_after in rows:
            assert judged_after > 20 and after > before - 0.05, (change, route, before, after)


def test_demo_same_seed_same_data_and_fresh_replaces_instead_of_adding(store: Store) -> None:
    runs = []
    for seed in ("7", "7", "8"):
        _run(store.url, "--seed", seed, "--fresh", calls=1000)
        runs.append((store.rows(_FINGERPRINT)[0], summary(store)))
    (count, checksum), first = runs[0]
    assert count == 1000
    assert runs[1] == runs[0]
    (count, other_checksum), other = runs[2]
    assert count == 1000
    assert other_checksum != checksum and other != first


def test_demo_fresh_leaves_tables_that_are_not_driftlines(store: Store) -> None:
    store.command("CREATE TABLE app_notes (note String) ENGINE = MergeTree ORDER BY note")
    store.command("INSERT INTO app_notes VALUES ('keep me')")
    _run(store.url, "--seed", "1", "--hours", "3", calls=300)
    _run(store.url, "--seed", "1", "--hours", "3", "--fresh", calls=300)
    assert store.rows("SELECT note FROM app_notes") == [("keep me",)]
    assert _one(store, "SELECT count() FROM llm_calls") == 300


def test_demo_prints_the_answer_key_and_what_the_store_holds(store: Store) -> None:
    result = _invoke(store.url, "--calls", "300", "--hours", "3", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "INCIDENT" in result.stdout and "not annotated" in result.stdout
    assert "response model" in result.stdout and "TTFT p95" in result.stdout and "quality" in result.stdout
    assert f"store: {store.url}" in result.stdout and "next:" in result.stdout
    assert "\r" not in result.stderr and result.stderr.count("simulating") <= 1  # no progress spam off a terminal


def test_demo_rejects_a_history_too_short_for_a_baseline(store: Store) -> None:
    result = _invoke(store.url, "--hours", "2")
    assert result.exit_code == 2
    assert "--hours" in result.output
