"""Spans per second into the embedded store: StoreSpanExporter.export against a bare Arrow insert.

driftline: `StoreSpanExporter.export(spans)`, i.e. converting finished SDK spans to otel_traces
columns and inserting them. Baseline: `client.insert_arrow("otel_traces", table)` of the same rows
already laid out as a pyarrow Table (no conversion at all). Both write the same table, through
the same materialized views, in one embedded engine; batches interleave. The ratio is the median
of per-round ratios in process CPU time (Python plus the engine's threads), which other load on a
shared machine does not distort; wall-clock spans/s are printed beside it.

With --compare-redaction a third contender runs in the same rounds: the exporter with redaction
off (`redaction=False`), and the ratio masked / unmasked is printed (issue 15's goal: >= 0.9);
--content gives every span the prompt and completion an app recording content sends (an e-mail
address planted in one span in 20), so the detectors have something to scan.

--baseline REV runs this benchmark --pairs times in this code's process and in one of git revision
REV's (unpacked from git, first on PYTHONPATH), taking turns, and prints each side's median spans per
CPU-second with the ratios: the exporter's, and the bare insert's (which pays only the engine and
the materialized views, so it shows what the views cost). With --compare-redaction this code also
reports the exporter with redaction off, like with like for a baseline that predates redaction.

Run: .venv/bin/python bench/bench_export.py [--batch 2048] [--rounds 15] [--content] [--compare-redaction]
     .venv/bin/python bench/bench_export.py --baseline 19d3829 --pairs 4 --compare-redaction
Goal: driftline / bare >= 0.7.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from _baseline import environment, in_turn, medians, unpack
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from driftline.collector import Store, StoreSpanExporter, connect, migrate
from driftline.collector.store._spans import OTEL_TRACES_COLUMNS, spans_to_columns

GOAL = 0.7
REDACTION_GOAL = 0.9

_MAP = pa.map_(pa.string(), pa.string())
_ARROW_TYPES: dict[str, pa.DataType] = {
    "Timestamp": pa.timestamp("ns"), "Duration": pa.uint64(), "ResourceAttributes": _MAP, "SpanAttributes": _MAP,
    "Events.Timestamp": pa.list_(pa.timestamp("ns")), "Events.Name": pa.list_(pa.string()), "Events.Attributes": pa.list_(_MAP),
    "Links.TraceId": pa.list_(pa.string()), "Links.SpanId": pa.list_(pa.string()), "Links.TraceState": pa.list_(pa.string()),
    "Links.Attributes": pa.list_(_MAP),
}  # fmt: skip


def content(i: int) -> dict[str, str]:
    """The prompt and completion of call `i` as content-recording instrumentations write them (~1 KiB)."""
    who = f"customer{i}@example.com" if i % 20 == 0 else f"customer {i}"
    question = f"Hello, I am {who}. My order 1{i:07d} from March has not arrived; the tracking page says it left the warehouse. " * 2
    answer = "I am sorry to hear that. I checked the order: it is with the carrier and due on Friday. " * 3
    return {"gen_ai.input.messages": json.dumps([{"role": "system", "parts": [{"type": "text", "content": "You are a support agent."}]},
                                                 {"role": "user", "parts": [{"type": "text", "content": question}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}])}  # fmt: skip


def make_spans(count: int, *, with_content: bool = False) -> list[ReadableSpan]:
    """Finished GenAI spans as an instrumented app makes them: ~20 attributes, one evaluation event each tenth
    (and the prompt and completion with `with_content`)."""
    captured = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", "service.version": "1.4.2", "deployment.environment.name": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("bench")
    for i in range(count):
        attributes = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": f"chatcmpl-{i}",
            "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 800 + i % 300,
            "gen_ai.usage.output_tokens": 100 + i % 90, "gen_ai.request.stream": True,
            "gen_ai.response.time_to_first_chunk": 0.2 + (i % 50) / 100, "gen_ai.prompt.name": "answer",
            "gen_ai.prompt.version": f"v{8 + i % 2}", "driftline.route": "/chat/answer", "driftline.tenant": f"t{i % 40}",
            "driftline.retrieval.index.name": "kb", "driftline.retrieval.index.version": "41", "driftline.cost": 0.0037,
            "driftline.stream.cancelled": False, "driftline.stream.tokens_delivered": 100 + i % 90, "server.address": "api.openai.com",
        }  # fmt: skip
        if with_content:
            attributes.update(content(i))
        span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes)
        if i % 10 == 0:
            span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "faithfulness", "gen_ai.evaluation.score.value": 0.8})
        span.end()
    return list(captured.get_finished_spans())


def arrow_table(spans: Sequence[ReadableSpan]) -> pa.Table:
    """The same rows as a pyarrow Table, built ahead of time (the baseline does no conversion)."""
    arrays = []
    for name, values in zip(OTEL_TRACES_COLUMNS, spans_to_columns(spans)):
        kind = _ARROW_TYPES.get(name, pa.string())
        if kind == _MAP:
            values = [list(m.items()) for m in values]
        elif kind == pa.list_(_MAP):
            values = [[list(m.items()) for m in ms] for ms in values]
        arrays.append(pa.array(values, type=kind))
    return pa.Table.from_arrays(arrays, names=list(OTEL_TRACES_COLUMNS))


def timed(run: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: Python and the engine's threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(store: Store, size: int, rounds: int, *, with_content: bool, compare_redaction: bool) -> dict[str, float]:
    """Interleaved rounds, each on fresh spans made just before it (an identical block would be
    deduplicated, and a heap of queued batches no exporter ever sees would skew the GC's work); the
    contenders take turns going first."""
    masked = StoreSpanExporter(store)
    contenders: dict[str, Any] = {
        "driftline": lambda: functools.partial(masked.export, make_spans(size, with_content=with_content)),
        "bare": lambda: functools.partial(store.client.insert_arrow, "otel_traces", arrow_table(make_spans(size, with_content=with_content))),
    }  # fmt: skip
    if compare_redaction:  # (a baseline from before redaction has no such switch: it never gets here)
        unmasked = StoreSpanExporter(store, owns_store=False, redaction=False)
        contenders["unmasked"] = lambda: functools.partial(unmasked.export, make_spans(size, with_content=with_content))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for i in range(rounds + 1):
        runs = [(name, make()) for name, make in contenders.items()]
        turn = i % len(runs)
        for name, run in runs[turn:] + runs[:turn]:
            took = timed(run)
            if i > 0:  # the first round warms up
                times[name].append(took)
    written = store.rows("SELECT count() FROM otel_traces")[0][0]
    assert written == len(contenders) * (rounds + 1) * size, f"{written} rows in otel_traces, expected {len(contenders) * (rounds + 1) * size}"
    median = statistics.median
    result = {f"{name}{kind}": size / median(t[index] for t in taken) for name, taken in times.items() for kind, index in (("", 0), ("_cpu", 1))}
    result["ratio"] = median(b[1] / o[1] for o, b in zip(times["driftline"], times["bare"]))
    if compare_redaction:
        result["redaction_ratio"] = median(u[1] / o[1] for o, u in zip(times["driftline"], times["unmasked"]))
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048, help="spans per export call (the exporter's default batch)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved batch pairs")
    parser.add_argument("--content", action="store_true", help="spans carry a prompt and a completion (~1 KiB), an e-mail in one in 20")
    parser.add_argument("--compare-redaction", action="store_true", help="also run the exporter with redaction off; print masked / unmasked")
    parser.add_argument("--baseline", metavar="REV", help="instead: run in this code's process and in git revision REV's, taking turns")
    parser.add_argument("--pairs", type=int, default=3, help="with --baseline: runs of each side (median taken)")
    parser.add_argument("--json", action="store_true", help="print only the figures, as JSON (what --baseline reads)")
    args = parser.parse_args(argv)
    if args.baseline:
        return against_baseline(args.baseline, args.pairs, [f"--batch={args.batch}", f"--rounds={args.rounds}", *(["--content"] if args.content else [])],
                                compare_redaction=args.compare_redaction)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp, connect(f"chdb://{tmp}") as store:
        migrate(store)
        store.command("SYSTEM STOP MERGES")  # merges of earlier batches would land in random rounds
        result = measure(store, args.batch, args.rounds, with_content=args.content, compare_redaction=args.compare_redaction)
    if args.json:
        print(json.dumps(result))
        return result
    print(f"StoreSpanExporter.export:    {result['driftline']:>7,.0f} spans/s wall, {result['driftline_cpu']:>7,.0f} spans per CPU-second"
          f" (conversion + default redaction + insert, batches of {args.batch}{', with content' if args.content else ''})")
    if args.compare_redaction:
        print(f"  ... with redaction off:    {result['unmasked']:>7,.0f} spans/s wall, {result['unmasked_cpu']:>7,.0f} spans per CPU-second")
    print(f"bare insert_arrow (no conv): {result['bare']:>7,.0f} spans/s wall, {result['bare_cpu']:>7,.0f} spans per CPU-second")
    print(f"median ratio driftline/bare: {result['ratio']:.2f}x in CPU time over {args.rounds} interleaved rounds (goal >= {GOAL}x)"
          f" {'OK' if result['ratio'] >= GOAL else 'UNDER GOAL'}")  # fmt: skip
    if args.compare_redaction:
        print(f"median ratio masked/unmasked: {result['redaction_ratio']:.2f}x in CPU time (goal >= {REDACTION_GOAL}x)"
              f" {'OK' if result['redaction_ratio'] >= REDACTION_GOAL else 'UNDER GOAL'}")  # fmt: skip
    return result


def against_baseline(rev: str, pairs: int, common: list[str], *, compare_redaction: bool) -> dict[str, float]:
    """This benchmark `pairs` times in a process of this code and one of `rev`, taking turns going first;
    prints the median spans per CPU-second of each side and the ratios (this code / `rev`)."""
    with tempfile.TemporaryDirectory(prefix="driftline-bench-baseline-") as tmp:
        sides = {"this code": (environment(None), ["--compare-redaction"] if compare_redaction else []), rev: (environment(unpack(rev, Path(tmp))), [])}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for i in range(pairs):
            for name in in_turn(list(sides), i):
                env, extra = sides[name]
                done = subprocess.run([sys.executable, __file__, *common, *extra, "--json"], env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{name}'s run failed:\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(done.stdout.splitlines()[-1]))
                print(f"run {i + 1}/{pairs} {name}: export {runs[name][-1]['driftline_cpu']:,.0f}, bare {runs[name][-1]['bare_cpu']:,.0f} spans per CPU-second",
                      flush=True)  # fmt: skip
    median = medians(runs)
    ours, base = median["this code"], median[rev]
    result = {"export_ratio": ours["driftline_cpu"] / base["driftline_cpu"], "bare_ratio": ours["bare_cpu"] / base["bare_cpu"]}
    print(f"exporter: {ours['driftline_cpu']:,.0f} against {base['driftline_cpu']:,.0f} spans per CPU-second ({result['export_ratio']:.2f}x {rev})")
    if compare_redaction:
        result["unmasked_ratio"] = ours["unmasked_cpu"] / base["driftline_cpu"]
        print(f"  ... this code with redaction off: {ours['unmasked_cpu']:,.0f} ({result['unmasked_ratio']:.2f}x {rev})")
    print(f"bare insert (engine + views only): {ours['bare_cpu']:,.0f} against {base['bare_cpu']:,.0f} ({result['bare_ratio']:.2f}x {rev})")
    return result


if __name__ == "__main__":
    main()
