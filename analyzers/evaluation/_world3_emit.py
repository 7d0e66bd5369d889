"""World 3's write path: planned calls become spans the way Switchboard's services would send them.

voice-gateway and chat-assist use driftline's hooks (release, tag_retrieval, record_confidence,
llm_call with a simulated clock, record_score); ticket-worker is traced by a third-party GenAI
instrumentation on the bare OpenTelemetry SDK (legacy `gen_ai.system`, in-span evaluation events),
with driftline's ReleaseContextProcessor stamping route and tenant. Every (service, version) has
its own TracerProvider, as a deployed process would; all spans reach the store through
StoreSpanExporter.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from driftline.collector import LLMCall, ReleaseContextProcessor, Store, StoreSpanExporter, annotate, llm_call, record_confidence, record_score, release, tag_retrieval

from ._world3_sim import NS, VERSIONS, Call, World, plan

HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com", "vertex_ai": "europe-west4-aiplatform.googleapis.com"}
ASR_ENGINE = {"3.5.0": "conformer-6-stream"}
"""The ASR engine a voice-gateway version transcribes with (all others: conformer-5)."""


class _Batches(SpanExporter):
    """Hands spans to StoreSpanExporter in large batches, as a BatchSpanProcessor would, without its thread and queue limit."""

    def __init__(self, store: Store, size: int = 5000) -> None:
        self._out = StoreSpanExporter(store, owns_store=False)
        self._spans: list[ReadableSpan] = []
        self._size = size

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._spans.extend(spans)
        if len(self._spans) >= self._size:
            self.flush()
        return SpanExportResult.SUCCESS

    def flush(self) -> None:
        spans, self._spans = self._spans, []
        if spans and self._out.export(spans) is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"world3: the store refused {len(spans)} spans (see the driftline.exporter log)")

    def shutdown(self) -> None:
        self.flush()


class _Ids(IdGenerator):
    """Trace and span ids from the scenario's seed, so a run is repeatable id for id."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


class _Clock:
    """The simulated time the hooks read (ns since the epoch)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class _Services:
    """One TracerProvider per (service, version), made on first use."""

    def __init__(self, exporter: _Batches, ids: _Ids) -> None:
        self._exporter, self._ids = exporter, ids
        self._providers: dict[tuple[str, str], TracerProvider] = {}

    def get(self, service: str, version: str) -> TracerProvider:
        key = (service, version)
        if key not in self._providers:
            resource = Resource({"service.name": service, "service.version": version, "deployment.environment.name": "prod"})
            provider = TracerProvider(resource=resource, id_generator=self._ids)
            provider.add_span_processor(ReleaseContextProcessor())
            provider.add_span_processor(SimpleSpanProcessor(self._exporter))
            self._providers[key] = provider
        return self._providers[key]

    def shutdown(self) -> None:
        self._exporter.flush()
        for provider in self._providers.values():
            provider.shutdown()


def write(world: World, store: Store) -> int:
    """Plan the world and write it into `store`: change annotations, then every call; returns the calls written."""
    calls = plan(world)
    services = _Services(_Batches(store), _Ids(random.Random(f"{world.seed}/ids")))
    try:
        _annotations(world, services)
        clock = _Clock()
        for call in calls:
            if call.route.service == "ticket-worker":
                _third_party(call, services.get(call.route.service, call.service_version))
            else:
                _hooked(call, services.get(call.route.service, call.service_version), clock)
    finally:
        services.shutdown()
    return len(calls)


def _annotations(world: World, services: _Services) -> None:
    """Each recorded change, sent by the service it concerns (a deploy by its new version, as a start-up hook would)."""
    for change in world.changes:
        if change.annotation is None:
            continue
        service, kind, target, version, description = change.annotation
        provider = services.get(service, version if kind == "deploy" else VERSIONS[service])
        at = datetime.fromtimestamp(change.at / NS, tz=UTC)
        annotate(kind, target, version=version, description=description, author="switchboard-ci", at=at, tracer_provider=provider)


def _hooked(call: Call, provider: TracerProvider, clock: _Clock) -> None:
    r = call.route
    clock.now = call.t
    with release(route=r.path, tenant=call.tenant, prompt_name=r.prompt, prompt_version=call.prompt_version):
        if r.index and call.index_version:
            tag_retrieval(index_name=r.index, index_version=call.index_version, documents=6, embedding_model="text-embedding-3-large")
        if call.confidence is not None:
            words = max(8, call.tokens_in // 30)
            record_confidence(mean=round(call.confidence, 4), minimum=round(max(0.0, call.confidence - 0.3), 4),
                              low_words=round(words * max(0.0, 0.9 - call.confidence)), engine=ASR_ENGINE.get(call.service_version, "conformer-5"))  # fmt: skip
        with llm_call(provider=r.provider, model=call.request_model, stream=r.stream, server_address=HOSTS[r.provider], clock=clock,
                      tracer_provider=provider) as span:  # fmt: skip
            _respond(call, span, clock)
            context = span.span.get_span_context()
    if call.score is not None and call.score_at is not None and r.evaluation:
        at = call.score_at
        record_score(r.evaluation, value=call.score, trace_id=f"{context.trace_id:032x}", span_id=f"{context.span_id:016x}",
                     clock=lambda: at, tracer_provider=provider)  # fmt: skip


def _respond(call: Call, span: LLMCall, clock: _Clock) -> None:
    """Inside the call's span: the stream (read to its end or dropped early), the response, validation, an inline score."""
    end = call.t + int(call.duration * NS)
    if call.error is not None:
        clock.now = end
        span.failed(error_type=call.error, http_status=call.http_status)
        return
    if call.ttft is not None:
        read = 0
        for tokens in span.stream(_chunks(call, clock), tokens=lambda n: n):
            read += tokens
            if call.delivered is not None and read >= call.delivered:
                break  # the caller went away: the stream is left unread, the hook counts a cancel
    span.response(model=call.response_model, fingerprint=call.fingerprint, finish_reason=None if call.delivered is not None else "stop",
                  input_tokens=call.tokens_in, output_tokens=call.tokens_out, cost=call.cost)  # fmt: skip
    if call.validation is not None:
        span.validation(call.validation)
    clock.now = end
    if call.score is not None and call.score_at is None and call.route.evaluation:
        record_score(call.route.evaluation, value=call.score, clock=clock)


