"""An app instrumented by one real GenAI instrumentation, driving the real `openai` client through
every conformance scenario against a fake OpenAI server, its spans exported over OTLP/HTTP.

Runs in that instrumentation's own virtualenv (made by `make test` from tests/conformance/),
which holds the instrumentation, the openai release it supports and the OTel SDK, and not
driftline: the instrumentations pin conflicting releases of openai and the SDK. Each scenario is
one trace under a root span `conformance <scenario>`; once every span is exported the script
prints {"traces": {scenario: trace id}, "spans": how many spans it exported} as JSON.

    python conformance_app.py INSTRUMENTATION OTLP_URL OPENAI_BASE_URL
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
MODEL = "gpt-4o-mini"


def _instrument(name: str, provider: TracerProvider) -> None:
    """Switch on the instrumentation the way its README says."""
    if name in ("openai-v2", "openai-v2-latest"):
        if name == "openai-v2-latest":  # its opt-in to the latest GenAI conventions, read when it instruments
            os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        OpenLLMetry().instrument(tracer_provider=provider)
    elif name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

        OpenInference().instrument(tracer_provider=provider)
    elif name == "openlit":
        import openlit

        # Only its OpenAI instrumentation: the HTTP client spans it adds otherwise are not GenAI calls.
        openlit.init(disable_metrics=True, disable_events=True, disable_batch=True, pricing_json="{}",
                     disabled_instrumentors=["httpx", "requests", "urllib", "urllib3", "anthropic", "bedrock"])  # fmt: skip
    else:
        raise SystemExit(f"unknown instrumentation {name}")


def chat_json(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)


def chat_json_no_usage(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=f"{MODEL}-no-usage", messages=MESSAGES)


def chat_tools(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)


def stream_usage(client: openai.OpenAI) -> None:
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}):
        pass


def stream_no_usage(client: openai.OpenAI) -> None:
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        pass


def stream_closed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    next(iter(stream))
    stream.close()


def stream_break(client: openai.OpenAI) -> None:
    # The consumer stops reading and drops the stream, as a request handler returning early does.
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}):
        break


def embeddings(client: openai.OpenAI) -> None:
    client.embeddings.create(model="text-embedding-3-small", input="hello")


def rate_limited(client: openai.OpenAI) -> None:
    try:
        client.chat.completions.create(model="rate-limited", messages=MESSAGES)
    except openai.RateLimitError:
        pass


SCENARIOS: dict[str, Callable[[openai.OpenAI], None]] = {
    f.__name__: f
    for f in (chat_json, chat_json_no_usage, chat_tools, stream_usage, stream_no_usage, stream_closed, stream_break, embeddings, rate_limited)
}


class Counter(SpanProcessor):
    """Counts the spans that ended (each is exported as it ends), so the test knows when all are stored."""

    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


def main(argv: list[str]) -> None:
    name, otlp_url, base_url = argv
    provider = TracerProvider(resource=Resource.create({"service.name": f"conformance-{name}"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces")))
    counter = Counter()
    provider.add_span_processor(counter)
    trace.set_tracer_provider(provider)
    _instrument(name, provider)
    client = openai.OpenAI(base_url=base_url, api_key="sk-conformance", max_retries=0)
    tracer = trace.get_tracer("conformance")
    traces: dict[str, Any] = {}
    for scenario, run in SCENARIOS.items():
        with tracer.start_as_current_span(f"conformance {scenario}") as root:
            run(client)
            # A stream left by `break` is reclaimed by the garbage collector, at once or at its next
            # cycle; collecting here makes that moment the same on every run.
            gc.collect()
        traces[scenario] = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    print(json.dumps({"traces": traces, "spans": counter.ended}))


if __name__ == "__main__":
    main(sys.argv[1:])
