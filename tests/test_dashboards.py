"""The Grafana dashboards work the first time they are loaded: checked without Grafana.

The demo simulation writes a day of realistic calls (through the real hooks) into a database of
the session's engine; every panel, annotation and variable query is expanded as Grafana and the
ClickHouse plugin would and run there.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from driftline.analyzers.cli import cli
from driftline.analyzers.demo._run import run_demo
from driftline.collector import Store, connect, migrate
from driftline.dashboards import _check as _dashboards
from driftline.runbooks import _loader as _runbooks

ROOT = Path(__file__).resolve().parent.parent
END = datetime.now(UTC).replace(microsecond=0)
START = END - timedelta(hours=24)
SIGNALS = ("quality", "error_rate", "rate_429", "latency_p95", "ttft_p95", "stall_p95", "cancellation",
           "cost_per_call", "structured_output_failures", "low_confidence")  # fmt: skip


@pytest.fixture(scope="module")
def demo_store(engine_dir: Path) -> Iterator[Store]:
    """A migrated database holding 26 hours of the demo's simulated app, ending at END."""
    store = connect(f"chdb://{engine_dir}?database=t_dash_{uuid.uuid4().hex[:8]}")
    migrate(store)
    run_demo(store, calls=1500, seed=11, hours=26, end=END)
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.client.database}")
    store.close()


@pytest.fixture(scope="module")
def report(demo_store: Store) -> _dashboards.Report:
    return _dashboards.check(demo_store, start=START, end=END)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_dashboards._panels(dashboard))


def test_dashboard_json_is_built_from_the_specs() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "dashboards" / "build.py"), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_three_dashboards_ship_as_package_data() -> None:
    dashboards = _dashboards.load()
    assert {d["title"] for d in dashboards.values()} == {
        "driftline / LLM service overview", "driftline / Quality and changes", "driftline / Incident drill-down"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(_dashboards.load()))
