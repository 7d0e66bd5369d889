"""The post-mortem timeline on scenarios with known causes, written through the real hooks."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import Any

from incident_scenarios import NEW_MODEL, OLD_MODEL, silent_provider_update

from driftline.analyzers._model import Filters, TimelineEvent, Window
from driftline.analyzers._timeline import SILENT_PROVIDER_UPDATE, timeline
from driftline.collector import Store

BUCKET = timedelta(minutes=1)


def _window(scenario: Any) -> Window:
    return Window(scenario.start, scenario.end + BUCKET)


def _events(store: Store, scenario: Any, **filters: str) -> list[TimelineEvent]:
    return timeline(store, _window(scenario), filters=Filters(**filters))


def _first(events: list[TimelineEvent], kind: str, text: str) -> TimelineEvent:
    return next(e for e in events if e.kind == kind and text in e.summary)


def test_timeline_is_in_time_order_and_holds_changes_first_appearances_and_the_change_point(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    events = _events(store, scenario)
    assert [e.time for e in events] == sorted(e.time for e in events)
    prompt = _first(events, "change", "prompt change of answer to v8")
    index = _first(events, "change", "index change of kb-docs to 2026-11-20")
    new_model = _first(events, "first_seen", f"response model {NEW_MODEL}")
    point = _first(events, "change_point", "quality:faithfulness down")
    assert prompt.time == scenario.marks["prompt_at"] and index.time == scenario.marks["index_at"]
    assert abs(new_model.time - scenario.marks["t0"]) < BUCKET
    assert abs(point.time - scenario.marks["t0"]) <= 2 * BUCKET
    assert events.index(prompt) < events.index(new_model) < events.index(index)


def test_new_response_model_with_no_annotated_model_change_is_a_possible_silent_provider_update(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    events = _events(store, scenario)
    flagged = {e.flags[0] for e in events if SILENT_PROVIDER_UPDATE in e.flags}
    assert flagged == {f"response_model={NEW_MODEL}", "system_fingerprint=fp_b2"}
    assert "possible silent provider update" in _first(events, "first_seen", NEW_MODEL).summary
    assert SILENT_PROVIDER_UPDATE not in _first(events, "first_seen", "prompt version v8").flags


def test_an_annotated_model_change_clears_the_silent_update_flag(store: Store) -> None:
    scenario = silent_provider_update(annotate_model=True, calls=900)
    scenario.write(store)
    events = _events(store, scenario)
    assert _first(events, "change", "model change of gpt-4o").time == scenario.marks["t0"]
    assert not [e for e in events if SILENT_PROVIDER_UPDATE in e.flags]


def test_values_present_since_recording_began_are_not_first_appearances(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    summaries = " ".join(e.summary for e in _events(store, scenario) if e.kind == "first_seen")
    assert OLD_MODEL not in summaries and "prompt version v7" not in summaries and "service version" not in summaries


def test_bursts_of_429s_and_cancellations_start_when_the_storm_did(burst_store: Any) -> None:
    store, scenario = burst_store
    events = _events(store, scenario)
    limited = _first(events, "burst", "429 responses")
    cancelled = _first(events, "burst", "cancellations")
    for burst in (limited, cancelled):
        assert scenario.marks["burst_from"] - BUCKET <= burst.time <= scenario.marks["burst_from"] + 2 * BUCKET
    rows = store.rows("SELECT countIf(rate_limited), countIf(cancelled) FROM llm_calls WHERE trace_id IN {ids:Array(String)}",
                      {"ids": list(limited.evidence.trace_ids + cancelled.evidence.trace_ids)})  # fmt: skip
    assert rows[0] == (len(limited.evidence.trace_ids), len(cancelled.evidence.trace_ids)) and rows[0][0] > 0


def test_the_end_of_the_incident_is_on_the_timeline_when_it_ended(burst_store: Any) -> None:
    store, scenario = burst_store
    events = _events(store, scenario)
    recovered = _first(events, "recovered", "rate_limit_rate back to its baseline")
    started = _first(events, "change_point", "rate_limit_rate up")
    assert abs(started.time - scenario.marks["burst_from"]) <= 2 * BUCKET
    assert abs(recovered.time - scenario.marks["burst_to"]) <= 2 * BUCKET


def test_every_line_cites_a_shipped_query_and_exemplars_that_exist(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    events = _events(store, scenario)
    shipped = {p.name.removesuffix(".sql") for p in resources.files("driftline.analyzers").joinpath("sql").iterdir()}
    assert {e.evidence.query for e in events} <= shipped
    ids = [i for e in events for i in e.evidence.trace_ids]
    assert ids and all(e.evidence.trace_ids for e in events if e.kind in ("change", "first_seen"))
    found = store.rows("SELECT uniqExact(TraceId) FROM otel_traces WHERE TraceId IN {ids:Array(String)}", {"ids": ids})[0][0]
    assert found == len(set(ids))


def test_route_filter_keeps_only_first_appearances_that_route_used(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    search = _events(store, scenario, route="/search")
    assert not [e for e in search if SILENT_PROVIDER_UPDATE in e.flags]
    assert _first(search, "first_seen", "prompt version v8")
    assert not [e for e in search if e.kind == "change_point" and "faithfulness" in e.summary]
