"""The incident report: one run answers what broke, since when, for whom, what it cost, which
change explains it, and what to do next.

`incident_report()` assembles an `IncidentReport` from the analyzers (detect, attribute_many),
the timeline and a few aggregate queries; `_render` turns it into Markdown, HTML or JSON. The report holds data only, so every format says the same thing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.collector._errors import AnalysisError, NoDataError
from driftline.collector.store._store import Store
from driftline.runbooks import _loader as _runbooks

from ._attribute import BUCKETED_FROM, attribute_many, first_seen, segment_conditions, with_exemplars
from ._detect import detect
from ._model import (
    Attribution,
    Evidence,
    Filters,
    Regression,
    Suspect,
    TimelineEvent,
    Window,
)
from ._signals import (
    bucket_params,
    default_bucket,
    filter_sql,
    full_grid,
    get_signal,
    scope_params,
    source_sql,
    utc,
)
from ._sql import render
from ._timeline import (
    SILENT_PROVIDER_UPDATE,
    require_data,
    stamp,
    timeline,
    window_parameters,
)

__all__ = [
    "DEFAULT_SLO",
    "FINDING_TYPES",
    "SCHEMA_VERSION",
    "Chart",
    "ChartLine",
    "Finding",
    "Impact",
    "IncidentReport",
    "Marker",
    "RunbookLink",
    "finding_type",
    "incident_report",
]

SCHEMA_VERSION = 1
"""Version of the report's JSON shape (docs/incident-report.md); bumped on any incompatible change."""

DEFAULT_SLO = 0.995
"""Success objective the error budget is measured against, unless the caller gives one."""

FINDING_TYPES: tuple[tuple[str, str, str], ...] = (
    ("quality:", "quality_regression", "quality-regression"),
    ("error_rate", "provider_errors", "provider-outage-429"),
    ("rate_limit_rate", "rate_limits", "provider-outage-429"),
    ("ttft_", "ttft_regression", "ttft-regression"),
    ("latency_", "latency_regression", "streaming-stalls"),
    ("cost_per_call", "cost_spike", "cost-spike"),
    ("cancellation_tax", "cancellation_tax", "cancellation-tax"),
    ("cancellation_cost", "cancellation_tax", "cancellation-tax"),
    ("validation_failure_rate", "structured_output_failures", "structured-output-failures"),
    ("low_confidence_share", "low_input_confidence", "asr-ocr-confidence"),
    ("input_confidence", "low_input_confidence", "asr-ocr-confidence"),
)
"""(signal prefix, finding type, runbook name): the one place a finding is tied to its runbook."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunbookLink:
    """Where the on-call engineer goes next for a finding."""

    name: str
    title: str
    path: str
    summary: str


@dataclass(frozen=True)
class ChartLine:
    """One line of a chart: a segment's signal value per bucket (None where it had no calls)."""

    name: str
    values: tuple[float | None, ...]
    calls: tuple[int, ...]


@dataclass(frozen=True)
class Marker:
    """A moment marked on a chart's time axis: the change point, the suspect's first appearance."""

    time: datetime
    label: str


@dataclass(frozen=True)
class Chart:
    """A regressed signal over the window, split by its top suspect, the change marked."""

    signal: str
    times: tuple[datetime, ...]
    lines: tuple[ChartLine, ...]
    markers: tuple[Marker, ...]
    evidence: Evidence


@dataclass(frozen=True)
class Finding:
    """One regression with its ranked suspects, chart and runbook."""

    type: str
    regression: Regression
    attribution: Attribution | None
    runbook: RunbookLink | None
    chart: Chart | None
    note: str | None = None
    symptoms: tuple[Regression, ...] = ()
    """Other signals of the same incident: they started together and share the top suspect."""

    @property
    def top_suspect(self) -> Suspect | None:
        """The suspect that explains most of the regression, if attribution found any."""
        return self.attribution.suspects[0] if self.attribution and self.attribution.suspects else None


