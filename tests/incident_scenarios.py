"""Incident scenarios with known causes, written through driftline's real hooks.

Each scenario simulates an LLM app over a time range with a seeded random generator: calls go
through `llm_call` (with its clock set to the simulated time), scores through `record_score`,
changes through `annotate`. Spans are collected in memory and written into the store in one
batch with the real `write_spans` (or sent over OTLP to `driftline serve`), so the materialized
views fill exactly as in production.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftline.collector import (
    ReleaseContextProcessor,
    Store,
    annotate,
    llm_call,
    record_score,
    release,
)
from driftline.collector.store._spans import write_spans

ROUTES = ("/chat/answer", "/search")
TENANTS = ("acme", "globex", "initech", "umbrella")
OLD_MODEL, NEW_MODEL = "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"


def _this_minute() -> datetime:
    """Now, on a whole minute: scenario times then fall the same way into buckets on every run."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1e9)


@dataclass
class Call:
    """What one simulated call looks like; `Scenario.shape` edits it per time and route."""

    route: str
    tenant: str
    provider: str = "openai"
    response_model: str = OLD_MODEL
    fingerprint: str | None = "fp_a1"
    prompt_version: str = "v7"
    index_version: str = "2026-11-01"
    quality: float = 0.85
    error: str | None = None
    http_status: int | None = None
    cancelled: bool = False
    cost: float = 0.002
    pace: float = 1.0
    """Scales the time between the call's chunks, so its latency and TTFT."""


@dataclass
class Scenario:
    """A simulated app: `calls` spread evenly over [start, end), shaped by `shape(call, time)`."""

    start: datetime
    end: datetime
    calls: int
    shape: Callable[[Call, datetime, random.Random], None]
    service: str = "support-bot"
    seed: int = 7
    changes: list[tuple[datetime, str, str, str | None, str]] = field(default_factory=list)
    marks: dict[str, datetime] = field(default_factory=dict)
    """Named moments of the scenario (when the cause began, when a burst ended…), for assertions."""

    def write(self, store: Store) -> None:
        """Simulate every call and change and write them into `store` in one batch."""
        write_spans(store, self.spans())

    def spans(self) -> tuple[ReadableSpan, ...]:
        """Every span of the simulation (calls with their scores, then the annotated changes)."""
        captured = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": self.service, "service.version": "1.4.2"}))
        provider.add_span_processor(ReleaseContextProcessor())
        provider.add_span_processor(SimpleSpanProcessor(captured))
        rng = random.Random(self.seed)
        step = (self.end - self.start) / self.calls
        for i in range(self.calls):
            when = self.start + step * i
            call = Call(route=rng.choice(ROUTES), tenant=rng.choice(TENANTS))
            self.shape(call, when, rng)
            _simulate(provider, call, when, rng)
        for at, kind, target, version, description in self.changes:
            annotate(kind, target, version=version, description=description, at=at, tracer_provider=provider)
        provider.shutdown()
        return captured.get_finished_spans()


def _simulate(provider: TracerProvider, call: Call, when: datetime, rng: random.Random) -> None:
    started = _ns(when)
    ticks = iter(range(started, started + 10**12, int(rng.uniform(0.05, 0.2) * call.pace * 1e9)))
    with release(route=call.route, tenant=call.tenant, prompt_name="answer", prompt_version=call.prompt_version,
                 index_name="kb-docs", index_version=call.index_version):  # fmt: skip
        with llm_call(provider=call.provider, model="gpt-4o", stream=True, clock=lambda: next(ticks), tracer_provider=provider) as llm:
            if call.error:
                llm.failed(error_type=call.error, http_status=call.http_status)
                return
            delivered = 0
            for _ in llm.stream(range(20)):
                delivered += 1
                if call.cancelled and delivered == 5:
                    break
            llm.response(model=call.response_model, fingerprint=call.fingerprint, input_tokens=800, output_tokens=20,
                         finish_reason=None if call.cancelled else "stop", cost=call.cost)  # fmt: skip
            record_score("faithfulness", value=min(1.0, max(0.0, rng.gauss(call.quality, 0.05))), clock=lambda: started)


