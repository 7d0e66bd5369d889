"""Benchmark: sustained OTLP/HTTP protobuf ingest into the embedded store, against its decode ceiling.

Run: .venv/bin/python bench/bench_serve.py [--seconds 40] [--clients 6]

Same payloads, same run:
1. ceiling: how fast this process parses the requests (protobuf) and turns them into columns,
   the work the writer must do per span whatever else happens;
2. end to end: a real `driftline serve` subprocess, clients posting pre-encoded requests over
   keep-alive connections as fast as the server lets them (offered load far above what it can
   store: the surplus is answered 503/429 + Retry-After), spans/s counted from the rows it stored
   (/metrics `stored`) over the measured window, and its peak RSS (VmHWM).
Prints absolute figures and the ratio end-to-end / ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from driftline.collector._otlp_decode import parse_request, traces_to_columns
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import ServeProcess, wait_for

SPANS_PER_REQUEST = 1000


def payloads(count: int) -> list[bytes]:
    """`count` OTLP requests of GenAI spans with realistic attributes, from the real SDK encoder."""
    out = []
    for r in range(count):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"app-{r % 3}", "service.version": "1.4.2",
                                                            "deployment.environment": "prod"}))  # fmt: skip
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("driftline.bench", "0.1")
        for n in range(SPANS_PER_REQUEST):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attributes({
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 900 + n,
                    "gen_ai.usage.output_tokens": 250, "gen_ai.prompt.name": "support", "gen_ai.prompt.version": f"v{r % 4}",
                    "driftline.route": "/chat", "driftline.tenant": f"tenant-{n % 50}", "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.request.temperature": 0.2,
                })  # fmt: skip
        provider.shutdown()
        out.append(encode_spans(exporter.get_finished_spans()).SerializeToString())
    return out


def ceiling(bodies: list[bytes], rounds: int = 3) -> tuple[float, float]:
    """(receiver parse spans/s, writer decode-to-columns spans/s) in this process, one thread each."""
    spans = SPANS_PER_REQUEST * len(bodies) * rounds
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            parse_request(body, ExportTraceServiceRequest, json_body=False)  # what the receiver does per request
    parsed = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            traces_to_columns([body])  # what the writer does per spooled request
    done = time.perf_counter()
    return spans / (parsed - started), spans / (done - parsed)


def flood(port: int, bodies: list[bytes], stop: threading.Event, tally: dict[str, int], lock: threading.Lock) -> None:
    """Post requests back to back on one keep-alive connection until `stop`; count outcomes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while not stop.is_set():
        body = bodies[i % len(bodies)]
        i += 1
        try:
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status = 0
        with lock:
            tally["offered"] += SPANS_PER_REQUEST
            tally[str(status)] = tally.get(str(status), 0) + 1


def peak_rss(process: ServeProcess) -> int:
    assert process.proc is not None
    for line in Path(f"/proc/{process.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def end_to_end(bodies: list[bytes], seconds: float, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        server = ServeProcess(Path(tmp), "--grpc-port", "-1", "--spool-max-mb", "256", "--log-format", "text").start()
        try:
            stop, lock = threading.Event(), threading.Lock()
            tally: dict[str, int] = {"offered": 0}
            threads = [threading.Thread(target=flood, args=(server.ready["http_port"], bodies, stop, tally, lock)) for _ in range(clients)]
            for thread in threads:
                thread.start()
            warmup = min(10.0, seconds / 4)
            wait_for(lambda: server.metrics()["driftline_serve_stored_total"] > 0, timeout=120, what="first rows stored")
            time.sleep(warmup)  # benchmark window, not synchronisation
            stored0, offered0, t0 = server.metrics()["driftline_serve_stored_total"], tally["offered"], time.perf_counter()
            time.sleep(seconds)
            stored1, offered1, t1 = server.metrics()["driftline_serve_stored_total"], tally["offered"], time.perf_counter()
            rss = peak_rss(server)
            stop.set()
            for thread in threads:
                thread.join()
            metrics = server.metrics()
        finally:
            server.stop(timeout=300)
    return {"stored_per_s": (stored1 - stored0) / (t1 - t0), "offered_per_s": (offered1 - offered0) / (t1 - t0), "peak_rss": rss,
            "accepted": tally.get("200", 0), "refused_503": tally.get("503", 0), "refused_429": tally.get("429", 0),
            "insert_s_avg": metrics["driftline_serve_insert_seconds_sum"] / max(metrics["driftline_serve_insert_seconds_count"], 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window (after a warm-up)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent keep-alive client connections")
    parser.add_argument("--requests", type=int, default=12, help=f"distinct requests of {SPANS_PER_REQUEST} spans")
    args = parser.parse_args()
    bodies = payloads(args.requests)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other work shares the cores)")
    print(f"payload: {args.requests} requests x {SPANS_PER_REQUEST} GenAI spans, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each")
    parse_rate, decode_rate = ceiling(bodies)
    print(f"ceiling (this process, 1 thread): receiver protobuf parse {parse_rate:,.0f} spans/s; writer decode to columns {decode_rate:,.0f} spans/s")
    result = end_to_end(bodies, args.seconds, args.clients)
    print(f"end to end, OTLP/HTTP protobuf -> driftline serve -> embedded chDB: {result['stored_per_s']:,.0f} spans/s stored")
    print(f"  offered by the clients: {result['offered_per_s']:,.0f} spans/s ({result['offered_per_s'] / max(result['stored_per_s'], 1):.1f}x what was stored);"
          f" answers: {result['accepted']} x 200, {result['refused_503']} x 503, {result['refused_429']} x 429")  # fmt: skip
    print(f"  mean insert {result['insert_s_avg'] * 1000:.0f} ms; serve peak RSS {result['peak_rss'] / (1 << 20):,.0f} MiB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"ratio end to end / decode ceiling: {result['stored_per_s'] / decode_rate:.2f}"
          f"; vs the 40,000 spans/s goal: {result['stored_per_s'] / 40_000:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