@dataclass(frozen=True)
class Impact:
    """What the lead finding cost, over its incident period (its change point to its end)."""

    period: Window
    calls: int
    affected_calls: int
    affected_basis: str
    tenants: tuple[str, ...]
    failed_calls: int
    slo: float
    error_budget_burned: float
    baseline_cost_per_call: float | None
    incident_cost_per_call: float | None
    extra_cost: float
    cancellation_tax_tokens: int
    cancellation_tax_cost: float
    evidence: Evidence
    computed_cost_share: float = 0.0
    """Share of the period's spend the store computed from its price table (the calls reported none)."""


@dataclass(frozen=True)
class IncidentReport:
    """Everything the report says; render with `_render.render(report, format)`."""

    generated_at: datetime
    window: Window
    filters: Filters
    store: str
    calls: int
    summary: str
    findings: tuple[Finding, ...]
    timeline: tuple[TimelineEvent, ...]
    impact: Impact | None
    silent_updates: tuple[str, ...] = ()
    """Labels (`response_model=…`) first seen in the window with no annotated model change."""
    follow_ups: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION
    kind: str = field(default="driftline.incident_report")

    @property
    def regressed(self) -> bool:
        """Whether anything regressed (what --fail-on-regression checks)."""
        return bool(self.findings)


def finding_type(signal: str) -> tuple[str, str | None]:
    """(finding type, runbook name) for a regressed signal."""
    for prefix, kind, runbook in FINDING_TYPES:
        if signal.startswith(prefix):
            return kind, runbook
    return "regression", None


def runbook_link(name: str | None) -> RunbookLink | None:
    """The runbook as a link; None when none ships under that name."""
    if name is None:
        return None
    try:
        book = _runbooks.get(name)
    except _runbooks.RunbookNotFound:
        return None
    return RunbookLink(book.name, book.title, book.path, book.summary)


