"""The incident report's sections on scenarios with known causes, and its Markdown and JSON forms."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from incident_scenarios import (
    NEW_MODEL,
    costly_prompt,
    one_provider_hidden,
    one_provider_slower_as_traffic_shifts,
    steady,
    storm_after_a_prompt,
    storm_over_a_rebuild,
    swap_after_a_prompt,
)

from driftline.analyzers._model import Filters, Window
from driftline.analyzers._render import render_report
from driftline.analyzers._report import FINDING_TYPES, SAME_START, IncidentReport, incident_report
from driftline.analyzers._signals import get_signal
from driftline.analyzers.evaluation._scenarios import labelled
from driftline.analyzers.evaluation._world3 import scenario as world3_scenario
from driftline.collector import Store
from driftline.runbooks._loader import names as runbook_names

DOCS = Path(__file__).resolve().parents[1] / "docs" / "incident-report.md"
GRAFANA = "http://grafana.test/explore?traceId={trace_id}"


def _window(scenario: Any) -> Window:
    return Window(scenario.start, scenario.end + timedelta(minutes=1))


@pytest.fixture(scope="module")
def silent_report(silent_update_store: Any) -> IncidentReport:
    store, scenario = silent_update_store
    return incident_report(store, _window(scenario))


@pytest.fixture(scope="module")
def costly(costly_store: Any) -> tuple[Store, Any, IncidentReport]:
    """(store, scenario, report) for the costly prompt: a cost and cancellation-tax incident."""
    store, scenario = costly_store
    return store, scenario, incident_report(store, _window(scenario))


def test_summary_line_names_the_signal_its_start_the_top_suspect_and_the_damage(silent_report: IncidentReport) -> None:
    line = silent_report.summary
    assert "\n" not in line and len(line) < 400
    assert line.startswith("driftline: quality:faithfulness down")
    assert f"top suspect response_model={NEW_MODEL} (possible silent provider update" in line
    assert "UTC" in line and "calls and 4 tenants affected" in line


def test_injected_cause_ranks_first_and_the_harmless_changes_below_it(silent_report: IncidentReport) -> None:
    finding = next(f for f in silent_report.findings if f.regression.signal == "quality:faithfulness")
    labels = [s.label for s in finding.attribution.suspects] if finding.attribution else []
    assert labels[0] in (f"response_model={NEW_MODEL}", "system_fingerprint=fp_b2")
    harmless = [i for i, s in enumerate(labels) if "prompt_version=v8" in s or "index_version=2026-11-20" in s]
    assert all(i > 0 for i in harmless)
    top = finding.top_suspect
    assert top is not None and top.explained_share > 0.8 and top.effect == "worse"
    assert top.first_seen is not None and abs(top.first_seen - silent_report.findings[0].regression.started_at) <= timedelta(minutes=2)


def test_impact_counts_the_calls_and_tenants_of_the_top_suspect_segment(silent_report: IncidentReport, silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    impact = silent_report.impact
    assert impact is not None
    period = {"a": impact.period.start, "b": impact.period.end}
    calls, tenants = store.rows(
        "SELECT count(), groupUniqArray(tenant) FROM llm_calls WHERE time >= {a:DateTime64(9)} AND time < {b:DateTime64(9)}"
        " AND response_model = {m:String}", period | {"m": NEW_MODEL},
    )[0]  # fmt: skip
    assert impact.affected_calls == calls and set(impact.tenants) == set(tenants)
    assert impact.failed_calls == 0 and impact.error_budget_burned == 0


def test_impact_prices_the_extra_cost_and_the_cancellation_tax(costly: Any) -> None:
    store, scenario, report = costly
    impact = report.impact
    assert impact is not None
    after = store.rows("SELECT count(), countIf(cancelled) FROM llm_calls WHERE time >= {a:DateTime64(9)} AND time < {b:DateTime64(9)}"
                       " AND prompt_version = 'v9'", {"a": impact.period.start, "b": impact.period.end})[0]  # fmt: skip
    assert impact.cancellation_tax_tokens == 15 * after[1]  # each cancel: 20 tokens billed, 5 delivered
    # v9 calls cost $0.006 instead of $0.002; the rest of the incident period costs the same as before
    assert impact.extra_cost == pytest.approx(0.004 * after[0], rel=0.05)
    assert impact.cancellation_tax_cost == pytest.approx(after[1] * 0.006 * 15 / 820, rel=1e-6)
    assert "extra cost $" in report.summary
    assert impact.computed_cost_share == 0 and "price table" not in render_report(report, "md"), "every cost was reported"


def test_impact_says_how_much_of_the_spend_the_store_computed(store: Store) -> None:
    """Calls that reported no cost are priced by the store from its price table (cost_computed):
    the report says which share of the incident period's spend that is."""
    scenario = costly_prompt(calls=1200)
    scenario.write(store)
    store.command("ALTER TABLE llm_calls UPDATE cost_computed = true WHERE prompt_version = 'v9' SETTINGS mutations_sync = 1")
    report = incident_report(store, _window(scenario))
    assert report.impact is not None
    period = {"a": report.impact.period.start, "b": report.impact.period.end}
    computed, spend = store.rows("SELECT sumIf(cost_usd, prompt_version = 'v9'), sum(cost_usd) FROM llm_calls"
                                 " WHERE time >= {a:DateTime64(9)} AND time < {b:DateTime64(9)}", period)[0]  # fmt: skip
    assert 0 < report.impact.computed_cost_share == pytest.approx(computed / spend)
    assert f"{report.impact.computed_cost_share:.0%} of the spend computed from the price table" in render_report(report, "md")


