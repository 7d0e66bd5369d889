"""`driftline incident report` and `driftline incident timeline` as a user runs them."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from incident_scenarios import NEW_MODEL, steady
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from driftline.analyzers.cli import cli
from driftline.analyzers.cli._common import EXIT_NO_DATA, EXIT_REGRESSION, EXIT_USAGE
from driftline.collector import Store

ANSI = re.compile(r"\x1b\[")
TESTS = Path(__file__).resolve().parent


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["incident", *args], env=env)


def test_report_prints_markdown_led_by_the_summary_line(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    result = run("report", "--since", "3h", "--store", store.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Incident report:")
    summary = next(line for line in result.stdout.splitlines() if line.startswith("> "))
    assert "quality:faithfulness down" in summary and f"response_model={NEW_MODEL}" in summary
    for heading in ("## Impact", "## Findings", "## Timeline (UTC)", "## Runbooks", "## Action items"):
        assert heading in result.stdout
    assert not ANSI.search(result.output) and result.stderr == ""  # not a terminal: no colour, no progress


def test_absolute_times_with_a_zone_are_reported_in_utc(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    plus_two = timezone(timedelta(hours=2))
    since, until = scenario.start.astimezone(plus_two), (scenario.end + timedelta(minutes=1)).astimezone(plus_two)
    result = run("report", "--since", since.isoformat(), "--until", until.isoformat(), "--format", "json", "--store", store.url)
    assert result.exit_code == 0, result.output
    window = json.loads(result.stdout)["window"]
    assert window == {"start": scenario.start.isoformat(), "end": (scenario.end + timedelta(minutes=1)).isoformat()}
    markdown = run("report", "--since", since.isoformat(), "--until", until.isoformat(), "--store", store.url).stdout
    assert f"{scenario.start:%Y-%m-%d %H:%M} UTC to" in markdown


def test_a_time_without_a_zone_is_utc(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    naive = scenario.start.replace(tzinfo=None).isoformat()
    result = run("timeline", "--since", naive, "--json", "--store", store.url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["window"]["start"] == scenario.start.isoformat()


def test_an_empty_window_is_a_usage_error(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    result = run("report", "--since", "1h", "--until", "2h", "--store", store.url)
    assert result.exit_code == EXIT_USAGE
    assert "empty window: --until" in result.stderr and "UTC" in result.stderr


def test_a_bad_time_is_a_usage_error(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    result = run("report", "--since", "yesterday", "--store", store.url)
    assert result.exit_code == EXIT_USAGE and "'yesterday' is not a time" in result.stderr


def test_a_future_window_has_no_data(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    future = (silent_update_store[1].end + timedelta(days=1)).isoformat()
    result = run("report", "--since", future, "--until", (silent_update_store[1].end + timedelta(days=2)).isoformat(), "--store", store.url)
    assert result.exit_code == EXIT_NO_DATA
    assert "is in the future: nothing has been recorded there yet" in result.stderr


def test_a_store_without_calls_says_so(store: Store) -> None:
    for command in ("report", "timeline"):
        result = run(command, "--since", "2h", "--store", store.url)
        assert result.exit_code == EXIT_NO_DATA
        assert "holds no LLM calls yet" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_store_never_migrated_has_no_data(store_url: str) -> None:
    result = run("report", "--since", "2h", "--store", store_url)
    assert result.exit_code == EXIT_NO_DATA
    assert "has no driftline tables yet" in result.stderr and "driftline db migrate" in result.stderr


def test_a_window_without_calls_says_when_the_store_has_some(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    result = run("report", "--since", "10d", "--until", "9d", "--store", store.url)
    assert result.exit_code == EXIT_NO_DATA
    assert f"the store has calls from {scenario.start:%Y-%m-%d %H:%M} UTC" in result.stderr
    filtered = run("report", "--since", "3h", "--route", "/nowhere", "--store", store.url)
    assert filtered.exit_code == EXIT_NO_DATA and "matching route=/nowhere" in filtered.stderr


def test_fail_on_regression_exits_5_and_still_writes_the_report(silent_update_store: Any, tmp_path: Path) -> None:
    store, _ = silent_update_store
    out = tmp_path / "incident.md"
    result = run("report", "--since", "3h", "--out", str(out), "--fail-on-regression", "--store", store.url)
    assert result.exit_code == EXIT_REGRESSION == 5
    assert out.read_text(encoding="utf-8").startswith("# Incident report:")
    assert result.stdout.startswith("driftline: quality:faithfulness down")  # the summary line, to paste
    assert f"wrote the md report to {out}" in result.stderr


def test_a_young_store_has_a_timeline_and_too_little_data_for_a_report(store: Store) -> None:
    """39 calls: the timeline needs no detection; detection says it has too little, with the no-data exit code."""
    steady(calls=39).write(store)
    timeline = run("timeline", "--since", "3h", "--store", store.url)
    assert timeline.exit_code == 0, timeline.output
    assert "(0 events)" in timeline.stdout and "nothing happened in this window" in timeline.stdout
    report = run("report", "--since", "3h", "--store", store.url)
    assert report.exit_code == EXIT_NO_DATA == 4
    assert "too little data to detect anything" in report.stderr and len(report.stderr.splitlines()) == 1
    detected = CliRunner().invoke(cli, ["detect", "--since", "3h", "--store", store.url])
    assert detected.exit_code == EXIT_NO_DATA and "too little data" in detected.stderr


def test_fail_on_regression_exits_0_when_nothing_regressed(store: Store) -> None:
    steady(calls=900).write(store)
    result = run("report", "--since", "3h", "--fail-on-regression", "--store", store.url)
    assert result.exit_code == 0, result.output
    assert "> driftline: no regression between" in result.stdout


def test_html_goes_to_the_out_file(silent_update_store: Any, tmp_path: Path) -> None:
    store, _ = silent_update_store
    out = tmp_path / "incident.html"
    result = run("report", "--since", "3h", "--format", "html", "--out", str(out), "--store", store.url)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'class="chart"' in html
    assert result.stdout.strip() == re.search(r'<p class="summary" id="summary">(.*?)</p>', html).group(1).replace("&amp;", "&")


def test_json_goes_to_stdout_with_its_schema_version(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    result = run("report", "--since", "3h", "--format", "json", "--store", store.url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["findings"][0]["regression"]["signal"] == "quality:faithfulness"


def test_grafana_url_template_from_the_environment_links_exemplar_traces(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    env = {"DRIFTLINE_GRAFANA_URL": "https://grafana.example/explore?traceId={trace_id}"}
    result = run("report", "--since", "3h", "--store", store.url, env=env)
    assert result.exit_code == 0, result.output
    linked = re.findall(r"\(https://grafana\.example/explore\?traceId=([0-9a-f]{32})\)", result.stdout)
    assert linked
    known = store.rows("SELECT uniqExact(TraceId) FROM otel_traces WHERE TraceId IN {ids:Array(String)}", {"ids": linked})[0][0]
    assert known == len(set(linked))


def test_grafana_url_without_a_placeholder_is_refused(silent_update_store: Any) -> None:
    store, _ = silent_update_store
    result = run("report", "--since", "3h", "--grafana-url", "https://grafana.example/explore", "--store", store.url)
    assert result.exit_code == EXIT_USAGE and "{trace_id}" in result.output


def test_timeline_prints_a_table_and_json(silent_update_store: Any) -> None:
    store, scenario = silent_update_store
    table = run("timeline", "--since", "3h", "--store", store.url)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith("timeline ") and lines[0].endswith("events)") and "UTC" in lines[0]
    assert any("possible silent provider update" in line and "incident_first_seen" in line for line in lines)
    data = json.loads(run("timeline", "--since", "3h", "--json", "--store", store.url).stdout)
    assert data["schema_version"] == 1 and data["kind"] == "driftline.timeline"
    kinds = {e["kind"] for e in data["events"]}
    assert {"change", "first_seen", "change_point"} <= kinds
    assert [e["time"] for e in data["events"]] == sorted(e["time"] for e in data["events"])


def test_help_has_an_example_for_each_incident_command() -> None:
    for command in ("report", "timeline"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout and "driftline incident " + command in result.stdout


# --- a terminal, and a store served over HTTP: both need processes of their own ------------------------

_SCENARIO_AND_REPORT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from incident_scenarios import silent_provider_update
    from driftline.collector import connect, migrate
    url = sys.argv[2]
    with connect(url) as store:
        migrate(store)
        silent_provider_update(calls=1200).write(store)
    from driftline.analyzers.cli import cli
    cli(["incident", "report", "--since", "3h", "--store", url], prog_name="driftline")
""")