def incident_report(
    store: Store,
    window: Window,
    *,
    filters: Filters = Filters(),
    slo: float = DEFAULT_SLO,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IncidentReport:
    """Detect, attribute, time-line and cost the incident in `window`; NoDataError if it is empty.

    Findings a change lines up with come before those none does (`changes_first`), each group in
    `detect`'s order: regressions still under way first, then those that ended, worst first; those
    only a test at a change's moment found (`Regression.anchor`) come last. The first (the lead
    finding) is what the summary line and the impact speak of.
    """
    say = progress or (lambda _: None)
    now = now or datetime.now(UTC)
    window = Window(window.start.astimezone(UTC), window.end.astimezone(UTC))  # the report speaks UTC
    say("checking the window")
    calls = require_data(store, window, filters, now=now)
    say("detecting regressions")
    regressions = detect(store, window, filters=filters)  # ranked: still broken first, those found only at a change's moment last
    attributions = attribute_regressions(store, window, filters, regressions, say)
    say("charting")
    findings = [_charted(store, window, filters, _exemplified(store, filters, f))
                for f in changes_first(group_symptoms(corroborated(changes_over_buckets(stepped_tenants_first([_finding(r, a) for r, a in zip(regressions, attributions)])))))]  # fmt: skip
    say("building the timeline")
    events = timeline(store, window, filters=filters, regressions=regressions)
    say("measuring the impact")
    impact = measure_impact(store, window, filters, findings[0], slo=slo) if findings else None
    silent = tuple(e.flags[0] for e in events if SILENT_PROVIDER_UPDATE in e.flags)
    return IncidentReport(
        generated_at=now,
        window=window,
        filters=filters,
        store=store.url,
        calls=calls,
        summary=summary_line(window, filters, calls, findings, impact, silent),
        findings=tuple(findings),
        timeline=tuple(events),
        impact=impact,
        silent_updates=silent,
        follow_ups=tuple(follow_ups(findings, silent)),
    )


NO_BASELINE = "The regression starts at the window's start, so there is no baseline to attribute it against: widen --since."

BASELINE_SPAN = timedelta(hours=1)
"""Shortest baseline a regression is attributed against: the time before its change point, at
least this long or as long as the regression, read whether or not it lies in the report window."""
MIN_BASELINE = timedelta(minutes=10)
"""A baseline cut back to before a suspect's first appearance keeps at least this much."""


def attribute_regressions(store: Store, window: Window, filters: Filters, regressions: Sequence[Regression],
                          say: Progress) -> list[Attribution | str]:  # fmt: skip
    """Each regression's attribution, or why there is none.

    The baseline lies before the change point and is not clipped by the report window. When a
    value first appeared shortly before the detected start (`_before_new_values`), or a leading
    suspect whose calls there already looked like the incident's first appeared anywhere inside
    the baseline (then the group is attributed again), the baseline ends where it appeared, so
    its calls are compared with what the same context did before it came. A slice's regression
    is attributed within its slice (`narrowed`). Regressions over the same windows and scope
    share one `attribute_many` pass (one leaf scan for them all).
    """
    results: list[Attribution | str] = [NO_BASELINE] * len(regressions)
    groups: dict[tuple[datetime, datetime, Filters], list[int]] = {}
    for i, r in enumerate(regressions):
        groups.setdefault((r.started_at, r.ended_at or window.end, narrowed(filters, r)), []).append(i)
    seen_in: dict[str | None, dict[tuple[str, str], datetime]] = {}  # first appearances are kept per service
    for (start, end, scope), members in groups.items():
        say(f"attributing {', '.join(regressions[i].signal for i in members)}")
        if scope.service not in seen_in:
            seen_in[scope.service] = first_seen(store, scope)
        seen = seen_in[scope.service]
        incident = Window(start, end)
        baseline = _before_new_values(seen, Window(start - max(end - start, BASELINE_SPAN), start))
        found = _attribute_group(store, scope, [regressions[i] for i in members], baseline, incident, seen)
        appeared = _appeared_in(seen, baseline, [a for a in found if isinstance(a, Attribution)])
        if appeared is not None:
            again = _attribute_group(store, scope, [regressions[i] for i in members], Window(baseline.start, appeared), incident, seen)
            found = [b if isinstance(b, Attribution) else a for a, b in zip(found, again)]  # too thin a cut keeps the first
        for i, result in zip(members, found):
            results[i] = _within_provider(store, scope, regressions[i], result, baseline, incident, seen)
    return results


def narrowed(filters: Filters, regression: Regression) -> Filters:
    """The scope a regression is attributed in: a route's or a service's regression within that
    route or service (in the whole scope its change is diluted, and its suspects would describe
    the rest of the traffic); a provider's in the whole scope, where the provider itself can be
    the suspect (a 429 storm)."""
    where = regression.slice
    return replace(filters, **{where.dimension: where.value}) if where is not None and where.dimension in ("route", "service") else filters


def _within_provider(store: Store, scope: Filters, r: Regression, attributed: Attribution | str, baseline: Window,
                     incident: Window, seen: dict[tuple[str, str], datetime]) -> Attribution | str:  # fmt: skip
    """A provider's regression is attributed in the whole scope, where the provider itself can be
    the suspect (a 429 storm). Where the whole scope did not get worse (one provider's latency or
    quality, diluted by the others), or its leading suspect is not the provider's calls getting
    worse (a shift of traffic, another provider's noise), it is attributed within the provider's
    calls: a cause inside the provider is found there as well."""
    if r.slice is None or r.slice.dimension != "provider" or not isinstance(attributed, Attribution):
        return attributed
    change = attributed.incident_value - attributed.baseline_value
    worse = change != 0 and get_signal(r.signal).is_bad("up" if change > 0 else "down")
    top = attributed.suspects[0] if attributed.suspects else None
    if worse and top is not None and top.effect == "worse" and top.names("provider", r.slice.value):
        return attributed
    return _attribute_group(store, replace(scope, provider=r.slice.value), [r], baseline, incident, seen)[0]


def _before_new_values(seen: dict[tuple[str, str], datetime], baseline: Window) -> Window:
    """The baseline, ended where a value first seen shortly before the change (within SAME_START)
    appeared, keeping at least MIN_BASELINE of calls: the calls it replaced count as the
    baseline, not as a mix of both. Its calls before the detected start fall in neither window
    (starting the incident there too ranked changes of the minutes before over the one at the start)."""
    lo = max(_earliest_cut(seen, baseline), baseline.end - SAME_START)
    new = [t for t in seen.values() if lo <= t < baseline.end]
    return Window(baseline.start, min(new)) if new else baseline


def _appeared_in(seen: dict[tuple[str, str], datetime], baseline: Window, attributions: Sequence[Attribution]) -> datetime | None:
    """The earliest first appearance inside the baseline, leaving MIN_BASELINE of calls before it,
    of a leading suspect (top 3) whose calls there were already changed (`_changed_early`)."""
    firsts = [s.first_seen for a in attributions for s in a.suspects[:3] if s.first_seen is not None and _changed_early(s, a)]
    return min((t for t in firsts if _earliest_cut(seen, baseline) <= t < baseline.end), default=None)


def _changed_early(suspect: Suspect, attribution: Attribution) -> bool:
    """Whether the suspect's calls in the baseline (those since it appeared) sat nearer the
    incident's level than the baseline's, or there were none to tell: then the change came with
    it and was only detected later. A value whose calls stayed at the baseline's level until the
    start (a prompt published half an hour before a deploy) did not bring the change."""
    if suspect.baseline_value is None:
        return True
    return abs(suspect.baseline_value - attribution.incident_value) < abs(suspect.baseline_value - attribution.baseline_value)


def _earliest_cut(seen: dict[tuple[str, str], datetime], baseline: Window) -> datetime:
    """Where a baseline may end at the earliest: MIN_BASELINE after its start or after the scope's
    first call (the earliest first appearance), whichever is later; values seen from the first
    calls on are no newcomers."""
    return max(baseline.start, min(seen.values(), default=baseline.start)) + MIN_BASELINE


def _attribute_group(store: Store, filters: Filters, regressions: Sequence[Regression], baseline: Window,
                     incident: Window, seen: dict[tuple[str, str], datetime]) -> list[Attribution | str]:  # fmt: skip
    """attribute_many for regressions sharing windows; one signal without enough data is attributed alone."""
    attribute = functools.partial(attribute_many, store, baseline=baseline, incident=incident, filters=filters, exemplars=False, seen=seen)
    try:
        found = attribute([r.signal for r in regressions])
        return [found[r.signal] for r in regressions]
    except (AnalysisError, NoDataError):
        out: list[Attribution | str] = []
        for r in regressions:
            try:
                out.append(attribute([r.signal])[r.signal])
            except (AnalysisError, NoDataError) as exc:
                out.append(f"Not attributed: {exc}")
        return out


def _finding(r: Regression, attributed: Attribution | str) -> Finding:
    """A regression with its attribution and runbook (the chart comes once symptoms are grouped)."""
    kind, runbook = finding_type(r.signal)
    attribution = attributed if isinstance(attributed, Attribution) else None
    note = attributed if isinstance(attributed, str) else None
    return Finding(kind, r, attribution, runbook_link(runbook), None, note)


def _exemplified(store: Store, filters: Filters, finding: Finding) -> Finding:
    """The finding with exemplar trace ids on its leading suspects: only for the findings that
    remain once symptoms are grouped (a symptom's suspects are not shown)."""
    if finding.attribution is None:
        return finding
    return replace(finding, attribution=with_exemplars(store, finding.attribution, narrowed(filters, finding.regression)))


def _charted(store: Store, window: Window, filters: Filters, finding: Finding) -> Finding:
    """The finding with its chart: the signal inside and outside its top suspect's segment."""
    return replace(finding, chart=split_chart(store, window, filters, finding.regression, finding.top_suspect))


SAME_START = timedelta(minutes=15)
"""Regressions starting this close together with the same top suspect are one incident."""


def stepped_tenants_first(findings: Sequence[Finding]) -> list[Finding]:
    """Each finding a tenant's share step found (`Regression.share_step`) led by that tenant where
    its suspects list it explaining at least half as much as the top one: the step's own test
    measured what the tenant's growth explains, and a pair narrowing it (one model's calls of that
    tenant) is a part of the same growth, ranked first on a handful of baseline calls."""
    return [_led_by_step(f) if f.regression.share_step is not None else f for f in findings]


def _led_by_step(finding: Finding) -> Finding:
    """The finding led by the tenant its share step names, where `stepped_tenants_first` says so."""
    attribution, label = finding.attribution, finding.regression.anchor
    suspects = attribution.suspects if attribution else ()
    at = next((i for i, s in enumerate(suspects) if s.label == label and s.explained_share >= suspects[0].explained_share / 2), None)
    return finding if at is None or attribution is None else _raised(finding, attribution, at)


def changes_over_buckets(findings: Sequence[Finding]) -> list[Finding]:
    """Each finding led by a bucket of a measured column (`input_confidence=high`) while that
    column did not regress, led instead by a suspect a change lines up with (`_lined_up`) that
    explains at least half as much. Without the column's own regression to carry it (`_mediates`),
    the bucket only describes which calls got worse (most of a route's OCR reads are confident),
    and the new snapshot those calls moved to is what to act on."""
    regressed = {get_signal(f.regression.signal).column for f in findings}
    return [_led_by_change(f) if _bucket_only(f.top_suspect, regressed) else f for f in findings]


def _bucket_only(suspect: Suspect | None, regressed: set[str | None]) -> bool:
    """Whether the suspect is made only of buckets of measured columns none of which regressed."""
    return suspect is not None and all(BUCKETED_FROM.get(d) not in (None, *regressed) for d in suspect.dimensions)


def _led_by_change(finding: Finding) -> Finding:
    """The finding led by its first suspect with no bucket that a change lines up with and that
    explains at least half of what its top suspect does, if any."""
    attribution, start = finding.attribution, finding.regression.started_at
    suspects = attribution.suspects if attribution else ()
    at = next((i for i, s in enumerate(suspects) if not set(s.dimensions) & BUCKETED_FROM.keys() and _lined_up(s, start)
               and s.explained_share >= suspects[0].explained_share / 2), None)  # fmt: skip
    return finding if at is None or attribution is None else _raised(finding, attribution, at)


def _raised(finding: Finding, attribution: Attribution, at: int) -> Finding:
    """The finding with its attribution's suspect `at` ranked first, the others in their order."""
    suspects = attribution.suspects
    return replace(finding, attribution=replace(attribution, suspects=(suspects[at], *suspects[:at], *suspects[at + 1 :])))


def corroborated(findings: Sequence[Finding]) -> list[Finding]:
    """Each finding whose top suspect is outside its root-cause set, led instead by a suspect of
    it that another finding starting within SAME_START names as its top suspect, where the
    stopping rule put that suspect in the root-cause set of one of the two, or where it explains at
    least as much of this finding's change as the top suspect (which then ranks first only for
    lining up closer with this finding's start): one incident has one cause, and a second signal
    speaks for it (an index rebuild three quality scores fell with, over a prompt published on one
    of their routes two minutes later; an ASR deploy that moved confidence, over a prompt edited
    minutes before it or an index rebuilt minutes after it). A top suspect in the finding's own
    root-cause set yields only to a cause another finding decided on more calls, explaining at least
    half as much here (user feedback on 450 scored calls put a deploy ten minutes before a silent
    model swap first, the swap close behind; TTFT on 5,000 calls decided the swap)."""
    return [_led_by_corroborated(f, findings) for f in findings]


def _led_by_corroborated(finding: Finding, findings: Sequence[Finding]) -> Finding:
    """The finding, its suspects re-ranked where `corroborated` says so."""
    attribution = finding.attribution
    if attribution is None or not attribution.suspects:
        return finding
    suspects = attribution.suspects
    others = [(g, g.top_suspect) for g in findings if g is not finding and g.top_suspect is not None and _together(g, finding) and not _anchored_later(g, finding)]
    if suspects[0].root_cause:  # decided here: only a cause another finding decided on more calls outweighs it
        others = [(g, top) for g, top in others if top.root_cause and g.regression.calls > finding.regression.calls]
    named, decided = {top.label for _, top in others}, {top.label for _, top in others if top.root_cause}
    at = next((i for i, s in enumerate(suspects) if s.label in named and ((s.root_cause or s.label in decided)
               and s.explained_share >= suspects[0].explained_share / 2 or _share(s) >= _share(suspects[0]))), None)  # fmt: skip
    return finding if at is None else _raised(finding, attribution, at)


def _share(suspect: Suspect) -> float:
    """The suspect's explained share before capping: of two that both explain all, the larger."""
    return suspect.explained_share if suspect.uncapped_share is None else suspect.uncapped_share


def _anchored_later(other: Finding, finding: Finding) -> bool:
    """Whether `other` was found at a change's moment later than `finding` starts: its baseline
    runs up to that moment and so holds the start of the shift, which makes the change there look
    the cause; it does not speak for a suspect against a finding dated from the shift itself."""
    return other.regression.anchor is not None and other.regression.started_at > finding.regression.started_at


def group_symptoms(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per incident: a later finding that starts within SAME_START of an earlier one and
    has the same top suspect (error_rate with rate_limit_rate, TTFT p50/p95/p99), or counts the
    earlier one's top suspect in its own root-cause set, becomes its symptom; so does one carried
    by another (`_mediates`, which has its own test of time)."""
    out: list[Finding] = []
    for f in _mediators_first(findings):
        causes = {s.label for s in _causes(f)}
        lead = next((i for i, g in enumerate(out) if _together(g, f) and g.top_suspect is not None and g.top_suspect.label in causes
                     or _mediates(g, f)), None)  # fmt: skip
        if lead is None:
            out.append(f)
        else:
            out[lead] = replace(out[lead], symptoms=(*out[lead].symptoms, f.regression))
    return out


def _mediators_first(findings: Sequence[Finding]) -> list[Finding]:
    """Each finding carried by a later one (`_mediates`) yields its place to it."""
    out = list(findings)
    for f in findings:
        at = next(i for i, g in enumerate(out) if g is f)
        carrier = next((j for j in range(at + 1, len(out)) if _mediates(out[j], f)), None)
        if carrier is not None:
            out.insert(at, out.pop(carrier))
    return out


def _mediates(carrier: Finding, finding: Finding) -> bool:
    """Whether `finding` is led by a bucket of a measured column (`input_confidence=low`: answers on
    poor transcripts got worse) while `carrier` is that column's own regression with a suspect of
    its own: the confidence drop carries the quality drop, and what moved the confidence (a deploy)
    is the cause to act on. The two start within SAME_START, or the carrier started first and the
    finding names its suspect among its own (a sparse score's drop is often dated later than the
    deploy that caused it). The bucket may come paired with the carrier's own suspect (the
    low-confidence calls of the new deploy: the same calls, where the deploy lines up with the start)."""
    top, cause = finding.top_suspect, carrier.top_suspect
    if top is None or cause is None or any(d in BUCKETED_FROM for d in cause.dimensions):
        return False
    buckets = [d for d in top.dimensions if d in BUCKETED_FROM]
    rest = {(d, v) for d, v in zip(top.dimensions, top.values) if d not in BUCKETED_FROM}
    if len(buckets) != 1 or not rest <= set(zip(cause.dimensions, cause.values)):
        return False
    if get_signal(carrier.regression.signal).column != BUCKETED_FROM[buckets[0]]:
        return False
    named = finding.attribution is not None and any(s.label == cause.label for s in finding.attribution.suspects)
    return _together(carrier, finding) or carrier.regression.started_at <= finding.regression.started_at and named


def _together(one: Finding, other: Finding) -> bool:
    """Whether the two regressions start within SAME_START of each other (one incident's signals)."""
    return abs(one.regression.started_at - other.regression.started_at) <= SAME_START


def changes_first(findings: Sequence[Finding]) -> list[Finding]:
    """The findings in `detect`'s order, but those a change lines up with (`_on_change`) before
    those none does, short of the ones only a test at a change's moment found, which stay last: a
    change is what on-call can act on, and a shift no new value or annotated change explains is
    more often the day's load (latency creeping up with a morning ramp) than the incident."""
    return sorted(findings, key=lambda f: (f.regression.anchor is not None, not _on_change(f)))


def _on_change(finding: Finding) -> bool:
    """Whether the finding's top suspect or one of its root-cause set lines up with its start (`_lined_up`)."""
    return any(_lined_up(s, finding.regression.started_at) for s in _causes(finding))


def _lined_up(suspect: Suspect, start: datetime) -> bool:
    """Whether the suspect is an annotated change lined up with `start` or a value first seen within SAME_START of it."""
    return suspect.aligned_change is not None or suspect.first_seen is not None and abs(suspect.first_seen - start) <= SAME_START


def _causes(finding: Finding) -> list[Suspect]:
    """The finding's top suspect and its root-cause set."""
    suspects = finding.attribution.suspects if finding.attribution else ()
    return [s for i, s in enumerate(suspects) if i == 0 or s.root_cause]


def measure_impact(store: Store, window: Window, filters: Filters, lead: Finding, *, slo: float) -> Impact:
    """Calls, tenants, failures and spend while the lead finding lasted (its change point to its end).

    Affected calls are those in its top suspect's segment; the summary line speaks of them.
    """
    period = Window(lead.regression.started_at, lead.regression.ended_at or window.end)
    top = lead.top_suspect
    segment, segment_params = segments_sql([top] if top else [])
    where, params = window_parameters(window, filters)
    params |= segment_params | {"i_start": period.start, "i_end": period.end}
    row = store.rows(render("incident_impact", filters=where, segment=segment), params)[0]
    (calls, affected, tenants, failed, window_calls, base_cpc, inc_cpc, costed, tax_tokens, tax_cost, computed) = row
    budget = (1 - slo) * window_calls
    extra = (inc_cpc - base_cpc) * costed if inc_cpc is not None and base_cpc is not None else 0.0
    return Impact(
        period=period,
        calls=int(calls),
        affected_calls=int(affected),
        affected_basis=f"in the top suspect's segment, {top.label}" if top else "every call in scope during the incident",
        tenants=tuple(tenants),
        failed_calls=int(failed),
        slo=slo,
        error_budget_burned=failed / budget if budget else 0.0,
        baseline_cost_per_call=base_cpc,
        incident_cost_per_call=inc_cpc,
        extra_cost=float(extra),
        cancellation_tax_tokens=int(tax_tokens),
        cancellation_tax_cost=float(tax_cost or 0.0),
        evidence=Evidence("incident_impact", params),
        computed_cost_share=float(computed or 0.0),
    )


def summary_line(window: Window, filters: Filters, calls: int, findings: Sequence[Finding], impact: Impact | None,
                 silent: Sequence[str]) -> str:  # fmt: skip
    """One line for the incident channel: what regressed since when, the top suspect, the damage."""
    scope = ", ".join(f"{v}" for v in vars(filters).values() if v is not None)
    scope = f" on {scope}" if scope else ""
    if not findings:
        return f"driftline: no regression{scope} between {stamp(window.start)} and {stamp(window.end)} ({calls:,} calls)."
    first = findings[0]
    r = first.regression
    where = f" on {r.where}" if r.slice is not None else ""
    text = f"driftline: {r.signal} {r.direction} {abs(r.relative_change):.0%}{scope}{where} since {stamp(r.started_at)}"
    text += f" ({r.baseline:.3g} → {r.current:.3g})"
    top = first.top_suspect
    if top is not None:
        why = "possible silent provider update, " if top.label in silent else ""
        text += f"; top suspect {top.label} ({why}explains {top.explained_share:.0%})"
        also = [r.signal for r in first.symptoms] + [f.regression.signal for f in findings[1:] if f.top_suspect is not None and f.top_suspect.label == top.label]
        text += f", also behind {', '.join(also)}" if also else ""
    if impact is not None:
        text += f"; {impact.affected_calls:,} calls and {len(impact.tenants)} tenants affected"
        if impact.extra_cost > 0 or impact.cancellation_tax_cost > 0:
            text += f", extra cost ${impact.extra_cost:,.2f} (cancellation tax ${impact.cancellation_tax_cost:,.2f})"
    more = len(findings) - 1
    return text + (f"; {more} more regression{'s' if more > 1 else ''}." if more else ".")


def follow_ups(findings: Sequence[Finding], silent: Sequence[str]) -> list[str]:
    """Suggested action items (the lead finding's suspect, each runbook once); humans decide, own and date them."""
    items = []
    top = findings[0].top_suspect if findings else None
    if top is not None and top.label in silent:
        items.append(f"Confirm with the provider that {top.label} now answers behind the alias; pin a dated model version.")
        items.append("Annotate the provider change (`driftline annotate model …`) so the next report names it.")
    elif top is not None:
        items.append(f"Confirm that {top.label} caused {findings[0].regression.signal}; roll it back or fix forward.")
    runbooks: dict[str, list[str]] = {}
    for f in findings:
        if f.runbook is not None:
            runbooks.setdefault(f.runbook.path, []).append(f.regression.signal)
    items += [f"Follow {path} ({', '.join(signals)})." for path, signals in runbooks.items()]
    return items


def segments_sql(suspects: Sequence[Suspect]) -> tuple[str, dict[str, Any]]:
    """`(dim = {s0_0:String} AND …) OR …` over allow-listed dimensions: any of the suspects' segments.

    With no suspect the predicate is `1` (every call).
    """
    clauses, params = segment_conditions([(s.dimensions, s.values) for s in suspects], "s")
    return (" OR ".join(clauses) or "1"), params


def split_chart(store: Store, window: Window, filters: Filters, r: Regression, top: Suspect | None) -> Chart:
    """The regressed signal per bucket, inside the top suspect's segment and outside it (one query)."""
    spec = get_signal(r.signal)
    bucket = default_bucket(window)
    match, params = segments_sql([top] if top else [])
    parts = [("all calls", spec)] if top is None else [
        (f"{top.label} (top suspect)", replace(spec, den=f"({spec.den}) AND ({match})")),
        ("all other calls", replace(spec, den=f"({spec.den}) AND NOT ({match})")),
    ]  # fmt: skip
    columns = "".join(f",\n       {s.value_sql} AS v{i}, {s.calls_sql} AS c{i}" for i, (_, s) in enumerate(parts))
    where, fparams = filter_sql(filters)
    query = render("by_bucket", columns=columns, source=source_sql(spec, with_dimensions=True, filters=filters), filters=where)
    params |= fparams | bucket_params(window, bucket) | scope_params(spec, window.start, window.end)
    rows = {utc(row[0]): row[1:] for row in store.rows(query, params)}
    grid = full_grid(window, bucket)
    lines = tuple(
        ChartLine(name, tuple(_number(rows[t][2 * i]) if t in rows else None for t in grid),
                  tuple(int(rows[t][2 * i + 1]) if t in rows else 0 for t in grid))
        for i, (name, _) in enumerate(parts)
    )  # fmt: skip
    markers = [Marker(r.started_at, f"{r.signal} change point {r.started_at:%H:%M} UTC")]
    if top is not None and top.first_seen is not None and top.first_seen > window.start:
        first = f"first {top.label} {top.first_seen:%H:%M} UTC"
        if abs(top.first_seen - r.started_at) >= bucket:
            markers.append(Marker(top.first_seen, first))
        else:  # the same moment on this axis: one line, both labels
            markers[0] = Marker(r.started_at, f"{first}; {markers[0].label}")
    return Chart(r.signal, tuple(grid), lines, tuple(markers), Evidence("by_bucket", params))


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