def test_error_budget_burned_counts_failures_against_the_objective(burst_store: Any) -> None:
    store, scenario = burst_store
    report = incident_report(store, _window(scenario), slo=0.99)
    impact = report.impact
    assert impact is not None
    failed = store.rows("SELECT countIf(status = 'Error') FROM llm_calls WHERE time >= {a:DateTime64(9)} AND time < {b:DateTime64(9)}",
                        {"a": impact.period.start, "b": impact.period.end})[0][0]  # fmt: skip
    window_calls = store.rows("SELECT count() FROM llm_calls")[0][0]
    assert impact.failed_calls == failed > 50
    assert impact.error_budget_burned == pytest.approx(failed / (0.01 * window_calls))


def test_each_finding_has_a_runbook_that_ships(silent_report: IncidentReport, costly: Any) -> None:
    findings = silent_report.findings + costly[2].findings
    found = {r.signal for f in costly[2].findings for r in (f.regression, *f.symptoms)}
    assert found >= {"cost_per_call", "cancellation_tax"}, "two symptoms of one prompt change, whether one finding or two"
    for f in findings:
        assert f.runbook is not None, f.regression.signal
        assert f.runbook.name in runbook_names()
        assert resources.files("driftline.runbooks").joinpath(f"{f.runbook.name}.md").is_file()
        assert f.runbook.path == f"runbooks/{f.runbook.name}.md"


def test_signals_that_start_together_with_one_top_suspect_are_one_finding(silent_report: IncidentReport) -> None:
    """TTFT p50/p95/p99 or error and 429 rates of one change are symptoms of one incident, not several findings."""
    leads = [(f.regression.started_at, f.top_suspect.label) for f in silent_report.findings if f.top_suspect is not None]
    for (t1, a), (t2, b) in itertools.combinations(leads, 2):
        assert a != b or abs(t1 - t2) > SAME_START
    assert all(r.signal != f.regression.signal for f in silent_report.findings for r in f.symptoms)


def test_every_runbook_named_in_the_finding_types_ships() -> None:
    assert {runbook for _, _, runbook in FINDING_TYPES} <= set(runbook_names())


def test_costly_prompt_is_ranked_first_with_its_annotated_change(costly: Any) -> None:
    _, scenario, report = costly
    finding = next(f for f in report.findings if f.regression.signal == "cost_per_call")
    top = finding.top_suspect
    assert top is not None and "prompt_version=v9" in top.label
    assert top.aligned_change is not None and "v9" in top.aligned_change
    assert not report.silent_updates


def test_markdown_report_has_every_section_and_cites_its_evidence(silent_report: IncidentReport) -> None:
    text = render_report(silent_report, "md")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["Impact", "Findings", "Timeline (UTC)", "Runbooks", "Action items"]
    assert f"> {silent_report.summary}" in text
    assert "[Quality regression after a change](runbooks/quality-regression.md)" in text
    section = text.split("## Timeline (UTC)")[1].split("## Runbooks")[0]
    timeline_rows = [line for line in section.splitlines() if re.match(r"^\| \d\d:\d\d:\d\d \|", line)]
    assert len(timeline_rows) == len(silent_report.timeline) and all("query `" in row for row in timeline_rows)
    assert "| owner | action | due | status |" in text


