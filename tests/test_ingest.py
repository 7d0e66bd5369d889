"""serve's writer in-process, on the session's chDB engine: groups the engine hands back to the Python decoder.

The engine refuses a group holding values it cannot reproduce exactly (here kvlist attributes);
the Python decoder then inserts it in chunks of `decode_bytes`, each under its own deduplication
token, so a replay of that group after a crash still adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from serve_process import wait_for

from driftline.collector import Store, connect
from driftline.collector.receiver._ingest import Ingester, IngestLimits, Signal
from driftline.collector.receiver._metrics import ServeMetrics

REQUESTS, SPANS = 10, 200
LIMITS = IngestLimits(group_bytes=1 << 20, decode_bytes=20_000, linger_seconds=0.05)


def _request(first: int) -> bytes:
    """SPANS GenAI spans whose `meta` attribute is a kvlist (the engine's SQL does not stringify those)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = resource_spans.resource.attributes.add()
    service.key, service.value.string_value = "service.name", "svc"
    scope_spans = resource_spans.scope_spans.add()
    for n in range(first, first + SPANS):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id, span.name = n.to_bytes(16, "big"), (n + 1).to_bytes(8, "big"), "chat gpt-4o"
        span.start_time_unix_nano = 1_790_000_000_000_000_000 + n * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 500
        for key, value in (("n", str(n)), ("gen_ai.operation.name", "chat")):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
        meta = span.attributes.add()
        meta.key = "meta"
        entry = meta.value.kvlist_value.values.add()
        entry.key, entry.value.string_value = "k", "v"
    return request.SerializeToString()


def _run(store: Store, spool_dir: Path, accept: int = 0) -> ServeMetrics:
    """Accept `accept` requests before the writer starts (so they form one group), then drain."""
    metrics = ServeMetrics()
    ingester = Ingester(store.url, spool_dir, limits=LIMITS, metrics=metrics, store=connect(store.url))
    for r in range(accept):
        ingester.accept(Signal.TRACES, _request(r * SPANS), SPANS)
    ingester.start()
    wait_for(lambda: ingester.spool.backlog_items == 0, what="the spool stored")
    assert ingester.drain(timeout=30)
    return metrics


def _counts(store: Store) -> tuple[int, int, int]:
    return store.rows("SELECT count(), uniqExact(SpanId), countIf(SpanAttributes['meta'] = '{\"k\":\"v\"}') FROM otel_traces")[0]


def test_a_group_the_engine_refuses_goes_in_through_the_python_decoder_in_chunks_exactly_once(store: Store, tmp_path: Path) -> None:
    metrics = _run(store, tmp_path / "spool", accept=REQUESTS)
    assert _counts(store) == (REQUESTS * SPANS,) * 3
    assert store.rows("SELECT count() FROM llm_calls")[0][0] == REQUESTS * SPANS
    assert metrics.counts["stored"] == REQUESTS * SPANS
    assert len(_request(0)) * REQUESTS > 2 * LIMITS.decode_bytes  # the group really needed several chunks


def test_replaying_a_refused_group_after_a_crash_adds_no_rows(store: Store, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    _run(store, spool_dir, accept=REQUESTS)
    checkpoint = spool_dir / "checkpoint.json"
    assert json.loads(checkpoint.read_text()) == {"seq": REQUESTS, "intents": []}
    checkpoint.write_text(json.dumps({"seq": 0, "intents": [[1, REQUESTS]]}))  # as if killed before the release
    _run(store, spool_dir)
    assert _counts(store) == (REQUESTS * SPANS,) * 3
    assert store.rows("SELECT count() FROM llm_calls")[0][0] == REQUESTS * SPANS
