"""The demo: a simulated LLM application driven through driftline's real hooks into a store.

Nothing here fakes driftline: every request goes through `release`, `tag_retrieval`,
`record_confidence`, `llm_call` (streams included), `record_score` and `annotate`, one OTel SDK
TracerProvider per service with driftline's ReleaseContextProcessor and a BatchSpanProcessor
into the store, so the store fills exactly as it would from a real app. Only time is simulated:
the hooks read a clock that the simulation moves, over a history that ends now. Trace and span
ids come from a seeded generator, so a seed gives the same data every run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext

from driftline.analyzers._sql import render
from driftline.collector import (
    LLMCall,
    ReleaseContextProcessor,
    Store,
    StoreSpanExporter,
    annotate,
    llm_call,
    record_confidence,
    record_score,
    release,
    tag_retrieval,
)
from driftline.collector import _names as n

from ._world import HOUR, MINUTE, Change, Model, Route, Tenant, World, build_world

__all__ = ["DemoRun", "ModelSummary", "run_demo", "summary"]

QUALITY = "answer_quality"
"""The LLM judge's evaluation name (0..1)."""
FEEDBACK = "user_feedback"
"""Users' thumbs, recorded later against the judged call's ids."""
JUDGED_SHARE = 0.6
EXPORT_BATCH = 8192
"""Spans per insert: fewer, larger inserts keep the store's materialized views cheap."""
ENVIRONMENT = "prod"
_LOW_QUALITY_REASONS = ("misses the key step from the policy", "answers a different question",
                        "states a fact not in the context", "ignores the customer's plan")  # fmt: skip


@dataclass(frozen=True)
class DemoRun:
    """What a demo run wrote: how many calls, over which window, and the answer key."""

    calls: int
    seed: int
    start: datetime
    end: datetime
    changes: list[Change]
    seconds: float


@dataclass(frozen=True)
class ModelSummary:
    """One line of the closing table: calls, TTFT p95 and mean judged quality per model and prompt."""

    provider: str
    request_model: str
    response_model: str
    prompt: str
    calls: int
    ttft_p95_s: float | None
    quality: float | None


