"""Benchmark: sustained OTLP/HTTP protobuf ingest into the embedded store, against its decode ceiling.

Same payloads, same run:
1. ceiling: how fast this process parses the requests (protobuf, what the receiver does) and turns
   them into columns (the Python decoder), one thread each; then the writer's two ways into an
   embedded store of its own, one group at a time of the size serve uses for each: Python decoder
   + columnar insert (the baseline; still the path for remote stores and exotic values) against
   the engine decoding the raw requests itself (ClickHouse's Protobuf format + INSERT ... SELECT,
   no GIL);
2. sustained: a real `driftline serve` subprocess, clients posting pre-encoded requests (made new
   traffic: timestamps moved to now, ids unique) over keep-alive connections and, like the OTel
   exporters, waiting Retry-After when refused; spans/s from what it stored (/metrics `stored`,
   timed from the first to the last insert in the measured window);
3. flood: 16 clients that ignore Retry-After, offering ten times the sustained rate or more; what
   the server answers, whether it keeps storing, and its peak RSS (VmHWM) over the whole run.
Prints absolute figures and the ratios sustained / ceiling and offered / sustained.

Redaction (issue 15): serve applies the default policy unless told otherwise. --compare-redaction
runs the sustained phase a second time, first, on a serve started with --no-redaction, and prints
masked / unmasked (goal >= 0.9); the ceiling line then also shows the receiver's parse + redaction.
--content gives every span the prompt and completion an app recording content sends (an e-mail
planted in one in 20), so the detectors have something to scan.

--baseline REV runs the sustained phase instead, --rounds times, alternating this code's serve with
REV's (unpacked from git, run from its own PYTHONPATH; same clients, same payloads), and prints
each one's median spans/s stored and serve's CPU time per 100,000 stored spans (process CPU from
/proc over the measured window: steadier than the rate on a shared machine), with the ratios.
With --compare-redaction this code also runs with --no-redaction, like with like for a baseline
that predates redaction.

Run: .venv/bin/python bench/bench_serve.py [--seconds 40] [--content] [--compare-redaction]
     .venv/bin/python bench/bench_serve.py --baseline 19d3829 --rounds 4 --seconds 30 --compare-redaction
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _baseline import environment, in_turn, medians, unpack
from bench_export import content
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_process import ServeProcess

from driftline.collector import RedactionPolicy, connect, migrate
from driftline.collector._redaction import Redactor
from driftline.collector.receiver._ingest import IngestLimits
from driftline.collector.receiver._otlp_decode import parse_request, traces_to_columns
from driftline.collector.receiver._otlp_redact import OtlpRedactor
from driftline.collector.receiver._otlp_sql import insert_file, length_delimited, write_schema

SPANS_PER_REQUEST = 1000


def payloads(count: int, *, with_content: bool = False) -> list[bytes]:
    """`count` OTLP requests of GenAI spans with realistic attributes (and the prompt and completion
    with `with_content`), from the real SDK encoder."""
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
                    **(content(n) if with_content else {}),
                })  # fmt: skip
        provider.shutdown()
        out.append(encode_spans(exporter.get_finished_spans()).SerializeToString())
    return out


class Resender:
    """Sends one pre-encoded request as new traffic: timestamps moved to now, trace and span ids made unique.

    Replaying the same bytes would store the same ids and timestamps over and over, which no SDK sends:
    every part would then cover the same key range and merging them would cost far more than it does
    for spans that arrive in time order. Patching the encoded bytes in place keeps the clients cheap."""

    def __init__(self, body: bytes) -> None:
        self.body = np.frombuffer(body, np.uint8)
        spans = list(_spans(body))
        self.times = _byte_index([pos for span in spans for field, pos in span if field in (7, 8)], 8)
        self.trace_ids = _byte_index([pos for span in spans for field, pos in span if field == 1], 8)
        self.span_ids = _byte_index([pos for span in spans for field, pos in span if field == 2], 4)
        self.original = self.body[self.times].copy().view("<u8")
        self.first_ns = int(self.original.min())

    def fresh(self, shift_ns: int, sequence: int) -> bytes:
        out = self.body.copy()
        out[self.times] = (self.original + np.uint64(shift_ns)).view(np.uint8).reshape(self.times.shape)
        out[self.trace_ids] = np.frombuffer(sequence.to_bytes(8, "little"), np.uint8)
        out[self.span_ids] = np.frombuffer((sequence & 0xFFFFFFFF).to_bytes(4, "little"), np.uint8)
        return out.tobytes()


def _byte_index(starts: list[int], width: int) -> np.ndarray:
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(width)


def _spans(body: bytes) -> Iterator[list[tuple[int, int]]]:
    """Each span's (field number, value offset) pairs: request.resource_spans.scope_spans.spans."""
    for _, rs_start, rs_end in _fields(body, 0, len(body), want=1):
        for _, ss_start, ss_end in _fields(body, rs_start, rs_end, want=2):
            for _, start, end in _fields(body, ss_start, ss_end, want=2):
                yield [(field, pos) for field, pos, _ in _fields(body, start, end)]