def test_dashboard_structure_has_no_problem(name: str) -> None:
    dashboard = _dashboards.load()[name]
    assert _dashboards.structure_problems(dashboard) == []
    for panel in _panels(dashboard):
        assert panel["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
        assert panel["description"] and panel["links"], panel["title"]


def test_structure_check_catches_what_would_break_a_first_load() -> None:
    broken = copy.deepcopy(_dashboards.load()["quality-changes.json"])
    panel = _panels(broken)[0]
    panel["datasource"] = {"type": "grafana-clickhouse-datasource", "uid": "P1234"}
    panel["links"] = []
    panel["targets"][0]["rawSql"] += " AND x = $nowhere"
    del panel["fieldConfig"]["defaults"]["unit"]
    broken["annotations"]["list"][1]["filter"] = {"exclude": False, "ids": [2]}
    problems = "\n".join(_dashboards.structure_problems(broken))
    for expected in ("uid = 'P1234'", "no runbook link", "undefined variable $nowhere", "no unit", "not enabled on every panel"):
        assert expected in problems


def test_changes_annotate_every_time_series_panel() -> None:
    for dashboard in _dashboards.load().values():
        changes = [a for a in _dashboards._annotations(dashboard) if "FROM changes" in a["target"]["rawSql"]]
        assert len(changes) == 1 and changes[0]["enable"] and "filter" not in changes[0]


def test_every_panel_query_runs_on_demo_data_with_the_right_shape(report: _dashboards.Report) -> None:
    assert report.problems == []
    ran = {(q.dashboard, q.title) for q in report.queries if q.variant == "filters: All" and q.rows > 0}
    for name, dashboard in _dashboards.load().items():
        for panel in _panels(dashboard):
            title = _dashboards.interpolate_title(panel["title"], {})
            assert any(d == name and (t == title or "$" in title) for d, t in ran), (name, title)


def test_each_drilldown_signal_and_dimension_returns_data(report: _dashboards.Report) -> None:
    drill = [q for q in report.queries if q.dashboard == "incident-drilldown.json" and q.kind != "variable"]
    for variant in [f"signal={s}" for s in SIGNALS[1:]] + ["dimension=prompt_version", "dimension=confidence_bucket", "baseline_offset=3600"]:
        runs = [q for q in drill if q.variant == variant]
        assert runs and all(q.rows > 0 and q.problem is None for q in runs), variant


def test_narrow_filters_expand_to_quoted_in_lists(report: _dashboards.Report) -> None:
    narrow = [q for q in report.queries if q.variant == "filters: first value" and q.dashboard == "llm-overview.json" and q.kind != "variable"]
    assert narrow and all("service IN ('" in q.sql and "$" not in q.sql for q in narrow)
    assert sum(q.rows > 0 for q in narrow) >= len(narrow) // 2  # cascading filters pick values that occur together


def test_baseline_and_now_both_appear_in_the_drilldown(report: _dashboards.Report) -> None:
    table = next(q for q in report.queries if q.dashboard == "incident-drilldown.json" and q.variant == "baseline_offset=3600" and q.kind == "table" and "baseline vs now" in q.title)
    assert {"value", "baseline", "now", "change", "share_now"} <= set(table.columns)


def test_exemplar_traces_open_in_the_trace_view(demo_store: Store, report: _dashboards.Report) -> None:
    traces = [q for q in report.queries if q.kind == "traces"]
    assert traces and all(q.problem is None and q.rows > 0 for q in traces)
    assert set(_dashboards.TRACE_COLUMNS) <= set(traces[0].columns)
    frame = demo_store.df(traces[0].sql)
    assert frame["traceID"].nunique() == 1 and (frame["parentSpanID"] == "").sum() >= 1
    exemplars = next(p for p in _panels(_dashboards.load()["incident-drilldown.json"]) if p["title"] == "Exemplar calls")
    links = exemplars["fieldConfig"]["overrides"][0]["properties"][0]["value"]
    explore = next(link for link in links if "internal" in link)["internal"]
    assert explore["datasourceUid"] == "${datasource}" and explore["query"]["format"] == 3 and explore["query"]["queryType"] == "traces"
    assert "'${__value.raw}' AS __trace_id" in explore["query"]["rawSql"]


def test_annotations_show_the_demo_changes(demo_store: Store, report: _dashboards.Report) -> None:
    changes = [q for q in report.queries if q.kind == "annotation" and q.title == "annotation Changes" and q.variant == "filters: All"]
    explicit = demo_store.rows("SELECT count() FROM changes WHERE time >= {s:DateTime64(9)}", {"s": START})[0][0]
    assert explicit > 0 and all(q.rows == explicit for q in changes)


def test_every_runbook_link_resolves_and_each_signal_has_one(report: _dashboards.Report) -> None:
    links = [runbook for links in report.runbooks.values() for _, runbook in links]
    assert all(_runbooks.get(name) for name in links)
    drill = dict(report.runbooks["incident-drilldown.json"])
    assert {drill[f"{s}: now vs baseline"] for s in SIGNALS} >= {"quality-regression", "ttft-regression", "provider-outage-429"}
    assert {"quality-regression", "ttft-regression", "provider-outage-429", "cancellation-tax", "streaming-stalls",
            "asr-ocr-confidence", "structured-output-failures", "cost-spike"} <= set(links)  # fmt: skip


def test_shape_check_rejects_results_a_panel_cannot_draw(demo_store: Store) -> None:
    time_first = demo_store.df("SELECT now() - number AS t, number AS v FROM numbers(3)")  # newest first
    assert "not sorted" in str(_dashboards.shape_problem("timeseries", time_first))
    assert "time column" in str(_dashboards.shape_problem("timeseries", demo_store.df("SELECT 'a' AS k, 1 AS v")))
    assert "traceID" in str(_dashboards.shape_problem("traces", demo_store.df("SELECT 'x' AS spanID")))
    assert _dashboards.shape_problem("table", demo_store.df("SELECT 1 AS x WHERE 0")) == "no rows"
    assert _dashboards.shape_problem("table", demo_store.df("SELECT 1 AS x")) is None


def test_cli_check_passes_on_demo_data(demo_store: Store) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "check", "--store", demo_store.url, "--since", START.isoformat(),
                                      "--until", END.isoformat(), "--dashboard", "llm-overview.json", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] and body["problems"] == [] and len(body["queries"]) > 11


def test_cli_check_says_when_there_is_nothing_to_check(store: Store) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "check", "--store", store.url])
    assert result.exit_code == 4
    assert "no LLM calls" in result.output


def test_cli_check_fails_with_the_broken_queries(store: Store, demo_store: Store) -> None:
    """A store whose llm_scores table is missing: every quality query fails, the command exits 1."""
    store.command(f"INSERT INTO llm_calls SELECT * FROM {demo_store.client.database}.llm_calls")
    store.command("DROP TABLE llm_scores_mv")
    store.command("DROP TABLE llm_scores")
    result = CliRunner().invoke(cli, ["dashboards", "check", "--store", store.url, "--since", START.isoformat(),
                                      "--until", END.isoformat(), "--dashboard", "quality-changes.json"])  # fmt: skip
    assert result.exit_code == 1
    assert "query failed" in result.output and "llm_scores" in result.output
    assert "problem(s) in the dashboards" in result.output


def test_export_writes_a_provisioning_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "export", "--dir", str(tmp_path), "--grafana-dir", "/srv/grafana/provisioning"])
    assert result.exit_code == 0, result.output
    datasource = (tmp_path / "datasources" / "driftline-clickhouse.yaml").read_text()
    provider = (tmp_path / "dashboards" / "driftline.yaml").read_text()
    assert "type: grafana-clickhouse-datasource" in datasource and "password: ${DRIFTLINE_CLICKHOUSE_PASSWORD}" in datasource
    assert "path: /srv/grafana/provisioning/dashboards/driftline" in provider
    exported = {p.name: json.loads(p.read_text()) for p in (tmp_path / "dashboards" / "driftline").glob("*.json")}
    assert exported == _dashboards.load()
