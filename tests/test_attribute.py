"""Attribution: shares of the change, worse vs mix (Simpson), alignment, harmless changes ranked
below the harmful one, no suspects made of a handful of calls; generic frame entry point."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from incident_scenarios import prompt_after_a_rotation, prompt_during_a_slowdown
from test_detect import T0, _voice_calls

from driftline.analyzers import (
    Filters,
    Window,
    attribute,
    attribute_frame,
    attribute_many,
)
from driftline.analyzers.evaluation._scenarios import BUCKET, Scenario
from driftline.collector import AnalysisError, NoDataError, Store


def _leaves(seed: int, cause: dict[str, str], factor: float) -> pd.DataFrame:
    """RiskLoc/Squeeze-style leaves: a forecast and a real value per combination of a, b, c."""
    rng = np.random.default_rng(seed)
    rows = [{"a": a, "b": b, "c": c} for a, b, c in itertools.product([f"a{i}" for i in range(5)], [f"b{i}" for i in range(4)], ["c0", "c1", "c2"])]
    frame = pd.DataFrame(rows)
    frame["predict"] = rng.uniform(50, 150, len(frame))
    hit = np.logical_and.reduce([frame[d] == v for d, v in cause.items()])
    frame["real"] = frame["predict"] * np.where(hit, factor, 1.0) * rng.normal(1, 0.01, len(frame))
    return frame


def test_attribute_frame_finds_a_two_dimensional_root_cause_of_an_additive_kpi() -> None:
    ranked = attribute_frame(_leaves(0, {"a": "a2", "b": "b1"}, 0.4), dimensions=["a", "b", "c"], baseline="predict", current="real")
    top = ranked.iloc[0]
    assert top["label"] == "a=a2 & b=b1"
    assert top["explained_share"] == pytest.approx(1.0, abs=0.05) and top["effect"] == "worse"
    assert set(ranked.columns) >= {"dimensions", "values", "explained_share", "within_share", "mix_share", "effect",
                                   "baseline_value", "current_value", "baseline_count", "current_count", "coverage", "score"}  # fmt: skip


def test_attribute_frame_ranks_a_single_cause_above_the_slices_inside_it() -> None:
    ranked = attribute_frame(_leaves(1, {"c": "c1"}, 1.6), dimensions=["a", "b", "c"], baseline="predict", current="real")
    assert ranked.iloc[0]["label"] == "c=c1"
    shares = ranked[ranked["dimensions"] == ("a",)]["explained_share"]
    assert shares.sum() == pytest.approx(1.0)


def test_attribute_frame_tells_a_segment_that_grew_from_one_that_got_worse() -> None:
    """Simpson's paradox: no tenant's error rate moved, the weak tenant grew; then one tenant breaks."""
    grew = pd.DataFrame({"tenant": ["big", "weak"], "b_err": [16, 20], "b_calls": [800, 200], "c_err": [4, 80], "c_calls": [200, 800]})
    ranked = attribute_frame(grew, dimensions=["tenant"], baseline="b_err", current="c_err", baseline_count="b_calls", current_count="c_calls")
    weak = ranked.set_index("label").loc["tenant=weak"]
    assert weak["effect"] == "mix" and weak["within_share"] == pytest.approx(0.0, abs=0.05) and weak["mix_share"] > 0.5
    worse = grew.assign(c_err=[4, 20 * 4], c_calls=[200, 200])
    ranked = attribute_frame(worse, dimensions=["tenant"], baseline="b_err", current="c_err", baseline_count="b_calls", current_count="c_calls")
    assert ranked.iloc[0]["label"] == "tenant=weak" and ranked.iloc[0]["effect"] == "worse"


def test_attribute_frame_rejects_what_it_cannot_read() -> None:
    frame = _leaves(2, {"a": "a0"}, 2.0)
    with pytest.raises(ValueError, match="not in the frame: d"):
        attribute_frame(frame, dimensions=["a", "d"], baseline="predict", current="real")
    with pytest.raises(ValueError, match="both"):
        attribute_frame(frame, dimensions=["a"], baseline="predict", current="real", baseline_count="predict")


def _scenario(scenarios: list[Scenario], cause: str) -> Scenario:
    return next(s for s in scenarios if s.cause == cause)


def _windows(s: Scenario) -> tuple[Window, Window]:
    assert s.incident_start is not None
    return Window(s.start, s.incident_start - BUCKET), Window(s.incident_start, s.end)


def test_silent_provider_update_ranks_first_lined_up_with_its_first_appearance(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    s = _scenario(scenarios, "silent_update")
    baseline, incident = _windows(s)
    result = attribute(store, s.signal, baseline=baseline, incident=incident, filters=Filters(service=s.service))
    top = result.suspects[0]
    assert set(zip(top.dimensions, top.values)) in [set(t) for t in s.truth]
    assert top.effect == "worse" and top.explained_share > 0.7 and top.baseline_calls == 0
    assert top.first_seen is not None and abs(top.first_seen - incident.start) < BUCKET
    assert top.aligned_change is None  # nobody annotated it: that is what makes it silent
    assert len(top.evidence.trace_ids) == 5
    (dim,), (value,) = top.dimensions, top.values
    rows = store.rows(f"SELECT min(time), countIf({dim} != {{v:String}}) FROM llm_calls WHERE trace_id IN {{ids:Array(String)}}",
                      {"v": value, "ids": list(top.evidence.trace_ids)})  # fmt: skip
    assert rows[0][1] == 0 and rows[0][0].replace(tzinfo=incident.start.tzinfo) >= incident.start


def test_harmless_changes_at_the_same_time_rank_below_the_harmful_one(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    s = _scenario(scenarios, "prompt_edit")
    baseline, incident = _windows(s)
    result = attribute(store, s.signal, baseline=baseline, incident=incident, filters=Filters(service=s.service))
    labels = [x.label for x in result.suspects]
    assert labels[0] == "prompt_version=v4"
    assert result.suspects[0].aligned_change is not None and "prompt" in result.suspects[0].aligned_change
    deploy = [i for i, x in enumerate(result.suspects) if x.dimensions == ("service_version",)]
    assert all(i > 0 for i in deploy)  # the routine deploy, annotated at the same minute, is not the cause


def test_a_segment_that_grew_is_mix_not_worse(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    s = _scenario(scenarios, "mix_shift")
    baseline, incident = _windows(s)
    top = attribute(store, s.signal, baseline=baseline, incident=incident, filters=Filters(service=s.service)).suspects[0]
    assert top.label == "tenant=initech" and top.effect == "mix" and top.current_calls > 2 * top.baseline_calls * (
        (incident.end - incident.start) / (baseline.end - baseline.start))


def test_no_suspect_rests_on_a_handful_of_calls(scenario_store: tuple[Store, list[Scenario]]) -> None:
    """Tenant `tiny` always answers badly but sends a call now and then: never a suspect."""
    store, scenarios = scenario_store
    for s in (s for s in scenarios if s.incident_start is not None):
        baseline, incident = _windows(s)
        result = attribute(store, s.signal, baseline=baseline, incident=incident, filters=Filters(service=s.service), top=50)
        assert all(x.current_calls >= 20 for x in result.suspects)
        assert not any("tenant=tiny" in x.label for x in result.suspects)


def test_attribute_says_what_is_wrong_with_its_input(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    s = scenarios[0]
    baseline, incident = _windows(s)
    scope = Filters(service=s.service)
    with pytest.raises(AnalysisError, match="unknown dimension model.*request_model"):
        attribute(store, s.signal, baseline=baseline, incident=incident, filters=scope, dimensions=["model"])
    with pytest.raises(NoDataError, match="incident window"):
        attribute(store, s.signal, baseline=baseline, incident=Window(s.end + timedelta(days=400), s.end + timedelta(days=401)), filters=scope)
    with pytest.raises(AnalysisError, match="too little data"):
        attribute(store, s.signal, baseline=baseline, incident=Window(incident.start, incident.start + timedelta(seconds=20)), filters=scope)


def test_attribute_many_shares_one_scan_and_agrees_with_attribute(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    s = _scenario(scenarios, "latency_update")
    baseline, incident = _windows(s)
    scope = Filters(service=s.service)
    together = attribute_many(store, ["latency_p95", "error_rate", "quality:faithfulness"], baseline=baseline, incident=incident, filters=scope)
    assert list(together) == ["latency_p95", "error_rate", "quality:faithfulness"]
    for signal, result in together.items():
        alone = attribute(store, signal, baseline=baseline, incident=incident, filters=scope)
        assert [x.label for x in result.suspects] == [x.label for x in alone.suspects]
        assert result.incident_value == pytest.approx(alone.incident_value)
    assert set(zip(together["latency_p95"].suspects[0].dimensions, together["latency_p95"].suspects[0].values)) in [set(t) for t in s.truth]


def test_attribute_frame_reaches_three_dimensional_causes_when_asked() -> None:
    frame = _leaves(6, {"a": "a1", "b": "b3", "c": "c2"}, 0.2)
    assert attribute_frame(frame, dimensions=["a", "b", "c"], baseline="predict", current="real", max_order=3).iloc[0]["label"] == "a=a1 & b=b3 & c=c2"
    assert attribute_frame(frame, dimensions=["a", "b", "c"], baseline="predict", current="real", max_order=2).iloc[0]["dimensions"] != ("a", "b", "c")
    assert attribute_frame(frame, dimensions=["a", "b", "c"], baseline="predict", current="real").iloc[0]["label"] == "a=a1 & b=b3 & c=c2"


@pytest.mark.parametrize("signal", ["low_confidence_share", "input_confidence"])
def test_a_confidence_drop_is_blamed_on_the_deploy_not_on_the_low_confidence_inputs(store: Store, signal: str) -> None:
    """Bucketing inputs by their confidence splits a confidence signal by its own outcome: "more
    low-confidence inputs" is what happened, the deploy is why."""
    change = _voice_calls(store, np.random.default_rng(0), shift=-0.15)
    found = attribute(store, signal, baseline=Window(T0, change), incident=Window(change, T0 + timedelta(hours=6)))
    assert (found.suspects[0].dimensions, found.suspects[0].values) == (("service_version",), ("1.1",))
    assert not any("input_confidence" in s.dimensions for s in found.suspects)