def _fields(buf: bytes, pos: int, end: int, want: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(field number, value start, value end) of a protobuf message's fields (wire types 0, 1, 2, 5)."""
    while pos < end:
        key, pos = _varint_at(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _varint_at(buf, pos)
        else:
            size = {0: _varint_at(buf, pos)[1] - pos, 1: 8, 5: 4}[wire]
        if want is None or field == want:
            yield field, pos, pos + size
        pos += size


def _varint_at(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def ceiling(bodies: list[bytes], rounds: int = 3) -> tuple[float, float]:
    """(receiver parse spans/s, writer decode-to-columns spans/s) in this process, one thread each."""
    spans = SPANS_PER_REQUEST * len(bodies) * rounds
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            parse_request(body, ExportTraceServiceRequest, json_body=False)  # what the receiver does per request without redaction
    parsed = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            traces_to_columns([body])  # what the writer does per spooled request
    done = time.perf_counter()
    return spans / (parsed - started), spans / (done - parsed)


def redaction_ceiling(bodies: list[bytes], rounds: int = 3) -> float:
    """Receiver parse + the default redaction policy, spans/s in this process, one thread."""
    redaction = OtlpRedactor(Redactor(RedactionPolicy()))
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            redaction.payload(parse_request(body, ExportTraceServiceRequest, json_body=False)[0], body)
    return SPANS_PER_REQUEST * len(bodies) * rounds / (time.perf_counter() - started)


def writer_ceiling(bodies: list[bytes], rounds: int = 3) -> tuple[float, float]:
    """(Python decode + insert spans/s, engine decode + insert spans/s) into an embedded store in a temp dir,
    each in the groups serve uses for it (insert deduplication off: the rounds repeat the same rows)."""
    limits, once = IngestLimits(), {"insert_deduplicate": 0}
    python_group = _group(bodies, limits.decode_bytes)
    engine_group = _group(bodies, limits.group_bytes)
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        store = connect(f"chdb://{tmp}/store")
        migrate(store)
        started = time.perf_counter()
        for _ in range(rounds):
            cols = traces_to_columns(python_group)
            store.insert(cols.table, cols.data, cols.names, settings=once)
        python_done = time.perf_counter()
        schema, group = write_schema(Path(tmp)), Path(tmp) / "group.pb"
        for _ in range(rounds):
            length_delimited(engine_group, group)
            if not insert_file(store, group, schema=schema, limit=limits.max_value_chars, settings=once):
                raise SystemExit("the engine handed the benchmark payload back to the Python decoder")
        engine_done = time.perf_counter()
        store.close()
    spans = SPANS_PER_REQUEST * rounds
    return spans * len(python_group) / (python_done - started), spans * len(engine_group) / (engine_done - python_done)


def _group(bodies: list[bytes], size: int) -> list[bytes]:
    """The requests, repeated as needed, that make one group of about `size` bytes."""
    count = max(1, -(-size // len(bodies[0])))
    return [bodies[i % len(bodies)] for i in range(count)]


def client(port: int, senders: list[Resender], stop: threading.Event, tally: dict[str, int], lock: threading.Lock,
           honour_retry_after: bool) -> None:  # fmt: skip
    """Post requests back to back on one keep-alive connection until `stop`; count outcomes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    first_ns = min(sender.first_ns for sender in senders)
    while not stop.is_set():
        sequence = next(_SENDS)
        body = senders[sequence % len(senders)].fresh(time.time_ns() - first_ns, sequence)
        retry_after = 0.0
        try:
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            status = response.status
            retry_after = float(response.getheader("Retry-After") or 0)
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
        if honour_retry_after and retry_after:
            stop.wait(retry_after)


_SENDS = itertools.count()
"""One sequence number per request sent, across clients: it makes the request's ids unique."""


def phase(server: ServeProcess, senders: list[Resender], clients: int, seconds: float, *, honour_retry_after: bool) -> dict[str, float]:
    """Run `clients` for a warm-up plus `seconds`; rates over the measured window."""
    stop, lock = threading.Event(), threading.Lock()
    tally: dict[str, int] = {"offered": 0}
    args = (server.ready["http_port"], senders, stop, tally, lock, honour_retry_after)
    threads = [threading.Thread(target=client, args=args) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(min(10.0, seconds / 4))  # warm-up: the benchmark window, not synchronisation
    offered0, t0, answers0 = tally["offered"], time.perf_counter(), dict(tally)
    stored_per_s, cpu_per_100k = stored_rate(server, seconds)
    offered1, t1 = tally["offered"], time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join()
    window = {k: tally.get(k, 0) - answers0.get(k, 0) for k in ("200", "503", "429")}
    return {"stored_per_s": stored_per_s, "cpu_per_100k": cpu_per_100k, "offered_per_s": (offered1 - offered0) / (t1 - t0), **window}


def stored_rate(server: ServeProcess, seconds: float, every: float = 0.25) -> tuple[float, float]:
    """(spans/s stored, serve's CPU seconds per 100,000 of them) over the next `seconds`, timed from
    the first to the last insert seen in them.

    The counter moves a whole group (~80,000 spans) at a time, so counting between the window's
    ends would be off by up to a group (5% of 40 s at 40,000 spans/s); sampling every `every`
    seconds puts each insert within that of when it landed."""
    changes: list[tuple[float, float, float]] = []
    last = None
    deadline = time.perf_counter() + seconds
    while (now := time.perf_counter()) < deadline:
        stored = server.metrics()["driftline_serve_stored_total"]
        if stored != last:
            changes.append((now, stored, server.cpu_seconds()))
            last = stored
        time.sleep(every)  # sampling interval
    (start_t, start, start_cpu), (end_t, end, end_cpu) = changes[1] if len(changes) > 2 else changes[0], changes[-1]  # [0]: the value at the start
    if end_t <= start_t:
        return 0.0, 0.0
    return (end - start) / (end_t - start_t), (end_cpu - start_cpu) / (end - start) * 100_000


def end_to_end(bodies: list[bytes], seconds: float, *extra: str, flood: bool = True,
               env: dict[str, str] | None = None) -> tuple[dict[str, float], dict[str, float], int]:  # fmt: skip
    """(sustained, flood, peak RSS) of one serve started with `extra` flags (in `env`, default this
    process's); without `flood`, that phase is skipped (empty)."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        server = ServeProcess(Path(tmp), "--grpc-port", "-1", "--spool-max-mb", "256", "--log-format", "text", *extra, env=env).start()
        senders = [Resender(body) for body in bodies]
        try:
            sustained = phase(server, senders, 4, seconds, honour_retry_after=True)
            flooded = phase(server, senders, 16, seconds / 2, honour_retry_after=False) if flood else {}
            rss = server.rss_bytes("VmHWM")
        finally:
            server.stop(timeout=600)
    return sustained, flooded, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window (after a warm-up)")
    parser.add_argument("--requests", type=int, default=12, help=f"distinct requests of {SPANS_PER_REQUEST} spans")
    parser.add_argument("--content", action="store_true", help="spans carry a prompt and a completion (~1 KiB), an e-mail in one in 20")
    parser.add_argument("--compare-redaction", action="store_true", help="also measure sustained on a serve with --no-redaction (first)")
    parser.add_argument("--baseline", metavar="REV", help="instead: sustained only, alternating this code's serve with git revision REV's")
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline: sustained runs of each serve (median taken)")
    args = parser.parse_args()
    bodies = payloads(args.requests, with_content=args.content)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other work shares the cores)")
    print(f"payload: {args.requests} requests x {SPANS_PER_REQUEST} GenAI spans, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each")
    if args.baseline:
        against_baseline(bodies, args.baseline, rounds=args.rounds, seconds=args.seconds, unmasked=args.compare_redaction)
        return
    parse_rate, decode_rate = ceiling(bodies)
    print(f"ceiling (this process, 1 thread): receiver protobuf parse {parse_rate:,.0f} spans/s; writer decode to columns {decode_rate:,.0f} spans/s")
    if args.compare_redaction:
        redacting = redaction_ceiling(bodies)
        print(f"ceiling: receiver parse + default redaction {redacting:,.0f} spans/s ({redacting / parse_rate:.2f}x the parse alone)")
    python_rate, engine_rate = writer_ceiling(bodies)
    limits = IngestLimits()
    print(f"writer ceiling into an embedded store, groups of {limits.decode_bytes >> 20} MiB (Python) and {limits.group_bytes >> 20} MiB (engine):"
          f" Python decode + columnar insert {python_rate:,.0f} spans/s;"
          f" engine decode + INSERT ... SELECT {engine_rate:,.0f} spans/s ({engine_rate / python_rate:.1f}x)")
    unmasked = end_to_end(bodies, args.seconds, "--no-redaction", flood=False)[0]["stored_per_s"] if args.compare_redaction else 0.0
    sustained, flood, rss = end_to_end(bodies, args.seconds)
    rate = sustained["stored_per_s"]
    print(f"sustained, OTLP/HTTP protobuf -> driftline serve -> embedded chDB: {rate:,.0f} spans/s stored, {sustained['cpu_per_100k']:.2f} CPU-s per 100k"
          f" (4 clients honouring Retry-After; answers {sustained['200']:.0f} x 200, {sustained['503']:.0f} x 503, {sustained['429']:.0f} x 429)")  # fmt: skip
    print(f"flood: 16 clients ignoring Retry-After offered {flood['offered_per_s']:,.0f} spans/s ({flood['offered_per_s'] / max(rate, 1):.1f}x the sustained rate);"
          f" answers {flood['200']:.0f} x 200, {flood['503']:.0f} x 503, {flood['429']:.0f} x 429; still stored {flood['stored_per_s']:,.0f} spans/s")  # fmt: skip
    print(f"serve peak RSS over the run: {rss / (1 << 20):,.0f} MiB; load average at the end: {os.getloadavg()[0]:.1f}")
    if args.compare_redaction:
        print(f"sustained with --no-redaction (run first): {unmasked:,.0f} spans/s; masked / unmasked: {rate / max(unmasked, 1):.2f}"
              f" (goal >= 0.9{', payload with content' if args.content else ''})")
    print(f"ratio sustained / engine writer ceiling: {rate / engine_rate:.2f}; / Python decode ceiling: {rate / decode_rate:.2f};"
          f" vs the 40,000 spans/s goal: {rate / 40_000:.2f}")


def against_baseline(bodies: list[bytes], rev: str, *, rounds: int, seconds: float, unmasked: bool) -> None:
    """The sustained phase `rounds` times for this code's serve and for `rev`'s, taking turns going
    first (and, with `unmasked`, this code with --no-redaction too); prints medians and ratios."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-baseline-") as tmp:
        baseline = environment(unpack(rev, Path(tmp)))
        contenders: dict[str, tuple[tuple[str, ...], dict[str, str] | None]] = {"this code": ((), None), rev: ((), baseline)}
        if unmasked:
            contenders["this code, --no-redaction"] = (("--no-redaction",), None)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for i in range(rounds):
            for name in in_turn(list(contenders), i):
                extra, env = contenders[name]
                runs[name].append(end_to_end(bodies, seconds, *extra, flood=False, env=env)[0])
                print(f"round {i + 1}/{rounds} {name}: {runs[name][-1]['stored_per_s']:,.0f} spans/s stored,"
                      f" {runs[name][-1]['cpu_per_100k']:.2f} CPU-s per 100k spans", flush=True)  # fmt: skip
    median = medians(runs)
    base = median[rev]
    for name, figures in median.items():
        rate, cpu = paired_ratios(runs[name], runs[rev])
        print(f"{name:>28}: median {figures['stored_per_s']:,.0f} spans/s stored, {figures['cpu_per_100k']:.2f} CPU-s per 100k spans;"
              f" vs {rev}: {figures['stored_per_s'] / base['stored_per_s']:.2f}x the rate, {base['cpu_per_100k'] / figures['cpu_per_100k']:.2f}x"
              f" in CPU per span (above 1: cheaper); paired by round: {rate:.2f}x, {cpu:.2f}x")  # fmt: skip


def paired_ratios(runs: list[dict[str, float]], baseline: list[dict[str, float]]) -> tuple[float, float]:
    """(rate, CPU per span) against the baseline as the median of each round's own ratio: the
    machine's load drifts from round to round, and a round's two runs, back to back, share it."""
    rates = [run["stored_per_s"] / base["stored_per_s"] for run, base in zip(runs, baseline, strict=True)]
    cpus = [base["cpu_per_100k"] / run["cpu_per_100k"] for run, base in zip(runs, baseline, strict=True)]
    return statistics.median(rates), statistics.median(cpus)


if __name__ == "__main__":
    main()