def _chunks(call: Call, clock: _Clock) -> Iterator[int]:
    """The answer's token counts in six chunks from the first token to the last one read (advancing the clock as they
    arrive); after a cancel, one more chunk with the tokens the provider generated that nobody read."""
    assert call.ttft is not None
    tokens = call.delivered if call.delivered is not None else call.tokens_out
    first, last = call.t + int(call.ttft * NS), call.t + int(call.duration * NS)
    for i in range(6):
        clock.now = first + (last - first) * i // 5
        yield tokens // 6 + (1 if i < tokens % 6 else 0)
    if call.delivered is not None:
        yield call.tokens_out - call.delivered


def _third_party(call: Call, provider: TracerProvider) -> None:
    """A vendor GenAI instrumentation's span: conventions only, with the app's own validator and judge on it."""
    r = call.route
    tracer = provider.get_tracer("opentelemetry.instrumentation.vertexai", "2.1b0")
    end = call.t + int(call.duration * NS)
    with release(route=r.path, tenant=call.tenant, prompt_name=r.prompt, prompt_version=call.prompt_version):
        span = tracer.start_span(f"chat {call.request_model}", kind=SpanKind.CLIENT, start_time=call.t,
                                 attributes={"gen_ai.operation.name": "chat", "gen_ai.system": r.provider, "gen_ai.request.model": call.request_model,
                                             "server.address": HOSTS[r.provider]})  # fmt: skip
    if call.error is not None:
        span.set_attributes({"error.type": call.error, **({"http.response.status_code": call.http_status} if call.http_status else {})})
        span.set_status(Status(StatusCode.ERROR, call.error))
    else:
        span.set_attributes({"gen_ai.response.model": call.response_model or "", "gen_ai.response.finish_reasons": ("stop",),
                             "gen_ai.usage.input_tokens": call.tokens_in, "gen_ai.usage.output_tokens": call.tokens_out,
                             "gen_ai.usage.cost": call.cost or 0.0})  # fmt: skip
        if call.validation is not None:  # the worker's JSON-schema check, on the vendor's span
            span.set_attribute("driftline.validation.outcome", call.validation)
    if call.score is not None and r.evaluation:
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": r.evaluation, "gen_ai.evaluation.score.value": call.score}, timestamp=end)
    span.end(end_time=end)