def test_the_cause_ranks_above_a_harmless_rotation_that_lines_up_with_the_start(store: Store) -> None:
    """The incident is read from the fingerprint's rotation, ten minutes before the prompt that
    hurt quality: the fingerprint lines up with the start and holds every damaged call, but also
    umbrella's and the first ten minutes', which are fine. The root-cause set names the prompt,
    and so does the first suspect."""
    scenario = prompt_after_a_rotation()
    scenario.write(store)
    rotated = scenario.marks["rotated"]
    found = attribute(store, "quality:faithfulness", baseline=Window(scenario.start, rotated), incident=Window(rotated, scenario.end))
    rotation = next(s for s in found.suspects if s.names("system_fingerprint", "fp_b9"))
    assert rotation.first_seen is not None and abs(rotation.first_seen - rotated) < timedelta(minutes=1)
    assert found.suspects[0].names("prompt_version", "v8") and found.suspects[0].root_cause
    assert not rotation.root_cause


def test_a_value_that_came_after_the_change_began_does_not_lead_over_the_cause(store: Store) -> None:
    """A proxy slowed /chat/answer's first tokens from T0; twelve minutes later a prompt was
    published on that route. The prompt's calls all lie inside the route's and it lines up with
    the start about as well, but it explains less of the change (the route's first twelve minutes
    got slower without it): the route, the root cause, leads."""
    scenario = prompt_during_a_slowdown()
    scenario.write(store)
    t0 = scenario.marks["t0"]
    found = attribute(store, "ttft_p50", baseline=Window(scenario.start, t0), incident=Window(t0, scenario.end))
    prompt = next(s for s in found.suspects if s.names("prompt_version", "v8"))
    assert found.suspects[0].names("route", "/chat/answer") and found.suspects[0].root_cause
    assert prompt.explained_share < min(found.suspects[0].explained_share, 1.0) - 0.1