def test_exemplar_trace_ids_open_in_grafana_when_a_template_is_given(silent_report: IncidentReport) -> None:
    top = silent_report.findings[0].top_suspect
    assert top is not None and top.evidence.trace_ids
    trace = top.evidence.trace_ids[0]
    linked = render_report(silent_report, "md", grafana_url=GRAFANA)
    assert f"(http://grafana.test/explore?traceId={trace})" in linked
    plain = render_report(silent_report, "md")
    assert f"`{trace}`" in plain and "grafana.test" not in plain


def test_grafana_template_without_a_placeholder_is_refused(silent_report: IncidentReport) -> None:
    with pytest.raises(ValueError, match="trace_id"):
        render_report(silent_report, "md", grafana_url="http://grafana.test/explore")


def test_json_report_has_the_documented_versioned_shape(silent_report: IncidentReport) -> None:
    data = json.loads(render_report(silent_report, "json", grafana_url=GRAFANA))
    assert list(data)[:3] == ["schema_version", "kind", "trace_url_template"]
    assert data["schema_version"] == 1 and data["kind"] == "driftline.incident_report"
    assert data["window"]["start"].endswith("+00:00")
    finding = data["findings"][0]
    assert finding["regression"]["signal"] == "quality:faithfulness"
    assert finding["attribution"]["suspects"][0]["evidence"]["trace_ids"]
    assert data["timeline"][0]["evidence"]["query"]
    documented = set(re.findall(r"^\| `([a-z_.\[\]]+)` \|", DOCS.read_text(encoding="utf-8"), re.M))
    keys = _paths(data)
    assert keys <= documented, f"undocumented JSON fields: {sorted(keys - documented)}"


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Dotted field paths of a JSON document; list items as `name[]`; evidence parameters are free-form."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            if not path.endswith("parameters"):
                out |= _paths(v, path)
    elif isinstance(value, list):
        for item in value:
            out |= _paths(item, prefix + "[]")
    return out


def test_a_window_where_nothing_regressed_says_so(store: Store) -> None:
    scenario = steady(calls=900)
    scenario.write(store)
    report = incident_report(store, _window(scenario))
    assert not report.regressed and report.impact is None and not report.findings
    assert report.summary.startswith("driftline: no regression between")
    text = render_report(report, "md")
    assert "No regression detected in this window." in text


