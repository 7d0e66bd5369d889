"""The report evaluation's worlds are labelled right, and its scoring counts what it should.

Each world writes two incident kinds and a control into its own database; the labelled cause's
segment must carry the injected change (measured on llm_calls / llm_scores, not through the
analyzers) while calls outside it and the controls do not move. The analyzers' accuracy is the
bench's business (bench/bench_incident_eval.py), not these tests'.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from driftline.analyzers.evaluation._labels import LabelledScenario
from driftline.analyzers.evaluation._report_eval import ReportScores, score_report
from driftline.analyzers.evaluation._scenarios import labelled
from driftline.analyzers.evaluation._world2 import scenarios as world2_scenarios
from driftline.analyzers.evaluation._world3 import KINDS as WORLD3_KINDS
from driftline.analyzers.evaluation._world3 import scenario as world3_scenario
from driftline.collector import Store, connect, migrate

QUALITY = "SELECT {agg} FROM llm_scores AS s INNER JOIN llm_calls AS c ON s.trace_id = c.trace_id AND s.span_id = c.span_id WHERE {where}"
CALLS = "SELECT {agg} FROM llm_calls AS c WHERE {where}"


@dataclass(frozen=True)
class Check:
    """One measured effect: `agg` over calls before the incident in scope vs after it in the cause segment (inside),
    and over `outside` calls before vs after; `inside`/`outside` judge the two (before, after) pairs."""

    query: str
    agg: str
    scope: str
    segment: str
    outside: str
    inside_ok: Callable[[float, float], bool]
    outside_ok: Callable[[float, float], bool]


def _sql(pairs: frozenset[tuple[str, str]]) -> str:
    return " AND ".join(f"c.{dim} = '{value}'" for dim, value in sorted(pairs))


def _routes(s: LabelledScenario) -> str:
    routes = sorted({v for cause in s.causes for d, v in cause if d == "route"})
    return "c.route IN (" + ", ".join(f"'{r}'" for r in routes) + ")"


def _measure(store: Store, check: Check, split: datetime) -> dict[str, float]:
    def one(where: str) -> float:
        value = store.rows(check.query.format(agg=check.agg, where=where), {"t": split})[0][0]
        return float("nan") if value is None else float(value)

    before, after = "c.time < {t:DateTime64(9)}", "c.time >= {t:DateTime64(9)}"
    return {"in_before": one(f"{before} AND {check.scope}"), "in_after": one(f"{after} AND {check.scope} AND {check.segment}"),
            "out_before": one(f"{before} AND {check.outside}"), "out_after": one(f"{after} AND {check.outside}")}  # fmt: skip


def _checks(s: LabelledScenario) -> list[Check]:
    """What the scenario's label promises, as measurable effects."""
    seg = _sql(s.causes[0])
    close = lambda tol: lambda a, b: abs(a - b) <= tol  # noqa: E731
    ratio = lambda lo, hi: lambda a, b: lo <= b / a <= hi  # noqa: E731
    if s.kind == "prompt_regression":
        return [Check(QUALITY, "avg(s.score)", _routes(s), seg, f"NOT {_routes(s)}", lambda a, b: b <= a - 0.04, close(0.025))]
    if s.kind == "buffering_proxy":
        return [Check(CALLS, "quantile(0.5)(c.ttft_s)", _routes(s), seg, f"{_routes(s)} AND NOT ({seg})", ratio(1.8, 5), ratio(0.85, 1.15)),
                Check(CALLS, "quantile(0.5)(c.duration_s)", _routes(s), seg, f"{_routes(s)} AND NOT ({seg})", ratio(0.8, 1.2), ratio(0.85, 1.15))]  # fmt: skip
    if s.kind == "early_cancel_client":
        stream = f"c.stream AND {_routes(s)}"
        return [Check(CALLS, "avg(ifNull(c.tokens_after_cancel, 0))", stream, seg, f"c.stream AND NOT ({seg})", ratio(4, 1000), ratio(0.5, 2))]
    if s.kind == "structured_output_break":
        valid = "c.validation IS NOT NULL"
        return [Check(CALLS, "avgIf(c.validation != 'ok', c.validation IS NOT NULL)", f"{valid} AND {_routes(s)}", seg, f"{valid} AND NOT {_routes(s)}",
                      lambda a, b: b >= a + 0.04, close(0.015))]  # fmt: skip
    raise AssertionError(s.kind)


def _control_checks() -> list[Check]:
    """Nothing moves in a control: quality, TTFT, validation and 429s alike in both halves."""
    close = lambda tol: lambda a, b: abs(a - b) <= tol  # noqa: E731
    return [Check(QUALITY, "avg(s.score)", "1", "1", "1", close(0.03), close(0.03)),
            Check(CALLS, "quantile(0.5)(c.ttft_s)", "1", "1", "1", lambda a, b: 0.8 <= b / a <= 1.25, lambda a, b: True),
            Check(CALLS, "avgIf(c.validation != 'ok', c.validation IS NOT NULL)", "1", "1", "1", close(0.015), lambda a, b: True),
            Check(CALLS, "avg(c.rate_limited)", "1", "1", "1", close(0.01), lambda a, b: True)]  # fmt: skip