def silent_provider_update(now: datetime | None = None, *, calls: int = 2400, annotate_model: bool = False) -> Scenario:
    """The demo's incident in small: from T0 (50 minutes ago) the provider answers /chat/answer
    with a new response model and fingerprint and its faithfulness drops; a prompt publish on
    /search ten minutes earlier and an index rebuild five minutes later do no harm.

    Marks: t0, prompt_at, index_at. `annotate_model` also records the model change at T0.
    """
    now = now or _this_minute()
    start, t0 = now - timedelta(hours=2), now - timedelta(minutes=50)
    prompt_at, index_at = t0 - timedelta(minutes=10), t0 + timedelta(minutes=5)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if call.route == "/search" and when >= prompt_at:
            call.prompt_version = "v8"
        if when >= index_at:
            call.index_version = "2026-11-20"
        if call.route == "/chat/answer" and when >= t0:
            call.response_model, call.fingerprint, call.quality = NEW_MODEL, "fp_b2", 0.55

    scenario = Scenario(start, now, calls, shape, marks={"t0": t0, "prompt_at": prompt_at, "index_at": index_at})
    scenario.changes += [
        (prompt_at, "prompt", "answer", "v8", "shorter answers on /search"),
        (index_at, "index", "kb-docs", "2026-11-20", "nightly rebuild"),
    ]
    if annotate_model:
        scenario.changes.append((t0, "model", "gpt-4o", NEW_MODEL, "moved the gpt-4o alias to the November snapshot"))
    return scenario


def rate_limit_burst(now: datetime | None = None, *, calls: int = 1800) -> Scenario:
    """Steady traffic with a 429 storm and a wave of cancellations between 40 and 30 minutes ago.

    Marks: burst_from, burst_to.
    """
    now = now or _this_minute()
    start, burst_from, burst_to = now - timedelta(hours=2), now - timedelta(minutes=40), now - timedelta(minutes=30)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if burst_from <= when < burst_to:
            if rng.random() < 0.6:
                call.error, call.http_status = "openai.RateLimitError", 429
            elif rng.random() < 0.5:
                call.cancelled = True

    return Scenario(start, now, calls, shape, marks={"burst_from": burst_from, "burst_to": burst_to})