def _report_in_a_process(tmp_path: Path, *, terminal: bool) -> tuple[str, str]:
    """(stdout, stderr) of a report run by a process of its own, on a pseudo-terminal or on pipes."""
    argv = [sys.executable, "-c", _SCENARIO_AND_REPORT, str(TESTS), f"chdb://{tmp_path / 'store'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "OTEL_"))} | {"TERM": "xterm"}
    if not terminal:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    out_main, out_side = pty.openpty()
    err_main, err_side = pty.openpty()
    proc = subprocess.Popen(argv, stdout=out_side, stderr=err_side, stdin=subprocess.DEVNULL, env=env)
    os.close(out_side)
    os.close(err_side)
    received = {out_main: b"", err_main: b""}
    readers = list(received)
    deadline = time.monotonic() + 300
    while readers and time.monotonic() < deadline:
        for fd in select.select(readers, [], [], 1.0)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the process closed its end of the terminal
                chunk = b""
            if chunk:
                received[fd] += chunk
            else:
                readers.remove(fd)
                os.close(fd)
    assert proc.wait(timeout=60) == 0, received[err_main].decode()
    return received[out_main].decode(), received[err_main].decode()


@pytest.mark.slow
def test_progress_and_colour_only_on_a_terminal(tmp_path: Path) -> None:
    out, err = _report_in_a_process(tmp_path / "tty", terminal=True)
    assert ANSI.search(out) and "\x1b[1m# Incident report" in out
    assert "detecting regressions" in err and "attributing quality:faithfulness" in err
    plain_out, plain_err = _report_in_a_process(tmp_path / "pipe", terminal=False)
    assert not ANSI.search(plain_out) and plain_out.startswith("# Incident report") and plain_err == ""


@pytest.mark.slow
def test_report_over_http_against_a_running_driftline_serve(serve: Any) -> None:
    from incident_scenarios import silent_provider_update

    server = serve()
    scenario = silent_provider_update(calls=1200)
    spans = scenario.spans()
    exporter = OTLPSpanExporter(endpoint=f"{server.http}/v1/traces")
    for i in range(0, len(spans), 500):
        assert exporter.export(spans[i : i + 500]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    server.wait_rows("llm_calls", 1200)
    server.wait_rows("changes", 2)
    result = run("report", "--since", "3h", "--format", "json", "--fail-on-regression", "--store", server.query_url)
    assert result.exit_code == EXIT_REGRESSION, result.output
    data = json.loads(result.stdout)
    assert data["store"].startswith("http://127.0.0.1:")
    top = data["findings"][0]["attribution"]["suspects"][0]
    assert data["findings"][0]["regression"]["signal"] == "quality:faithfulness"
    assert f"{top['dimensions'][0]}={top['values'][0]}" in (f"response_model={NEW_MODEL}", "system_fingerprint=fp_b2")
    assert {e["kind"] for e in data["timeline"]} >= {"change", "first_seen", "change_point"}
