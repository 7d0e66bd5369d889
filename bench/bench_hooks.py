"""Overhead of recording a GenAI call through driftline's hooks, against the bare OTel SDK.

driftline: a provider with the ReleaseContextProcessor; per request `release(...)`, then
`llm_call(...)` and `call.response(...)`. Baseline: the same span with the same attributes made
with `tracer.start_as_current_span` + `set_attributes`. Both end in the same no-op exporter
behind a SimpleSpanProcessor. Repetitions interleave; the figure is the median ratio.

Run: .venv/bin/python bench/bench_hooks.py [--calls 2000] [--rounds 25]
Goal: driftline / bare <= 1.25.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from driftline.collector import ReleaseContextProcessor, llm_call, release

GOAL = 1.25

RELEASE = {"gen_ai.prompt.name": "answer", "gen_ai.prompt.version": "v8", "driftline.route": "/chat/answer", "driftline.tenant": "acme"}
REQUEST = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.request.stream": False}
RESPONSE = {
    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1", "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 164, "gen_ai.usage.cost.amount": 0.0037,
    "gen_ai.usage.cost.currency": "USD", "gen_ai.usage.cost.source": "app",
}  # fmt: skip


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def driftline_provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(ReleaseContextProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def bare_provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def with_driftline(provider: TracerProvider) -> Callable[[], None]:
    def one_call() -> None:
        with release(prompt_name="answer", prompt_version="v8", route="/chat/answer", tenant="acme"):
            with llm_call(provider="openai", model="gpt-4o", tracer_provider=provider) as call:
                call.response(model="gpt-4o-2024-08-06", response_id="chatcmpl-1", finish_reason="stop",
                              input_tokens=812, output_tokens=164, cost=0.0037)  # fmt: skip

    return one_call


def with_bare_sdk(provider: TracerProvider) -> Callable[[], None]:
    tracer = provider.get_tracer("bench")

    def one_call() -> None:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={**REQUEST, **RELEASE}) as span:
            span.set_attributes(RESPONSE)

    return one_call


def same_spans() -> None:
    """Refuse to compare unless both sides make the same span."""
    ours, bare = InMemorySpanExporter(), InMemorySpanExporter()
    with_driftline(driftline_provider(ours))()
    with_bare_sdk(bare_provider(bare))()
    (a,), (b,) = ours.get_finished_spans(), bare.get_finished_spans()
    assert (a.name, a.kind, dict(a.attributes or {})) == (b.name, b.kind, dict(b.attributes or {})), (a.attributes, b.attributes)


def timed(op: Callable[[], None], calls: int) -> float:
    """CPU seconds per call of this thread (other processes on a shared machine do not count)."""
    start = time.thread_time()
    for _ in range(calls):
        op()
    return (time.thread_time() - start) / calls


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed batch")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved batch pairs")
    args = parser.parse_args(argv)
    same_spans()
    ours, bare = with_driftline(driftline_provider(NoopExporter())), with_bare_sdk(bare_provider(NoopExporter()))
    timed(ours, args.calls), timed(bare, args.calls)  # warm up
    ratios, ours_s, bare_s = [], [], []
    for i in range(args.rounds):
        if i % 2 == 0:
            ours_one, bare_one = timed(ours, args.calls), timed(bare, args.calls)
        else:
            bare_one, ours_one = timed(bare, args.calls), timed(ours, args.calls)
        ours_s.append(ours_one)
        bare_s.append(bare_one)
        ratios.append(ours_one / bare_one)
    result = {"driftline_us": statistics.median(ours_s) * 1e6, "bare_us": statistics.median(bare_s) * 1e6, "ratio": statistics.median(ratios)}
    print(f"GenAI call, driftline hooks: {result['driftline_us']:.1f} us/call")
    print(f"GenAI call, bare OTel SDK:   {result['bare_us']:.1f} us/call")
    print(f"median ratio driftline/bare: {result['ratio']:.2f}x over {args.rounds} interleaved rounds (goal <= {GOAL}x)"
          f" {'OK' if result['ratio'] <= GOAL else 'OVER GOAL'}")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
