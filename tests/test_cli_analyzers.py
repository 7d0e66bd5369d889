"""`driftline detect` and `driftline attribute` through click's CliRunner on the session engine."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from test_detect import T0, _judged_routes, _traffic

from driftline.analyzers.cli import cli
from driftline.analyzers.evaluation._scenarios import Scenario
from driftline.collector import Store


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _scope(store: Store, s: Scenario) -> list[str]:
    return ["--store", store.url, "--service", s.service]


@pytest.fixture
def incident(scenario_store: tuple[Store, list[Scenario]]) -> tuple[Store, Scenario]:
    store, scenarios = scenario_store
    return store, next(s for s in scenarios if s.cause == "silent_update")


def test_detect_prints_the_regressed_signal_and_when_it_started(incident: tuple[Store, Scenario]) -> None:
    store, s = incident
    code, out, _ = _run("detect", *_scope(store, s), "--since", s.start.isoformat(), "--until", s.end.isoformat(), "--bucket", "10m")
    assert code == 0
    assert "quality:faithfulness" in out and "started" in out and "UTC" in out
    code, out, _ = _run("detect", *_scope(store, s), "--since", s.start.isoformat(), "--until", s.end.isoformat(), "--json")
    regressions = json.loads(out)["regressions"]
    assert code == 0 and regressions[0]["signal"] == "quality:faithfulness" and regressions[0]["direction"] == "down"


def test_attribute_ranks_the_cause_in_a_table_and_in_json(incident: tuple[Store, Scenario]) -> None:
    store, s = incident
    assert s.incident_start is not None
    window = ["--since", s.incident_start.isoformat(), "--until", s.end.isoformat(), "--baseline", s.start.isoformat()]
    code, out, _ = _run("attribute", "--signal", s.signal, *_scope(store, s), *window)
    assert code == 0
    lines = out.splitlines()
    first_row = lines[next(i for i, line in enumerate(lines) if set(line) == {"-", " "}) + 1]
    assert any(f"{d}={v}" in first_row for (d, v), in s.truth) and "worse" in first_row
    assert "worst calls (trace ids)" in out
    code, out, _ = _run("attribute", "--signal", s.signal, *_scope(store, s), *window, "--json", "--top", "3")
    data = json.loads(out)
    assert code == 0 and len(data["suspects"]) == 3 and data["signal"] == s.signal
    assert data["incident_value"] < data["baseline_value"]


def test_unknown_signal_is_bad_usage_listing_the_valid_ones(incident: tuple[Store, Scenario]) -> None:
    store, _ = incident
    for command in (["detect"], ["attribute", "--since", "1h"]):
        code, _, err = _run(*command, "--signal", "quality", "--store", store.url)
        assert code == 2 and "error_rate" in err and "quality:<evaluation name>" in err


def test_empty_window_exits_4_and_a_reversed_window_exits_2(incident: tuple[Store, Scenario]) -> None:
    store, s = incident
    far = (s.end + timedelta(days=300)).isoformat()
    code, _, err = _run("detect", *_scope(store, s), "--since", far, "--until", (s.end + timedelta(days=301)).isoformat())
    assert code == 4 and err.startswith("error: no calls")
    code, _, err = _run("attribute", "--signal", "error_rate", *_scope(store, s), "--since", far, "--until", (s.end + timedelta(days=301)).isoformat())
    assert code == 4 and "no error_rate data" in err
    code, _, err = _run("detect", *_scope(store, s), "--since", s.end.isoformat(), "--until", s.start.isoformat())
    assert code == 2 and "empty window" in err
    code, _, err = _run("attribute", "--signal", "error_rate", *_scope(store, s), "--since", "2h", "--baseline", "2026-13-01")
    assert code == 2 and "not a time" in err


def test_commands_have_help_with_an_example() -> None:
    for command in ("detect", "attribute"):
        code, out, _ = _run(command, "--help")
        assert code == 0 and "Example:" in out and f"driftline {command} " in out


def test_detect_says_which_change_a_finding_was_tested_at(store: Store) -> None:
    """A drop only the test at prompt v2's first appearance finds is named with it, in the table and the JSON."""
    _judged_routes(store, np.random.default_rng(0), small_drop=0.06, new_prompt=True)
    window = ["--store", store.url, "--since", T0.isoformat(), "--until", (T0 + timedelta(hours=6)).isoformat(), "--signal", "quality:faithfulness"]
    code, out, _ = _run("detect", *window)
    assert code == 0 and "quality:faithfulness on route=/small: found at the first appearance of prompt_version=v2" in out
    code, out, _ = _run("detect", *window, "--json")
    [found] = json.loads(out)["regressions"]
    assert code == 0 and found["anchor"] == "prompt_version=v2" and found["slice"] == {"dimension": "route", "value": "/small"}


def test_provider_narrows_detect_to_one_providers_calls(store: Store) -> None:
    """Errors x20 on the provider carrying 5% of the calls: under --provider small they are the
    whole scope's regression; under --provider openai there is none."""
    _traffic(store, np.random.default_rng(0), small_errors_after=0.2)
    window = ["--since", T0.isoformat(), "--until", (T0 + timedelta(hours=6)).isoformat(), "--signal", "error_rate", "--json", "--store", store.url]
    code, out, _ = _run("detect", "--provider", "small", *window)
    [found] = json.loads(out)["regressions"]
    assert code == 0 and found["slice"] is None and found["current"] > 0.1
    code, out, _ = _run("detect", "--provider", "openai", *window)
    assert code == 0 and json.loads(out)["regressions"] == []