def _chosen() -> list[LabelledScenario]:
    one = {s.name: s for s in labelled(0, per_kind=1)}
    two = {s.name: s for s in world2_scenarios(0, per_kind=1)}
    return [one["w1-prompt_regression-0"], one["w1-buffering_proxy-0"], one["w1-control-0"],
            two["w2-early_cancel_client-0"], two["w2-structured_output_break-0"], two["w2-control-0"]]  # fmt: skip


@pytest.fixture(scope="module")
def measured(engine_dir: Path) -> Iterator[dict[str, tuple[LabelledScenario, list[tuple[Check, dict[str, float]]], int]]]:
    """Every chosen scenario written into its own database and measured: (scenario, [(check, values)], segment calls before)."""
    out = {}
    for s in _chosen():
        store = connect(f"chdb://{engine_dir}?database=w_{uuid.uuid4().hex[:10]}")
        try:
            migrate(store)
            s.write(store)
            if s.incident:
                assert s.incident_start is not None
                split, checks = s.incident_start, _checks(s)
                early = store.rows(CALLS.format(agg="count()", where=f"c.time < {{t:DateTime64(9)}} AND {_sql(s.causes[0])}"), {"t": split})[0][0]
            else:
                split, checks, early = s.start + (s.end - s.start) / 2, _control_checks(), 0
            out[s.name] = (s, [(c, _measure(store, c, split)) for c in checks], early)
        finally:
            store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
            store.close()
    yield out


@pytest.mark.parametrize("name", ["w1-prompt_regression-0", "w1-buffering_proxy-0", "w2-early_cancel_client-0", "w2-structured_output_break-0"])
def test_the_labelled_cause_carries_the_change_and_the_rest_does_not(measured: dict[str, Any], name: str) -> None:
    scenario, results, early = measured[name]
    assert early == 0, f"{scenario.causes[0]} exists before the incident"
    for check, v in results:
        assert check.inside_ok(v["in_before"], v["in_after"]), (check.agg, v, scenario.notes)
        assert check.outside_ok(v["out_before"], v["out_after"]), (check.agg, v, scenario.notes)


@pytest.mark.parametrize("name", ["w1-control-0", "w2-control-0"])
def test_controls_move_nothing(measured: dict[str, Any], name: str) -> None:
    scenario, results, _ = measured[name]
    assert not scenario.signals and not scenario.causes
    for check, v in results:
        assert check.inside_ok(v["in_before"], v["in_after"]), (check.agg, v, scenario.notes)


def _scenario(kind: str, signals: tuple[str, ...] = (), causes: tuple[frozenset[tuple[str, str]], ...] = ()) -> LabelledScenario:
    t = datetime(2026, 1, 1)
    return LabelledScenario(name=f"hand-{kind}", kind=kind, world="hand", service=None, start=t, end=t, incident_start=None if kind == "control" else t,
                            signals=signals, causes=causes, writer=lambda store: 0)  # fmt: skip


def _finding(signal: str, dims: tuple[str, ...] = (), values: tuple[str, ...] = (), **extra: Any) -> SimpleNamespace:
    suspect = SimpleNamespace(dimensions=dims, values=values, equivalents=extra.pop("equivalents", ()))
    return SimpleNamespace(regression=SimpleNamespace(signal=signal), attribution=SimpleNamespace(suspects=(suspect,) if dims else ()), **extra)


def test_scoring_counts_a_correct_lead_and_a_false_finding() -> None:
    incident = _scenario("prompt_regression", ("quality:q",), (frozenset({("prompt_version", "v4")}),))
    report = SimpleNamespace(findings=(_finding("quality:q", ("prompt_version",), ("v4",)), _finding("ttft_p50", ("tenant",), ("a",))))
    got = score_report(report, incident)
    assert (got.detected, got.lead_correct, got.false_findings, got.findings) == (True, True, 1, 2)
    wrong = score_report(SimpleNamespace(findings=(_finding("quality:q", ("tenant",), ("a",)),)), incident)
    assert (wrong.detected, wrong.lead_correct, wrong.false_findings) == (True, False, 0)
    control = score_report(SimpleNamespace(findings=(_finding("quality:q", ("tenant",), ("a",)),)), _scenario("control"))
    assert (control.detected, control.lead_correct, control.false_findings) == (False, False, 1)
    scores = ReportScores((got, wrong, control, score_report(None, incident)))
    assert (scores.detection_rate, scores.precision_at_1, scores.controls_with_findings) == (2 / 3, 1 / 3, 1)
    assert scores.false_findings_per_report == 2 / 4