class SimClock:
    """The simulation's time in ns since the epoch; the hooks read it instead of the wall clock."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator, so a seed reproduces the same traces."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids-{seed}")

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class _Services:
    """One TracerProvider per deployed (service, version), all exporting into one shared store."""

    def __init__(self, store: Store, world: World, ids: IdGenerator, queue: int) -> None:
        self._providers: dict[tuple[str, str], TracerProvider] = {}
        for service, rollout in world.versions.items():
            for version in dict.fromkeys((rollout.before, rollout.after)):
                resource = Resource.create({"service.name": service, n.SERVICE_VERSION: version, n.DEPLOYMENT_ENVIRONMENT: ENVIRONMENT})
                provider = TracerProvider(resource=resource, id_generator=ids, shutdown_on_exit=False)
                provider.add_span_processor(ReleaseContextProcessor())
                exporter = StoreSpanExporter(store, owns_store=False)
                provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=queue, max_export_batch_size=min(queue, EXPORT_BATCH)))
                self._providers[service, version] = provider

    def provider(self, service: str, version: str) -> TracerProvider:
        return self._providers[service, version]

    def shutdown(self) -> None:
        """Export every queued span, then stop; the store itself stays open.

        The flush comes first because a provider's shutdown gives up on its queue after 30 s,
        and a demo on a busy machine must still lose nothing.
        """
        for provider in self._providers.values():
            provider.force_flush()
            provider.shutdown()


def _arrivals(world: World, calls: int, rng: random.Random) -> list[int]:
    """Request start times, following the world's traffic curve, ending a minute before now."""
    minutes = max(1, (world.end - world.start) // MINUTE - 1)
    weights = [world.traffic(world.start + m * MINUTE) for m in range(minutes)]
    picks = rng.choices(range(minutes), weights=weights, k=calls)
    return sorted(world.start + m * MINUTE + rng.randrange(MINUTE) for m in picks)


class _Simulation:
    """Plays requests against the world, each through the real hooks."""

    def __init__(self, world: World, services: _Services, rng: random.Random) -> None:
        self._world = world
        self._services = services
        self._rng = rng
        self._clock = SimClock(world.start)
        self._route_weights = [r.share for r in world.routes]
        self._tenant_weights = [t.weight for t in world.tenants]
        self._conversations: dict[str, str] = {}

    def annotate_changes(self) -> None:
        """Record the annotated changes, as the team's tooling would have when they happened."""
        for change in self._world.changes:
            if change.annotated:
                rollout = self._world.versions[change.service]
                version = rollout.after if change.at >= rollout.at else rollout.before
                annotate(change.kind, change.target, version=change.version, description=change.description, author=change.author,
                         at=_utc(change.at), tracer_provider=self._services.provider(change.service, version))  # fmt: skip

    def request(self, t: int) -> None:
        """One user request: its release context, its input, its LLM call.

        The call's span is the trace's root: server spans would double the spans to write and add
        nothing the analyses read.
        """
        rng = self._rng
        route = rng.choices(self._world.routes, self._route_weights)[0]
        tenant = rng.choices(self._world.tenants, self._tenant_weights)[0]
        version = self._world.versions[route.service].value(t, rng)
        self._clock.now = t
        with release(route=route.path, tenant=tenant.name, prompt_name=route.prompt, prompt_version=route.prompt_version.value(t, rng)):
            confidence = self._prepare_input(route, tenant)
            self._call(route, tenant, self._services.provider(route.service, version), confidence)

    def _prepare_input(self, route: Route, tenant: Tenant) -> float | None:
        """Retrieval and speech recognition before the call; returns the ASR confidence, if any."""
        rng = self._rng
        if route.index and route.index_version:
            tag_retrieval(index_name=route.index, index_version=route.index_version.value(self._clock.now, rng),
                          documents=rng.randint(6, 20), embedding_model="text-embedding-3-small")  # fmt: skip
            self._clock.advance(rng.uniform(0.03, 0.12))
        if not route.asr:
            return None
        mean, spread = (0.70, 0.16) if rng.random() < tenant.noisy_audio else (0.94, 0.05)  # a bad line, or a clean one
        words = [min(1.0, max(0.0, rng.gauss(mean, spread))) for _ in range(rng.randint(12, 90))]
        record_confidence(words=words, engine="whisper-large-v3")
        self._clock.advance(rng.uniform(0.15, 0.4))
        return sum(words) / len(words)

    def _call(self, route: Route, tenant: Tenant, provider: TracerProvider, confidence: float | None) -> None:
        """The LLM call: rate-limited, timed out (raised, as client libraries do), or answered."""
        rng, clock = self._rng, self._clock
        model = route.model.value(clock.now, rng)
        quality: float | None = None
        try:
            with llm_call(provider=model.provider, model=model.request, stream=route.stream, server_address=model.server,
                          conversation_id=self._conversation(route, tenant), clock=clock, tracer_provider=provider) as call:  # fmt: skip
                if rng.random() < self._world.rate_limit(model.provider, clock.now):
                    clock.advance(rng.uniform(0.05, 0.3))
                    call.failed(error_type=model.rate_limit_error, http_status=429, message=f"Rate limit reached for {model.request}")
                    return
                if rng.random() < self._world.timeout_rate:
                    clock.advance(30.0)
                    raise TimeoutError(f"{model.provider} did not answer within 30 s")
                if not self._respond(call, route, model):
                    quality = self._judge(route, model, tenant, confidence, call)
        except TimeoutError:
            return
        if quality is not None:
            self._feedback(route, call.span.get_span_context(), quality, provider)

    def _respond(self, call: LLMCall, route: Route, model: Model) -> bool:
        """The model answers (streamed or not); records what the provider returned. True if cancelled."""
        rng = self._rng
        input_tokens = self._tokens(route.input_tokens)
        wanted = self._tokens(route.output_tokens)
        output = min(wanted, route.max_tokens)
        ttft = model.ttft_median_s * math.exp(model.ttft_sigma * rng.gauss(0, 1)) + input_tokens * 4e-5
        if self._world.rate_limit(model.provider, self._clock.now) > self._world.baseline_429:
            ttft *= 1.5  # a provider shedding load answers slower too
        per_token = 1 / (model.tokens_per_s * rng.uniform(0.8, 1.2))
        billed, cancelled = output, False
        if route.stream:
            delivered, cancelled = self._stream(call, ttft, output, per_token, route.cancel_rate)
            if cancelled:  # the provider keeps generating (and billing) until it notices
                billed = min(output, delivered + int(rng.uniform(0.3, 1.5) / per_token))
        else:
            self._clock.advance(ttft + output * per_token)
        cached = (int(input_tokens * rng.uniform(0.3, 0.9)) // 128) * 128 if input_tokens >= 1024 and rng.random() < 0.5 else 0
        cost = ((input_tokens - cached) * model.usd_per_mtok_in + cached * model.usd_per_mtok_cached + billed * model.usd_per_mtok_out) / 1e6
        call.response(model=model.response, response_id=self._response_id(model), fingerprint=model.fingerprint,
                      finish_reason=None if cancelled else ("length" if wanted > route.max_tokens else "stop"),
                      input_tokens=input_tokens, output_tokens=billed, cached_tokens=cached or None, cost=round(cost, 7))  # fmt: skip
        return cancelled

    def _stream(self, call: LLMCall, ttft: float, tokens: int, per_token: float, cancel_rate: float) -> tuple[int, bool]:
        """Consume the stream; a user who goes away stops early. Returns (tokens delivered, cancelled)."""
        stop_at = tokens * self._rng.uniform(0.15, 0.7) if self._rng.random() < cancel_rate else math.inf
        delivered = 0
        for size in call.stream(self._chunks(ttft, tokens, per_token), tokens=int):
            delivered += size
            if stop_at <= delivered < tokens:
                self._clock.advance(self._rng.uniform(0.05, 0.3))
                return delivered, True
        return delivered, False

    def _chunks(self, ttft: float, tokens: int, per_token: float) -> Iterator[int]:
        """The provider's stream: token counts per chunk, arriving on the simulated clock."""
        rng, clock = self._rng, self._clock
        clock.advance(ttft)
        left = tokens
        while left > 0:
            size = min(left, 3 + int(rng.random() * 14))
            yield size
            left -= size
            stall = rng.uniform(1.0, 4.0) if rng.random() < 0.003 else 0.0
            clock.advance(size * per_token + stall)

    def _judge(self, route: Route, model: Model, tenant: Tenant, confidence: float | None, call: LLMCall) -> float:
        """Validate structured output, then let the LLM judge score a share of answers; returns the quality."""
        rng = self._rng
        quality = route.quality + model.quality_shift + tenant.quality_offset + rng.gauss(0, 0.07)
        if confidence is not None:  # the LLM took misheard words as fact
            quality -= 1.2 * max(0.0, 0.86 - confidence)
        if route.validated:
            outcome = self._validation(confidence)
            call.validation(outcome)
            quality -= 0.0 if outcome == "ok" else 0.2
        quality = round(min(1.0, max(0.0, quality)), 2)
        if rng.random() < JUDGED_SHARE:
            reason = rng.choice(_LOW_QUALITY_REASONS) if quality < 0.5 else None
            record_score(QUALITY, value=quality, explanation=reason, clock=self._clock)
        return quality

    def _validation(self, confidence: float | None) -> str:
        failure = 0.03 + 0.6 * max(0.0, 0.86 - (confidence or 1.0))
        if self._rng.random() >= failure:
            return "ok"
        return self._rng.choices(("parse_error", "schema_error", "semantic_error"), (0.15, 0.4, 0.45))[0]

    def _feedback(self, route: Route, judged: SpanContext, quality: float, provider: TracerProvider) -> None:
        """Some users press thumbs up or down a while after the answer; worse answers get more downs."""
        rng = self._rng
        if rng.random() >= route.feedback_rate:
            return
        down = rng.random() < min(0.95, max(0.02, (0.95 - quality) * 1.4))
        at = min(self._world.end, self._clock.now + int(rng.uniform(20, 900) * 1e9))
        record_score(FEEDBACK, value=0.0 if down else 1.0, label="down" if down else "up", trace_id=format(judged.trace_id, "032x"),
                     span_id=format(judged.span_id, "016x"), clock=lambda: at, tracer_provider=provider)  # fmt: skip

    def _tokens(self, shape: tuple[float, float]) -> int:
        median, sigma = shape
        return max(5, int(median * math.exp(sigma * self._rng.gauss(0, 1))))

    def _response_id(self, model: Model) -> str:
        prefix = "chatcmpl-" if model.provider == "openai" else "msg_01"
        return f"{prefix}{self._rng.getrandbits(96):024x}"

    def _conversation(self, route: Route, tenant: Tenant) -> str | None:
        """Chat turns continue a tenant's current conversation, or start a new one."""
        if not route.conversational:
            return None
        current = self._conversations.get(tenant.name)
        if current is None or self._rng.random() < 0.35:
            current = self._conversations[tenant.name] = f"conv_{self._rng.getrandbits(64):016x}"
        return current


def run_demo(
    store: Store,
    *,
    calls: int,
    seed: int,
    hours: float = 6.0,
    end: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> DemoRun:
    """Simulate `calls` LLM calls over the `hours` before `end` (default now) into `store`.

    `progress(n)` is told each time n more calls are done. The store must be migrated.
    """
    if calls < 1:
        raise ValueError(f"calls must be at least 1, not {calls}")
    if hours < 3:
        raise ValueError(f"hours must be at least 3 (the incident is 90 minutes before the end, after a baseline), not {hours}")
    started = time.perf_counter()
    end_ns = time.time_ns() if end is None else int(end.timestamp() * 1e9)
    rng = random.Random(seed)
    world = build_world(end_ns - int(hours * HOUR), end_ns, rng)
    services = _Services(store, world, SeededIds(seed), queue=3 * calls + 1024)  # room for every span: none dropped
    step = max(1, calls // 200)
    try:
        simulation = _Simulation(world, services, rng)
        simulation.annotate_changes()
        for done, t in enumerate(_arrivals(world, calls, rng), 1):
            simulation.request(t)
            if progress is not None and (done % step == 0 or done == calls):
                progress(step if done % step == 0 else done % step)
    finally:
        services.shutdown()
    return DemoRun(calls, seed, _utc(world.start), _utc(world.end), world.changes, time.perf_counter() - started)


def summary(store: Store) -> list[ModelSummary]:
    """What the store holds per model and prompt version: calls, TTFT p95, mean judged quality."""
    rows = store.rows(render("demo_summary"), {"evaluation": QUALITY})
    return [ModelSummary(*row) for row in rows]