def test_filters_scope_the_report(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    report = incident_report(store, _window(scenario), filters=Filters(route="/search"))
    assert not [f for f in report.findings if f.regression.signal == "quality:faithfulness"]
    assert report.calls == store.rows("SELECT count() FROM llm_calls WHERE route = '/search'")[0][0]
    assert " on /search " in report.summary


@pytest.mark.slow
def test_on_the_demo_the_injected_cause_leads_and_the_harmless_changes_rank_below(store: Store) -> None:
    """What `make demo` ends with: its silent provider update singled out, its ordinary changes not."""
    from driftline.analyzers.demo._run import run_demo

    end = datetime.now(UTC).replace(second=0, microsecond=0)  # whole minutes: the same buckets every run
    run = run_demo(store, calls=30_000, seed=7, end=end)
    report = incident_report(store, Window(run.end - timedelta(hours=2), run.end + timedelta(minutes=1)))
    [injected] = [c for c in run.changes if c.harmful]
    harmless = {c.version for c in run.changes if not c.harmful}
    lead = report.findings[0]
    assert lead.regression.ended_at is None and lead.top_suspect is not None
    assert lead.top_suspect.values == (injected.version,) and lead.top_suspect.label in report.silent_updates
    quality = next(f for f in report.findings if "quality:answer_quality" in {r.signal for r in (f.regression, *f.symptoms)})
    assert quality.top_suspect is not None and quality.top_suspect.label in report.silent_updates
    for finding in report.findings:  # wherever the injected change is a suspect, no harmless change ranks above it
        ranked = [s.values for s in finding.attribution.suspects] if finding.attribution else []
        if (injected.version,) in ranked:
            above = ranked[: ranked.index((injected.version,))]
            assert not any(harmless & set(values) for values in above), (finding.regression.signal, above)
    assert f"top suspect response_model={injected.version} (possible silent provider update" in report.summary
    flagged = [e for e in report.timeline if e.kind == "first_seen" and injected.version in e.summary]
    assert flagged and "possible silent provider update" in flagged[0].summary


def test_action_items_suggest_next_steps_and_leave_the_rest_to_humans(silent_report: IncidentReport, costly: Any) -> None:
    items = silent_report.follow_ups
    assert items[0].startswith(f"Confirm with the provider that response_model={NEW_MODEL}")
    assert "Follow runbooks/quality-regression.md (quality:faithfulness)." in items
    costly_items = costly[2].follow_ups
    assert costly_items[0].startswith("Confirm that prompt_version=v9 caused ")
    assert not any("provider" in item for item in costly_items)
    section = render_report(silent_report, "md").split("## Action items")[1]
    assert section.count("- [ ] ") == len(items), "every checkbox says what to do: humans add theirs in the table"
    assert "- [ ] \n" not in section and section.rstrip().endswith("| | | | |")


def test_a_tenant_whose_traffic_grew_leads_not_one_model_of_it(store: Store) -> None:
    """A weak tenant's share of the judged calls grows and quality drops with no code change: the
    report names the tenant, not a pair inside it that only looks worse by chance."""
    scenario = next(s for s in labelled(1, per_kind=2) if s.name == "w1-tenant_mix_shift-1")
    scenario.write(store)
    report = incident_report(store, Window(scenario.start, scenario.end), filters=Filters(service=scenario.service))
    lead = report.findings[0]
    assert lead.regression.signal in scenario.signals
    assert lead.top_suspect is not None and frozenset(zip(lead.top_suspect.dimensions, lead.top_suspect.values)) in scenario.causes
    assert lead.top_suspect.effect == "mix" and lead.top_suspect.root_cause


def test_a_provider_429_storm_is_named_over_the_harmless_changes_just_before_it(store: Store) -> None:
    """Anthropic rate-limits from T0; an index every call reads was rebuilt 30 s before, a prompt on
    anthropic's route published 8 minutes before. The provider leads (the index's calls on openai
    are fine); no suspect is made of calls without a response model (failed calls never have one)."""
    scenario = storm_over_a_rebuild()
    scenario.write(store)
    report = incident_report(store, _window(scenario))
    [lead] = report.findings
    assert {lead.regression.signal, *(r.signal for r in lead.symptoms)} == {"error_rate", "rate_limit_rate"}
    assert lead.top_suspect is not None and lead.top_suspect.names("provider", "anthropic")
    assert lead.top_suspect.root_cause
    suspects = lead.attribution.suspects if lead.attribution else ()
    assert not any("response_model" in s.dimensions or "(none)" in s.values for s in suspects)
    index = next(i for i, s in enumerate(suspects) if s.values == ("2026-11-20",))
    assert index > 0 and suspects[index].first_seen is not None


def test_a_storm_on_every_call_of_a_provider_is_not_narrowed_to_a_prompt_published_before_it(store: Store) -> None:
    """openai rate-limits all its calls from T0; three quarters of them carry a prompt published
    two minutes before. Failed calls have no fingerprint, and neither have anthropic's served
    ones: kept in the search, the fingerprint sorted openai's calls by outcome, so its older calls'
    failures looked like a shift of mix and the prompt's new calls the narrower cause. The
    provider leads, alone."""
    scenario = storm_after_a_prompt()
    scenario.write(store)
    report = incident_report(store, _window(scenario))
    [lead] = report.findings
    assert lead.top_suspect is not None and lead.top_suspect.label == "provider=openai" and lead.top_suspect.root_cause
    suspects = lead.attribution.suspects if lead.attribution else ()
    assert [s.label for s in suspects if s.root_cause] == ["provider=openai"]


def test_one_providers_drop_the_whole_scope_hides_is_attributed_within_the_provider(store: Store) -> None:
    """Provider small's new model drops quality while the other provider's calls improve: over all
    calls quality rose, so suspects found there would describe the improvement; within small's
    calls the new model is the cause."""
    scenario = one_provider_hidden()
    scenario.write(store)
    report = incident_report(store, _window(scenario))
    [lead] = [f for f in report.findings if f.regression.signal == "quality:faithfulness"]
    assert lead.regression.where == "provider=small" and lead.attribution is not None
    assert lead.attribution.incident_value < lead.attribution.baseline_value - 0.1
    assert lead.top_suspect is not None and lead.top_suspect.names("response_model", NEW_MODEL)


def test_one_providers_slowdown_under_a_shift_of_traffic_is_attributed_within_the_provider(store: Store) -> None:
    """Provider small's new model doubles its latency, still under the old median of all calls,
    while a few of its calls move to openai: over all calls a few more are slower than the old
    median by that shift alone, and the suspects found there name traffic, not a change. Within
    small's calls the new model is the cause."""
    scenario = one_provider_slower_as_traffic_shifts()
    scenario.write(store)
    report = incident_report(store, _window(scenario))
    lead = report.findings[0]
    assert lead.regression.where == "provider=small" and lead.regression.signal in ("ttft_p50", "latency_p50")
    assert lead.top_suspect is not None and lead.top_suspect.names("response_model", NEW_MODEL)
    assert lead.top_suspect.effect == "worse"


def test_an_asr_deploys_quality_drop_is_a_symptom_of_the_confidence_it_moved(store: Store) -> None:
    """A deploy lowers ASR confidence on voice calls, and answers read from the poorer transcripts
    get worse. Over quality, the low-confidence bucket explains the drop; what moved the confidence
    is the deploy. One finding: the confidence's regression, the deploy on top, the quality drops
    as its symptoms (not findings of their own, led by the bucket)."""
    scenario = world3_scenario("asr_deploy_confidence", 2, 1, datetime(2026, 11, 16, 17, 30, tzinfo=UTC))
    scenario.write(store)
    report = incident_report(store, Window(scenario.start, scenario.end), filters=Filters(service=scenario.service))
    [lead] = report.findings
    assert get_signal(lead.regression.signal).column == "confidence_mean"
    assert lead.top_suspect is not None and frozenset(zip(lead.top_suspect.dimensions, lead.top_suspect.values)) in scenario.causes
    assert "input_confidence" not in lead.top_suspect.dimensions
    quality = {s for s in scenario.signals if s.startswith("quality:")}
    assert quality and quality <= {r.signal for r in lead.symptoms}


def test_a_prompt_leads_over_a_fingerprint_rotated_minutes_before_it(store: Store) -> None:
    """A fingerprint rotates eight minutes before a prompt regression on the same calls; the
    detected start falls before both. The fingerprint holds the prompt's calls and a few more
    (too few to judge by themselves), so it is no narrower part of the root cause the stopping
    rule chose: the prompt leads."""
    scenario = world3_scenario("prompt_regression", 7, 0, datetime(2026, 11, 16, 17, 30, tzinfo=UTC))
    scenario.write(store)
    report = incident_report(store, Window(scenario.start, scenario.end), filters=Filters(service=scenario.service))
    lead = report.findings[0]
    assert lead.regression.signal in scenario.signals and lead.top_suspect is not None and lead.top_suspect.root_cause
    assert frozenset(zip(lead.top_suspect.dimensions, lead.top_suspect.values)) in scenario.causes


def test_a_value_whose_calls_stayed_as_before_does_not_cut_the_baseline_back(store: Store) -> None:
    """Every call got a new prompt half an hour before a silent model swap that lowered quality;
    the prompt's calls stayed as good as the ones before it. The finding's baseline runs up to the
    swap, holding the prompt's good calls: the prompt is reported as having been at the baseline's
    level, not as a value that only ever had the incident's calls."""
    scenario = swap_after_a_prompt(datetime(2026, 11, 16, 17, 30, tzinfo=UTC))
    scenario.write(store)
    lead = incident_report(store, _window(scenario)).findings[0]
    assert lead.top_suspect is not None and lead.top_suspect.names("response_model", NEW_MODEL)
    assert lead.attribution is not None and lead.attribution.baseline.end >= scenario.marks["t0"] - timedelta(minutes=2)
    prompt = next(s for s in lead.attribution.suspects if s.names("prompt_version", "v8"))
    assert prompt.baseline_calls > 0 and prompt.baseline_value is not None
    assert abs(prompt.baseline_value - lead.attribution.baseline_value) < abs(prompt.baseline_value - lead.attribution.incident_value)
