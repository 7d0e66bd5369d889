"""Score the incident report (the on-call path) on labelled scenarios from any world.

Each scenario goes into a fresh embedded store, `incident_report` runs over its window and
service, and the report is judged as the on-call engineer would read it: did any finding name a
signal the incident moves (detection), is the lead finding right about both the signal and its
top suspect (precision@1), and how many findings point at something that did not happen (false
findings; on a control, every finding). Findings are read through attributes only, so a
hand-built report-like object scores the same way (the tests rely on that).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._labels import Label, LabelledScenario

__all__ = ["ReportOutcome", "ReportScores", "evaluate_reports", "finding_signals", "score_report", "suspect_labels"]

GROUPED = ("symptoms", "signals", "grouped")
"""Finding attributes that may list further signals grouped under one finding."""


@dataclass(frozen=True)
class ReportOutcome:
    """How the report did on one scenario."""

    scenario: str
    kind: str
    world: str
    incident: bool
    detected: bool
    lead_correct: bool
    false_findings: int
    findings: int
    lead_signal: str | None
    lead_suspect: str | None
    seconds: float = 0.0


@dataclass(frozen=True)
class ReportScores:
    """Report metrics over a set of outcomes; incidents count for detection and p@1, every report for false findings."""

    outcomes: tuple[ReportOutcome, ...]

    @property
    def incidents(self) -> list[ReportOutcome]:
        return [o for o in self.outcomes if o.incident]

    @property
    def controls(self) -> list[ReportOutcome]:
        return [o for o in self.outcomes if not o.incident]

    @property
    def detection_rate(self) -> float | None:
        return _share(o.detected for o in self.incidents)

    @property
    def precision_at_1(self) -> float | None:
        return _share(o.lead_correct for o in self.incidents)

    @property
    def false_findings_per_report(self) -> float | None:
        return sum(o.false_findings for o in self.outcomes) / len(self.outcomes) if self.outcomes else None

    @property
    def controls_with_findings(self) -> int:
        return sum(o.findings > 0 for o in self.controls)

    @property
    def misses(self) -> list[ReportOutcome]:
        """Incidents whose lead was wrong, and controls with any finding."""
        return [o for o in self.outcomes if (o.incident and not o.lead_correct) or (not o.incident and o.findings)]

    def by(self, key: Callable[[ReportOutcome], str]) -> dict[str, ReportScores]:
        """The scores split by `key` (e.g. kind or world), in first-seen order."""
        groups: dict[str, list[ReportOutcome]] = {}
        for o in self.outcomes:
            groups.setdefault(key(o), []).append(o)
        return {k: ReportScores(tuple(v)) for k, v in groups.items()}

    def by_kind(self) -> dict[str, ReportScores]:
        return self.by(lambda o: o.kind)

    def by_world(self) -> dict[str, ReportScores]:
        return self.by(lambda o: o.world)


def _share(values: Iterable[bool]) -> float | None:
    got = list(values)
    return sum(got) / len(got) if got else None


def finding_signals(finding: Any) -> set[str]:
    """The finding's own signal and any it groups (symptoms), whether listed as names or as objects with a signal."""
    out = {finding.regression.signal}
    for attr in GROUPED:
        for item in getattr(finding, attr, None) or ():
            name = item if isinstance(item, str) else getattr(item, "signal", None) or getattr(getattr(item, "regression", None), "signal", None)
            if isinstance(name, str):
                out.add(name)
    return out


def suspect_labels(suspect: Any) -> list[Label]:
    """The suspect's segment and every equivalent one (segments selecting the same calls)."""
    pairs = [(suspect.dimensions, suspect.values), *(getattr(suspect, "equivalents", None) or ())]
    return [frozenset(zip(dims, values)) for dims, values in pairs]


def _top_suspect(finding: Any) -> Any:
    attribution = getattr(finding, "attribution", None)
    suspects = getattr(attribution, "suspects", None) or ()
    return suspects[0] if suspects else None


def _label(suspect: Any) -> str | None:
    return None if suspect is None else ", ".join(f"{d}={v}" for d, v in zip(suspect.dimensions, suspect.values))


def score_report(report: Any, scenario: LabelledScenario, seconds: float = 0.0) -> ReportOutcome:
    """Judge one report (None: no data, no findings) against the scenario's labels."""
    findings = list(getattr(report, "findings", None) or ())
    wanted = set(scenario.signals)
    right_signal = [bool(finding_signals(f) & wanted) for f in findings]
    lead = findings[0] if findings else None
    top = _top_suspect(lead) if lead is not None else None
    cause_ok = top is not None and any(label in scenario.causes for label in suspect_labels(top))
    return ReportOutcome(
        scenario=scenario.name, kind=scenario.kind, world=scenario.world, incident=scenario.incident,
        detected=scenario.incident and any(right_signal),
        lead_correct=scenario.incident and bool(right_signal) and right_signal[0] and cause_ok,
        false_findings=len(findings) if not scenario.incident else right_signal.count(False),
        findings=len(findings), lead_signal=None if lead is None else lead.regression.signal, lead_suspect=_label(top), seconds=seconds,
    )  # fmt: skip


def run_report(scenario: LabelledScenario, directory: Path) -> Any:
    """Write the scenario into a fresh store under `directory` and return the on-call's report (None if no data)."""
    from driftline.analyzers import Filters, Window, incident_report
    from driftline.collector import NoDataError, connect, migrate

    store = connect(f"chdb://{directory}/s")
    try:
        migrate(store)
        scenario.write(store)
        try:
            return incident_report(store, Window(scenario.start, scenario.end), filters=Filters(service=scenario.service))
        except NoDataError:
            return None
    finally:
        store.close()


def evaluate_reports(scenarios: Sequence[LabelledScenario], *, progress: Callable[[ReportOutcome], None] | None = None) -> ReportScores:
    """Write every scenario into its own fresh store, run the incident report on it, and score it."""
    outcomes = []
    for scenario in scenarios:
        tmp = Path(tempfile.mkdtemp(prefix="driftline-eval-"))
        try:
            started = time.perf_counter()
            report = run_report(scenario, tmp)
            outcome = score_report(report, scenario, time.perf_counter() - started)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return ReportScores(tuple(outcomes))
