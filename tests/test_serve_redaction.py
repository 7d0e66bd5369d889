"""Masking in `driftline serve`, end to end: real OTel SDK exporters -> a real serve subprocess ->
spool files on disk -> chDB. Planted secrets and personal data must be absent from the spool and
the tables, counted (never logged), and hashed values must still correlate."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from serve_process import DRIFTLINE, wait_for

from driftline.analyzers.cli import cli

pytestmark = pytest.mark.slow

PLANTED = {
    "email": "jane.roe@example.com",
    "api_key": "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1",
    "card": "4242 4242 4242 4242",
    "phone": "+44 20 7946 0958",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
}


def send_content_spans(exporter: SpanExporter, count: int, *, email: str = PLANTED["email"], user: str | None = None) -> None:
    """GenAI spans as an app with content recording on makes them: the planted values in the
    messages, a tool call's arguments, and an OpenLIT-style prompt event; `user` as user.id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    for n in range(count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            messages = [{"role": "user", "content": f"I am {email}, card {PLANTED['card']}, call {PLANTED['phone']}"}]
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.prompt.name": "support", "gen_ai.prompt.version": "v12", "driftline.tenant": "acme", "n": n,
                "gen_ai.input.messages": json.dumps(messages), **({"user.id": user} if user else {}),
                "gen_ai.tool.call.arguments": json.dumps({"api_key": PLANTED["api_key"], "iban": PLANTED["iban"]}),
            })  # fmt: skip
            span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": f"-----BEGIN PRIVATE KEY-----\n{PLANTED['private_key']}\n-----END PRIVATE KEY-----"})
    provider.shutdown()


def files_text(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.rglob("*") if path.is_file())


def test_planted_values_reach_neither_the_spool_files_nor_the_tables(serve: Any, tmp_path: Path) -> None:
    fault = tmp_path / "store-down"
    fault.touch()  # hold every batch in the spool, to read it on disk
    server = serve("--fault-file", str(fault), workdir=tmp_path / "served")
    send_content_spans(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 5)
    send_content_spans(GrpcSpanExporter(endpoint=server.grpc, insecure=True), 5)
    logs = LoggerProvider(resource=Resource.create({"service.name": "support-bot"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(GrpcLogExporter(endpoint=server.grpc, insecure=True)))
    logs.get_logger("app").emit(LogRecord(event_name="gen_ai.user.message", body={"content": f"mail {PLANTED['email']}"}))
    logs.shutdown()
    wait_for(lambda: server.health()["backlog_items"] == 11, what="11 items in the spool")
    spool = tmp_path / "served" / "store.spool"
    segments = b"".join(path.read_bytes() for path in spool.glob("seg-*.log"))
    assert segments.count(b"[REDACTED:email]") == 11 and b"gpt-4o-2024-08-06" in segments  # the batches are there, masked
    assert [name for name, value in PLANTED.items() if value.encode() in files_text(spool)] == []  # nor in any other file

    fault.unlink()
    server.wait_rows("otel_traces", 10)
    server.wait_rows("otel_logs", 1)
    stored = repr(server.rows("SELECT SpanAttributes, Events.Attributes FROM otel_traces")) + repr(server.rows("SELECT Body FROM otel_logs"))
    assert [name for name, value in PLANTED.items() if value in stored] == []
    assert all(f"[REDACTED:{name}]" in stored for name in PLANTED)
    assert server.rows("SELECT DISTINCT SpanAttributes['gen_ai.prompt.name'], SpanAttributes['gen_ai.prompt.version'] FROM otel_traces") == [
        ("support", "v12")  # not content: never looked at
    ]
    assert server.count("llm_calls") == 10
    metrics = server.metrics()
    assert {name: metrics[f'driftline_serve_redacted_total{{rule="{name}"}}'] for name in PLANTED} == {
        "email": 11, "api_key": 10, "card": 10, "phone": 10, "iban": 10, "private_key": 10,
    }  # fmt: skip
    wait_for(lambda: json.loads(CliRunner().invoke(cli, ["db", "status", "--json", "--store", server.query_url]).output)["redactions"].get("email") == 11,
             what="the counts saved in the store")  # fmt: skip
    assert server.stop() == 0
    log = server.log_path.read_text()
    assert [name for name, value in PLANTED.items() if value in log] == []


def test_a_policy_file_hashes_values_that_still_correlate_and_drops_what_it_says(serve: Any, tmp_path: Path) -> None:
    key = tmp_path / "hmac.key"
    key.write_text("correlate-me")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'hash_key_file = "{key}"\n[detectors]\nemail = "hash"\nprivate_key = "drop"\n'
                      '[[attributes]]\nmatch = "user.*"\naction = "hash"\n[[attributes]]\nmatch = "gen_ai.tool.*"\naction = "drop"\n')
    server = serve("--redaction", str(policy))
    for email in ("a.one@example.com", "a.one@example.com", "b.two@example.com"):
        send_content_spans(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 1, email=email, user=email)
    server.wait_rows("otel_traces", 3)
    users = server.rows("SELECT SpanAttributes['user.id'] AS user, count() FROM otel_traces GROUP BY user ORDER BY count() DESC")
    assert [count for _, count in users] == [2, 1] and all(user.startswith("[HASH:") for user, _ in users)
    messages = [m for (m,) in server.rows("SELECT SpanAttributes['gen_ai.input.messages'] FROM otel_traces")]
    assert len(set(messages)) == 2 and all("[HASH:email:" in m and "@example.com" not in m for m in messages)
    assert server.metrics()['driftline_serve_redacted_total{rule="attribute:user.*"}'] == 3
    kept = server.rows("SELECT DISTINCT mapContains(SpanAttributes, 'gen_ai.tool.call.arguments'), Events.Attributes FROM otel_traces")
    assert kept == [(False, [{}])]  # the tool arguments dropped by name, the event's key by the private_key detector


def test_no_redaction_stores_content_as_sent(serve: Any) -> None:
    server = serve("--no-redaction")
    send_content_spans(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 1)
    server.wait_rows("otel_traces", 1)
    assert PLANTED["email"] in server.rows("SELECT SpanAttributes['gen_ai.input.messages'] FROM otel_traces")[0][0]


def test_a_bad_policy_file_stops_serve_with_one_line_and_loses_nothing_spooled(serve: Any, tmp_path: Path) -> None:
    workdir, fault = tmp_path / "kept", tmp_path / "store-down"
    fault.touch()
    server = serve("--fault-file", str(fault), workdir=workdir)
    send_content_spans(HttpSpanExporter(endpoint=f"{server.http}/v1/traces"), 4)
    wait_for(lambda: server.health()["backlog_items"] == 4, what="4 spans spooled")
    server.kill9()
    bad = tmp_path / "bad.toml"
    bad.write_text('[detectors]\nemail = "scramble"\n')
    refused = subprocess.run([DRIFTLINE, "serve", "--store", f"chdb://{workdir / 'store'}", "--redaction", str(bad), "--http-port", "0",
                              "--grpc-port", "-1", "--query-port", "-1"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert refused.returncode == 3 and "email: action must be one of mask, hash, keep, drop" in refused.stderr
    fault.unlink()
    restarted = serve(workdir=workdir)
    assert restarted.wait_rows("otel_traces", 4) == 4
