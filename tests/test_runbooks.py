"""Runbooks ship with the package, each covers its failure mode, and the CLI shows them."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from driftline.analyzers.cli import cli
from driftline.runbooks import _loader as _runbooks

SECTIONS = ("Symptoms", "Dashboard", "Run", "Decide", "Mitigate", "Verify recovery", "Record for the post-mortem")
FAILURE_MODES = (
    "quality-regression", "ttft-regression", "provider-outage-429", "cancellation-tax", "streaming-stalls",
    "asr-ocr-confidence", "structured-output-failures", "cost-spike", "db-pool-exhaustion",
)  # fmt: skip


def test_runbooks_cover_every_failure_mode() -> None:
    assert set(FAILURE_MODES) <= set(_runbooks.names())


@pytest.mark.parametrize("name", FAILURE_MODES)
def test_runbook_has_every_section_and_a_command(name: str) -> None:
    book = _runbooks.get(name)
    headings = re.findall(r"^## (.+)$", book.text, flags=re.M)
    assert list(SECTIONS) == headings
    assert _runbooks.commands(book), f"{name} runs no driftline command"
    assert "| risk |" in book.text, f"{name} gives mitigations without their risks"


def test_runbook_cross_references_resolve() -> None:
    for book in _runbooks.runbooks():
        for ref in re.findall(r"see `([a-z0-9-]+)`", book.text):
            assert _runbooks.get(ref).name == ref


def test_runbook_list_names_every_runbook() -> None:
    result = CliRunner().invoke(cli, ["runbook", "list"])
    assert result.exit_code == 0
    for name in _runbooks.names():
        assert name in result.output


def test_runbook_show_renders_headings_and_code_without_fences() -> None:
    result = CliRunner().invoke(cli, ["runbook", "show", "cost-spike"])
    assert result.exit_code == 0
    assert "SYMPTOMS" in result.output
    assert "```" not in result.output
    assert "    driftline detect" in result.output


def test_runbook_show_unknown_name_lists_the_valid_ones() -> None:
    result = CliRunner().invoke(cli, ["runbook", "show", "no-such-thing"])
    assert result.exit_code != 0
    assert "quality-regression" in result.output


def test_every_finding_type_links_a_runbook_that_ships() -> None:
    from driftline.analyzers._report import FINDING_TYPES, finding_type
    from driftline.analyzers._signals import CALL_SIGNALS

    for _prefix, _kind, name in FINDING_TYPES:
        assert _runbooks.get(name).name == name
    for signal in [*CALL_SIGNALS, "quality:answer_quality"]:
        kind, name = finding_type(signal)
        assert name is not None, f"signal {signal} has no finding type with a runbook"
        _runbooks.get(name)


@pytest.mark.parametrize("name", FAILURE_MODES)
def test_runbook_dashboard_panels_exist(name: str) -> None:
    from driftline.dashboards import _check as _dashboards

    titles = {d["title"].removeprefix("driftline / "): {p.get("title") for p in _dashboards._panels(d)} for d in _dashboards.load().values()}
    refs = _runbooks.panel_references(_runbooks.get(name))
    assert refs, f"{name} names no dashboard panel to open"
    for dashboard, panel in refs:
        assert dashboard in titles, f"{name}: no dashboard {dashboard!r}"
        assert panel in titles[dashboard], f"{name}: dashboard {dashboard!r} has no panel {panel!r}"