def storm_over_a_rebuild(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """/chat/answer is served by anthropic, /search by openai. From T0 (50 minutes ago) anthropic
    rate-limits a third of its calls; the index every call reads was rebuilt 30 seconds before
    (annotated), and /chat/answer got a new prompt 8 minutes before. Neither change did harm.

    Marks: t0, index_at, prompt_at.
    """
    now = now or _this_minute()
    start, t0 = now - timedelta(hours=2), now - timedelta(minutes=50)
    index_at, prompt_at = t0 - timedelta(seconds=30), t0 - timedelta(minutes=8)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        call.provider = "anthropic" if call.route == "/chat/answer" else "openai"
        if when >= index_at:
            call.index_version = "2026-11-20"
        if call.route == "/chat/answer" and when >= prompt_at:
            call.prompt_version = "v8"
        if call.provider == "anthropic" and when >= t0 and rng.random() < 0.35:
            call.error, call.http_status = "anthropic.RateLimitError", 429

    scenario = Scenario(start, now, calls, shape, marks={"t0": t0, "index_at": index_at, "prompt_at": prompt_at})
    scenario.changes += [(index_at, "index", "kb-docs", "2026-11-20", "nightly rebuild"),
                         (prompt_at, "prompt", "answer", "v8", "friendlier greeting on /chat/answer")]  # fmt: skip
    return scenario


def storm_after_a_prompt(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """openai serves /chat/answer but for tenant umbrella, and acme's /search; anthropic the rest,
    with no fingerprint (as Anthropic's API). 2% of all calls are rate-limited all along.
    /chat/answer got a new prompt 2 minutes before T0 (50 minutes ago), so three quarters of
    openai's calls since carry it; from T0 openai rate-limits a third of all its calls, with the
    new prompt or not. The prompt did no harm.

    Marks: t0, prompt_at.
    """
    now = now or _this_minute()
    start, t0 = now - timedelta(hours=2), now - timedelta(minutes=50)
    prompt_at = t0 - timedelta(minutes=2)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        on_openai = call.tenant != "umbrella" if call.route == "/chat/answer" else call.tenant == "acme"
        call.provider = "openai" if on_openai else "anthropic"
        call.fingerprint = "fp_a1" if on_openai else None
        if call.route == "/chat/answer" and when >= prompt_at:
            call.prompt_version = "v8"
        if rng.random() < (0.35 if call.provider == "openai" and when >= t0 else 0.02):
            call.error, call.http_status = f"{call.provider}.RateLimitError", 429

    return Scenario(start, now, calls, shape, marks={"t0": t0, "prompt_at": prompt_at})


def one_provider_hidden(now: datetime | None = None, *, calls: int = 3000) -> Scenario:
    """Tenant acme's calls (a quarter) go to provider `small`, the rest to openai. From T0 (50
    minutes ago) small answers with a new response model and its faithfulness drops from 0.85 to
    0.65, while a new prompt lifts openai's calls to 0.93: over all calls, quality got better.

    Marks: t0.
    """
    now = now or _this_minute()
    t0 = now - timedelta(minutes=50)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        call.provider = "small" if call.tenant == "acme" else "openai"
        if when >= t0 and call.provider == "small":
            call.response_model, call.fingerprint, call.quality = NEW_MODEL, "fp_b2", 0.65
        elif when >= t0:
            call.prompt_version, call.quality = "v8", 0.93

    return Scenario(now - timedelta(hours=2), now, calls, shape, marks={"t0": t0})


def one_provider_slower_as_traffic_shifts(now: datetime | None = None, *, calls: int = 3000) -> Scenario:
    """Tenant acme's calls (a quarter) go to provider `small`, which answers five times faster than
    openai. From T0 (50 minutes ago) small answers with a new response model at twice its latency,
    still faster than any openai call, while one in ten of acme's calls moves to tenant globex on
    openai: over all calls a few more are slower than the old median, by that shift alone.

    Marks: t0.
    """
    now = now or _this_minute()
    t0 = now - timedelta(minutes=50)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if when >= t0 and call.tenant == "acme" and rng.random() < 0.1:
            call.tenant = "globex"
        call.provider = "small" if call.tenant == "acme" else "openai"
        if call.provider == "small":
            call.pace = 0.2
            if when >= t0:
                call.response_model, call.fingerprint, call.pace = NEW_MODEL, "fp_b2", 0.4

    return Scenario(now - timedelta(hours=2), now, calls, shape, marks={"t0": t0})


def prompt_after_a_rotation(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """From ROTATED (an hour ago) the provider answers /chat/answer with a new fingerprint, which
    changes nothing; from T0 (ten minutes later) prompt v8 on /chat/answer drops faithfulness
    from 0.85 to 0.70 for every tenant but umbrella, which keeps v7.

    Marks: rotated, t0.
    """
    now = now or _this_minute()
    rotated, t0 = now - timedelta(minutes=60), now - timedelta(minutes=50)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if call.route == "/chat/answer" and when >= rotated:
            call.fingerprint = "fp_b9"
        if call.route == "/chat/answer" and when >= t0 and call.tenant != "umbrella":
            call.prompt_version, call.quality = "v8", 0.70

    return Scenario(now - timedelta(hours=2), now, calls, shape, marks={"rotated": rotated, "t0": t0})


def swap_after_a_prompt(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """Every call got prompt v8 half an hour before T0, which changed nothing; from T0 the provider
    answers with a new response model and faithfulness drops from 0.85 to 0.75. T0 is 50.5 minutes
    ago, half a minute into a bucket, so the detected start falls a little before the swap, as it
    often does.

    Marks: prompt_at, t0.
    """
    now = now or _this_minute()
    t0 = now - timedelta(minutes=50, seconds=30)
    prompt_at = t0 - timedelta(minutes=30)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if when >= prompt_at:
            call.prompt_version = "v8"
        if when >= t0:
            call.response_model, call.fingerprint, call.quality = NEW_MODEL, "fp_b2", 0.75

    return Scenario(now - timedelta(hours=2), now, calls, shape, marks={"prompt_at": prompt_at, "t0": t0})


def prompt_during_a_slowdown(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """From T0 (50 minutes ago) a proxy in front of /chat/answer buffers its streams (time to first
    token x4); twelve minutes later prompt v8 is published on that route, which changes nothing.

    Marks: t0, published.
    """
    now = now or _this_minute()
    t0 = now - timedelta(minutes=50)
    published = t0 + timedelta(minutes=12)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if call.route == "/chat/answer" and when >= t0:
            call.pace = 4.0
        if call.route == "/chat/answer" and when >= published:
            call.prompt_version = "v8"

    return Scenario(now - timedelta(hours=2), now, calls, shape, marks={"t0": t0, "published": published})


def steady(now: datetime | None = None, *, calls: int = 1800) -> Scenario:
    """Two hours of an app where nothing changes: no regression to find."""
    now = now or _this_minute()
    return Scenario(now - timedelta(hours=2), now, calls, lambda call, when, rng: None)


def costly_prompt(now: datetime | None = None, *, calls: int = 2400) -> Scenario:
    """From T0 (45 minutes ago) prompt v9 on /chat/answer triples the cost per call and users cancel
    half of its streams (each cancel leaves 15 of 20 tokens generated after it); annotated.

    Marks: t0.
    """
    now = now or _this_minute()
    t0 = now - timedelta(minutes=45)

    def shape(call: Call, when: datetime, rng: random.Random) -> None:
        if call.route == "/chat/answer" and when >= t0:
            call.prompt_version, call.cost, call.cancelled = "v9", 0.006, rng.random() < 0.5

    scenario = Scenario(now - timedelta(hours=2), now, calls, shape, marks={"t0": t0})
    scenario.changes.append((t0, "prompt", "answer", "v9", "more detailed answers"))
    return scenario