def test_equivalent_segments_and_grouped_symptoms_count_as_the_cause_and_signal() -> None:
    incident = _scenario("structured_output_break", ("validation_failure_rate",), (frozenset({("route", "/x"), ("prompt_version", "v4")}),))
    equivalent = _finding("validation_failure_rate", ("prompt_version",), ("v9",), equivalents=((("prompt_version", "route"), ("v4", "/x")),))
    assert score_report(SimpleNamespace(findings=(equivalent,)), incident).lead_correct
    grouped = _finding("error_rate", ("route", "prompt_version"), ("/x", "v4"), symptoms=(SimpleNamespace(signal="validation_failure_rate"),))
    got = score_report(SimpleNamespace(findings=(grouped,)), incident)
    assert (got.detected, got.lead_correct, got.false_findings) == (True, True, 0)


# --- world 3 (Switchboard): every kind's label is checked against the rows it wrote ---------------

W3_COLUMN = {"input_confidence": "multiIf(c.confidence_mean < 0.6, 'low', c.confidence_mean < 0.8, 'medium', 'high')"}
W3_SIGNAL: dict[str, tuple[str, str, str, Callable[[float, float], bool]]] = {
    "quality": (QUALITY, "avg(s.score)", "s.evaluation = {evaluation:String}", lambda a, b: b <= a - 0.04),
    "ttft_p50": (CALLS, "quantile(0.5)(c.ttft_s)", "c.ttft_s IS NOT NULL", lambda a, b: b >= 1.8 * a),
    "low_confidence_share": (CALLS, "avg(c.confidence_mean < 0.6)", "c.confidence_mean IS NOT NULL", lambda a, b: b >= 2 * a + 0.05),
    "rate_limit_rate": (CALLS, "avg(c.rate_limited)", "1", lambda a, b: b >= 3 * a + 0.02),
    "validation_failure_rate": (CALLS, "avg(c.validation != 'ok')", "c.validation IS NOT NULL", lambda a, b: b >= 2 * a + 0.05),
    "cancellation_tax": (CALLS, "avg(ifNull(c.tokens_after_cancel, 0))", "c.stream", lambda a, b: b >= 3 * a),
}  # fmt: skip


def _w3_where(pairs: frozenset[tuple[str, str]]) -> str:
    return " AND ".join(f"{W3_COLUMN.get(dim, f'c.{dim}')} = '{value}'" for dim, value in sorted(pairs)) or "1"


def _w3_measure(store: Store, s: LabelledScenario) -> dict[str, Any]:
    """The probe's signal on the context before the start and on the segment after it; calls of every cause after it."""
    split = s.incident_start or s.start + (s.end - s.start) / 2
    probe = s.detail
    signal = "quality" if probe is None or probe.signal.startswith("quality:") else probe.signal
    query, agg, scope, _ = W3_SIGNAL[signal]
    params = {"t": split, "evaluation": "resolution_quality" if probe is None else probe.signal.removeprefix("quality:")}

    def one(when: str, pairs: frozenset[tuple[str, str]]) -> float:
        value = store.rows(query.format(agg=agg, where=f"c.time {when} {{t:DateTime64(9)}} AND {scope} AND {_w3_where(pairs)}"), params)[0][0]
        return float("nan") if value is None else float(value)

    segment, context = (frozenset(), frozenset()) if probe is None else (probe.segment, probe.context)
    causes = [store.rows(CALLS.format(agg="count()", where=f"c.time >= {{t:DateTime64(9)}} AND {_w3_where(c)}"), params)[0][0] for c in s.causes]
    return {"signal": signal, "before": one("<", context), "after": one(">=", segment), "cause_calls": causes,
            "ttft": [one(w, frozenset()) for w in ("<", ">=")] if probe is None else None}  # fmt: skip


@pytest.fixture(scope="module")
def world3(engine_dir: Path) -> Iterator[dict[str, tuple[LabelledScenario, dict[str, Any]]]]:
    """One scenario of every world-3 kind, each written into its own fresh database and measured."""
    out = {}
    for kind in WORLD3_KINDS:
        s = world3_scenario(kind, 0, 0, datetime(2026, 11, 16, 17, 30, tzinfo=UTC), volume=0.4)
        store = connect(f"chdb://{engine_dir}?database=w3_{uuid.uuid4().hex[:10]}")
        try:
            migrate(store)
            assert s.write(store) > 2500
            out[s.kind] = (s, _w3_measure(store, s))
        finally:
            store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
            store.close()
    yield out


@pytest.mark.parametrize("kind", [k for k in WORLD3_KINDS if k != "control"])
def test_world3_labels_are_true_in_the_rows(world3: dict[str, Any], kind: str) -> None:
    scenario, m = world3[kind]
    assert scenario.world == "world3" and scenario.signals and scenario.causes and scenario.incident_start is not None
    assert all(m["cause_calls"]), f"a labelled cause selects no call after the start: {scenario.causes}"
    assert W3_SIGNAL[m["signal"]][3](m["before"], m["after"]), (m, scenario.notes)


def test_world3_control_moves_nothing(world3: dict[str, Any]) -> None:
    scenario, m = world3["control"]
    assert not scenario.signals and not scenario.causes and scenario.incident_start is None
    assert abs(m["after"] - m["before"]) <= 0.03, m
    before, after = m["ttft"]
    assert 0.85 <= after / before <= 1.15, m
