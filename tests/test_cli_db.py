"""`driftline db` and `driftline annotate`: they work, and bad input is one line and a non-zero exit.

Commands that can share this process's chDB engine run through CliRunner against the session's
store; those that need a store directory of their own, or the real console script's stderr, run
as a subprocess.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from driftline.analyzers.cli import cli
from driftline.collector import Store, connect
from driftline.collector.store._migrate import latest_version, migrations
from driftline.collector.store._prices import loaded_prices

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "OTEL_"))}
    return subprocess.run([DRIFTLINE, *args], check=False, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- db migrate / db status -------------------------------------------------------------------


def test_db_migrate_creates_the_schema_then_has_nothing_to_do(store_url: str) -> None:
    first = invoke("db", "migrate", "--store", store_url)
    assert first.exit_code == 0, first.output
    said = {line.split()[1]: line.split()[0] for line in first.output.splitlines() if line.startswith(("applied", "recorded"))}
    assert said == {f"{m.version:04d}_{m.name}": "recorded" if m.upgrade_only else "applied" for m in migrations()}
    assert "recorded 0006_conventions_cost (a new store is created in its latest shape: nothing to run)" in first.output
    assert "loaded the price table genai-prices 0.2.3" in first.output
    second = invoke("db", "migrate", "--store", store_url)
    assert second.exit_code == 0 and "(nothing to do)" in second.output and "applied" not in second.output
    assert "price table" not in second.output  # the store holds that version already
    with connect(store_url) as opened:
        assert loaded_prices(opened) == "genai-prices 0.2.3"


def test_db_migrate_reads_the_store_from_the_environment(store_url: str) -> None:
    result = invoke("db", "migrate", env={"DRIFTLINE_STORE": store_url})
    assert result.exit_code == 0, result.output
    with connect(store_url) as opened:
        assert opened.table_exists("llm_calls")


def test_db_status_json_reports_version_and_tables(store: Store) -> None:
    result = invoke("db", "status", "--json", "--store", store.url)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["schema_version"], info["expected_version"], info["pending"], info["embedded"]) == (latest_version(), latest_version(), [], True)
    assert {"otel_traces", "llm_calls", "llm_scores", "changes"} <= {t["name"] for t in info["tables"]}


def test_db_status_of_an_empty_store_says_to_migrate(store_url: str) -> None:
    result = invoke("db", "status", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert f"version 0 of {latest_version()}" in result.output and "run `driftline db migrate`" in result.output


@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "status"], ["annotate", "deploy", "x"]])
def test_commands_reject_an_unsupported_store_scheme_with_exit_3(command: list[str]) -> None:
    result = invoke(*command, "--store", "ftp://example.org/db")
    assert result.exit_code == 3
    assert_one_error_line(result.stderr, "unsupported store URL", "chdb:///")


@pytest.mark.parametrize("url", ["http://", "http://127.0.0.1:99999/x", "http://h:port/x", "chdb://"])
def test_malformed_store_url_is_one_line_and_exit_3(url: str) -> None:
    result = invoke("db", "status", "--store", url)
    assert result.exit_code == 3
    assert_one_error_line(result.stderr, "store URL")


@pytest.mark.slow
def test_unreachable_server_is_one_line_and_exit_3_without_traceback(tmp_path: Path) -> None:
    port = closed_port()
    result = run("db", "status", "--store", f"http://default:pw@127.0.0.1:{port}/default", cwd=tmp_path)
    assert result.returncode == 3
    assert_one_error_line(result.stderr, f"127.0.0.1:{port}", "connection refused")
    assert "pw@" not in result.stderr


@pytest.mark.slow
def test_store_held_by_another_process_is_one_line_naming_the_holder(held_store: tuple[str, int], tmp_path: Path) -> None:
    url, pid = held_store
    result = run("db", "migrate", "--store", url, cwd=tmp_path)
    assert result.returncode == 3
    assert_one_error_line(result.stderr, f"process {pid}", "driftline serve")


def test_db_migrate_rejects_negative_ttl_as_usage_error(store_url: str) -> None:
    result = invoke("db", "migrate", "--ttl-days", "-3", "--store", store_url)
    assert result.exit_code == 2 and "--ttl-days" in result.output


# --- annotate ---------------------------------------------------------------------------------


def test_annotate_records_a_change_in_the_changes_table(store: Store) -> None:
    result = invoke("annotate", "prompt", "support-answer", "--version", "v8", "-m", "shorter answers", "--author", "ana",
                    "--service", "support-bot", "--environment", "prod", "--at", "2026-11-20T09:00:00Z", "--store", store.url)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = store.rows("SELECT toString(time), kind, target, version, description, author, service, environment FROM changes")
    assert rows == [("2026-11-20 09:00:00.000000000", "prompt", "support-answer", "v8", "shorter answers", "ana", "support-bot", "prod")]


def test_annotate_relative_at_is_in_the_past(store: Store) -> None:
    assert invoke("annotate", "deploy", "api", "--at", "90m", "--store", store.url).exit_code == 0
    (minutes,) = store.rows("SELECT dateDiff('minute', time, now64(9)) FROM changes")[0]
    assert 89 <= minutes <= 91


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["annotate", "vibes", "x"], "'vibes' is not one of"),
        (["annotate", "deploy", "x", "--at", "last tuesday"], "is not a time"),
        (["annotate", "deploy", "x", "--at", "2026-13-45"], "is not a time"),
        (["annotate", "deploy"], "Missing argument"),
    ],
)
def test_annotate_bad_input_is_a_usage_error_that_writes_nothing(store: Store, args: list[str], message: str) -> None:
    result = invoke(*args, "--store", store.url)
    assert result.exit_code == 2
    assert message in result.output + result.stderr
    assert store.rows("SELECT count() FROM otel_traces") == [(0,)]


def test_annotate_into_an_unmigrated_store_says_to_migrate(store_url: str) -> None:
    result = invoke("annotate", "deploy", "api", "--store", store_url)
    assert result.exit_code != 0
    assert_one_error_line(result.stderr, "driftline db migrate")


@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "status"], ["annotate"]])
def test_every_command_help_has_an_example(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output
