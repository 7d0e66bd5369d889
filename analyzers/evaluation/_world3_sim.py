"""World 3 ("Switchboard"), the product and its traffic: every call of a scenario planned up front.

Switchboard is a customer-support platform that telecom operators (the tenants) rent: phone calls
are transcribed by ASR and answered by voice-gateway, the web chat by chat-assist (retrieval over
the operators' knowledge base, plus an agent-routing step), and closed tickets are summarised into
JSON by ticket-worker. Planning is deterministic in the scenario's seed and separate from writing
(`_world3_emit`), so the labels are computed from the very calls the writer then sends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

NS = 1_000_000_000


@dataclass(frozen=True)
class Route:
    """One feature: which service serves it, against which model and prompt, and how it behaves."""

    service: str
    path: str
    provider: str
    model: str
    prompt: str
    prompt_version: str
    weight: float
    quality: float
    evaluation: str | None = None
    judged: float = 0.0
    late: float = 0.0
    """Share of the judged calls whose score is recorded minutes later (QA review, a judge queue)."""
    stream: bool = False
    index: str | None = None
    asr: bool = False
    structured: bool = False
    tokens_in: int = 800
    tokens_out: int = 150
    ttft: float = 0.6
    batch: bool = False
    """Arrives in bursts every five minutes (a ticket queue drained by a worker)."""


ROUTES: tuple[Route, ...] = (
    Route("voice-gateway", "/voice/intent", "openai", "gpt-4o-mini", "voice-intent", "v12", 0.18, 0.88, "intent_accuracy", 0.25, 1.0,
          asr=True, tokens_in=420, tokens_out=40),
    Route("voice-gateway", "/voice/reply", "openai", "gpt-4o", "voice-reply", "v7", 0.16, 0.80, "resolution_quality", 0.3, 0.4,
          stream=True, index="telco-kb", asr=True, tokens_in=1900, tokens_out=170, ttft=0.55),
    Route("chat-assist", "/chat/answer", "anthropic", "claude-sonnet-4-5", "chat-answer", "v31", 0.27, 0.83, "resolution_quality", 0.3, 0.3,
          stream=True, index="telco-kb", tokens_in=2600, tokens_out=260, ttft=0.8),
    Route("chat-assist", "/chat/route", "openai", "gpt-4o-mini", "router", "v5", 0.15, 0.0, structured=True, tokens_in=600, tokens_out=30),
    Route("chat-assist", "/chat/billing", "anthropic", "claude-haiku-4-5", "billing-explain", "v3", 0.03, 0.78, "resolution_quality", 0.3, 0.3,
          stream=True, index="billing-faq", tokens_in=1500, tokens_out=200, ttft=0.45),
    Route("ticket-worker", "/tickets/summarize", "vertex_ai", "gemini-2.0-flash", "ticket-summary", "v9", 0.18, 0.86, "summary_faithfulness", 0.25,
          structured=True, tokens_in=2400, tokens_out=220, batch=True),
    Route("ticket-worker", "/tickets/classify", "vertex_ai", "gemini-2.0-flash-lite", "ticket-tags", "v21", 0.03, 0.0,
          structured=True, tokens_in=900, tokens_out=20, batch=True),
)  # fmt: skip
ROUTE = {r.path: r for r in ROUTES}

SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06|fp_50cad350e4", "gpt-4o-mini": "gpt-4o-mini-2024-07-18|fp_0ba0d124f1",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929|", "claude-haiku-4-5": "claude-haiku-4-5-20251001|",
    "gemini-2.0-flash": "gemini-2.0-flash-001|", "gemini-2.0-flash-lite": "gemini-2.0-flash-lite-001|", "gemini-2.5-flash": "gemini-2.5-flash-002|",
}  # fmt: skip
"""What each alias answers with at the start: `response model|system fingerprint`."""
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "claude-sonnet-4-5": (3.0, 15.0), "claude-haiku-4-5": (1.0, 5.0),
          "gemini-2.0-flash": (0.1, 0.4), "gemini-2.0-flash-lite": (0.075, 0.3), "gemini-2.5-flash": (0.3, 2.5)}  # fmt: skip
"""USD per million input and output tokens."""
VERSIONS = {"voice-gateway": "3.4.1", "chat-assist": "2.18.0", "ticket-worker": "1.9.3"}
INDEXES = {"telco-kb": "tkb-0412", "billing-faq": "bf-88"}

TENANTS: dict[str, tuple[float, float]] = {
    "northwind-mobile": (30, 0.02), "bluewave": (18, 0.0), "orbit-fiber": (12, 0.01), "kestrel-wireless": (9, -0.01),
    "halcyon-cable": (7, 0.0), "vertex-tel": (5, 0.02), "lumen-prepaid": (4, -0.03), "solstice-5g": (3, 0.01),
    "aurora-broadband": (2.5, 0.0), "pinecrest-mvno": (2, -0.02), "tidal-telecom": (1.5, 0.01), "granite-networks": (1, 0.0),
    "meadow-mobile": (0.6, 0.02), "skyline-prepaid": (2.4, -0.17), "polar-telecom": (4.0, 0.0),
}  # fmt: skip
"""Traffic weight and quality offset. skyline-prepaid's roaming questions are poorly covered (it always scores low);
polar-telecom has no traffic until it is onboarded."""
WEAK_TENANT = "skyline-prepaid"
NEW_TENANT = "polar-telecom"

QUALITY_PER_CONFIDENCE = 0.45
"""How much a voice answer's judged quality falls per unit of ASR confidence lost (it answers what it misheard)."""
DIMENSIONS = ("request_model", "response_model", "system_fingerprint", "provider", "prompt_version", "index_version",
              "input_confidence", "route", "tenant", "service_version")  # fmt: skip


@dataclass(frozen=True)
class Change:
    """A value of the world's state changing at `at` (ns): ("version", service), ("prompt", route), ("model", route),
    ("index", name), ("snapshot", alias: "response model|fingerprint"), ("tenant", name: weight multiplier).

    `annotation` is (service, kind, target, version, description) when someone recorded it; `rollout` spreads a
    deploy over that many seconds (old and new serve side by side meanwhile)."""

    at: int
    key: tuple[str, str]
    value: str
    annotation: tuple[str, str, str, str, str] | None = None
    rollout: float = 0.0


@dataclass(frozen=True)
class Effect:
    """What an incident does to the calls that match it (dimension values, a time span, a share of them)."""

    match: tuple[tuple[str, str], ...]
    since: int
    until: int | None = None
    share: float = 1.0
    quality: float = 0.0
    ttft: float = 1.0
    latency: float = 1.0
    buffer: tuple[float, float] | None = None
    """A proxy holding the stream's first bytes this many seconds (TTFT up, total latency flat)."""
    confidence: float = 0.0
    rate_limited: float = 0.0
    cancel: float = 0.0
    invalid: float = 0.0


@dataclass(slots=True)
class Call:
    """One planned LLM call and everything the writer records about it."""

    t: int
    route: Route
    tenant: str
    service_version: str
    prompt_version: str
    request_model: str
    response_model: str | None
    fingerprint: str | None
    index_version: str | None
    confidence: float | None = None
    ttft: float | None = None
    duration: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    delivered: int | None = None
    """Tokens delivered before the caller cancelled the stream (None: not cancelled)."""
    error: str | None = None
    http_status: int | None = None
    validation: str | None = None
    quality_delta: float = 0.0
    score: float | None = None
    score_at: int | None = None
    """When a later score is recorded (None: on the call itself)."""
    cost: float | None = None
    hit: bool = False
    """An incident effect touched this call."""

    def dims(self) -> dict[str, str | None]:
        """The call's values of the attribution dimensions."""
        bucket = None if self.confidence is None else "low" if self.confidence < 0.6 else "medium" if self.confidence < 0.8 else "high"
        return {"request_model": self.request_model, "response_model": self.response_model, "system_fingerprint": self.fingerprint,
                "provider": self.route.provider, "prompt_version": self.prompt_version, "index_version": self.index_version,
                "input_confidence": bucket, "route": self.route.path, "tenant": self.tenant, "service_version": self.service_version}  # fmt: skip


@dataclass
class World:
    """A scenario's world: its window, traffic level, changes and incident effects."""

    seed: str
    start: datetime
    end: datetime
    rate: float
    """Calls per minute at the daily peak."""
    changes: list[Change] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def state(self, key: tuple[str, str], t: int, default: str, rng: random.Random) -> str:
        """The value of `key` in force at `t`; a deploy still rolling out serves the new value to a growing share."""
        value = default
        for c in self.changes:
            if c.key != key or c.at > t:
                continue
            if c.rollout and t < c.at + c.rollout * NS and rng.random() > (t - c.at) / (c.rollout * NS):
                continue
            value = c.value
        return value


def ns(at: datetime) -> int:
    return int(at.timestamp()) * NS + at.microsecond * 1000


def _daily(t: int) -> float:
    """Support traffic over the day (UTC; operators in Europe): busiest mid-afternoon, a third of it at night."""
    hour = (t / NS / 3600) % 24
    return 0.65 + 0.35 * math.cos(2 * math.pi * (hour - 14.5) / 24)


def _tenant_weights(world: World, t: int, rng: random.Random) -> dict[str, float]:
    """Each tenant's weight at `t`: its own times the multiplier its changes set (a new tenant starts at 0)."""
    return {name: weight * float(world.state(("tenant", name), t, "0" if name == NEW_TENANT else "1", rng)) for name, (weight, _) in TENANTS.items()}


def arrivals(world: World, rng: random.Random) -> Iterator[tuple[int, Route, str]]:
    """(time, route, tenant) of every call, minute by minute: Poisson-like counts under the daily shape."""
    nominal = sum(w for name, (w, _) in TENANTS.items() if name != NEW_TENANT)
    routes, route_weights = list(ROUTES), [r.weight for r in ROUTES]
    minute, stop = ns(world.start), ns(world.end)
    while minute < stop:
        tenants = _tenant_weights(world, minute, rng)
        lam = world.rate * _daily(minute) * sum(tenants.values()) / nominal
        names, weights = list(tenants), list(tenants.values())
        for _ in range(max(0, round(rng.gauss(lam, math.sqrt(lam) * 1.15)))):
            route = rng.choices(routes, route_weights)[0]
            t = minute + int(rng.random() * 60 * NS)
            if route.batch:  # the worker drains the queue every five minutes
                t = t - t % (300 * NS) + int(rng.random() * 90 * NS)
            if t < stop:
                yield t, route, rng.choices(names, weights)[0]
        minute += 60 * NS


def plan(world: World) -> list[Call]:
    """Every call of the world, in time order, with its outcome and score."""
    rng = random.Random(world.seed)
    calls = [_call(world, t, route, tenant, rng) for t, route, tenant in arrivals(world, rng)]
    calls.sort(key=lambda c: c.t)
    return calls


def _call(world: World, t: int, route: Route, tenant: str, rng: random.Random) -> Call:
    model = world.state(("model", route.path), t, route.model, rng)
    snapshot = world.state(("snapshot", model), t, SNAPSHOTS[model], rng).split("|")
    call = Call(t=t, route=route, tenant=tenant, service_version=world.state(("version", route.service), t, VERSIONS[route.service], rng),
                prompt_version=world.state(("prompt", route.path), t, route.prompt_version, rng), request_model=model,
                response_model=snapshot[0], fingerprint=snapshot[1] or None,
                index_version=world.state(("index", route.index), t, INDEXES[route.index], rng) if route.index else None)  # fmt: skip
    if route.asr:
        noisy = rng.random() < 0.05  # a bad line: speakerphone, a car, a tunnel
        call.confidence = min(0.99, max(0.2, rng.gauss(0.55, 0.08) if noisy else rng.gauss(0.86, 0.06)))
    _outcome(call, rng)
    for effect in world.effects:
        _apply(effect, call, rng)
    _finish(call, rng, ns(world.end))
    return call


def _outcome(call: Call, rng: random.Random) -> None:
    """Tokens, latency and the background failures every day has."""
    r = call.route
    call.tokens_in = max(50, int(rng.gauss(r.tokens_in, r.tokens_in * 0.25)))
    call.tokens_out = max(5, int(rng.lognormvariate(math.log(r.tokens_out), 0.35)))
    tpot = rng.uniform(0.012, 0.022) if r.provider == "openai" else rng.uniform(0.015, 0.028)
    first = rng.lognormvariate(math.log(r.ttft), 0.3)
    call.duration = first + call.tokens_out * tpot + (0 if r.stream else rng.uniform(0.15, 0.4))
    call.ttft = first if r.stream else None
    if rng.random() < 0.015:  # the provider's slow tail
        call.duration *= rng.uniform(3, 8)
    roll = rng.random()
    if roll < 0.004:
        _fail(call, "RateLimitError", 429, rng.uniform(0.05, 0.4))
    elif roll < 0.006:
        _fail(call, "APITimeoutError", None, 30.0)
    elif roll < 0.008:
        _fail(call, "InternalServerError", 529 if r.provider == "anthropic" else 500, rng.uniform(0.3, 2.0))
    elif r.stream and rng.random() < 0.04:  # the caller hung up or closed the tab
        call.delivered = int(call.tokens_out * rng.uniform(0.3, 0.9))
    if r.structured and call.error is None:
        call.validation = "ok" if rng.random() > 0.02 else rng.choice(("parse_error", "schema_error", "schema_error"))


def _fail(call: Call, error: str, status: int | None, seconds: float) -> None:
    call.error, call.http_status, call.duration, call.ttft = error, status, seconds, None
    call.response_model = call.fingerprint = None


def _apply(effect: Effect, call: Call, rng: random.Random) -> None:
    dims = call.dims()
    if call.t < effect.since or (effect.until is not None and call.t >= effect.until) or any(dims.get(k) != v for k, v in effect.match):
        return
    if effect.share < 1 and rng.random() >= effect.share:
        return
    call.hit = True
    if effect.confidence and call.confidence is not None:
        call.confidence = max(0.05, call.confidence - effect.confidence * rng.uniform(0.7, 1.3))
    call.quality_delta -= effect.quality
    if call.error is not None:
        return
    if effect.rate_limited and rng.random() < effect.rate_limited:
        _fail(call, "RateLimitError", 429, rng.uniform(0.05, 0.4))
        return
    call.duration *= effect.latency
    if call.ttft is not None:
        call.duration += call.ttft * (effect.ttft - 1)
        call.ttft *= effect.ttft
        if effect.buffer:
            call.ttft = min(call.duration, call.ttft + rng.uniform(*effect.buffer))
    if effect.cancel and call.route.stream and rng.random() < effect.cancel:
        call.delivered = int(call.tokens_out * rng.uniform(0.08, 0.35))
    if effect.invalid and call.validation is not None and rng.random() < effect.invalid:
        call.validation = rng.choice(("parse_error", "parse_error", "schema_error"))


def _finish(call: Call, rng: random.Random, end: int) -> None:
    """Cost, cancellation timing, and the judge's score (lower on bad ASR input, by tenant, after an incident)."""
    r = call.route
    if call.error is not None:
        return
    if call.delivered is not None:  # cancelled: the stream stops early, the provider keeps generating a while
        assert call.ttft is not None
        call.duration = call.ttft + (call.duration - call.ttft) * call.delivered / call.tokens_out
        call.tokens_out = call.delivered + int((call.tokens_out - call.delivered) * rng.uniform(0.5, 1.0))
    price_in, price_out = PRICES[call.request_model]
    call.cost = round((call.tokens_in * price_in + call.tokens_out * price_out) / 1e6, 7)
    if r.evaluation is None or call.delivered is not None or rng.random() >= r.judged:
        return
    mean = r.quality + TENANTS[call.tenant][1] + call.quality_delta
    if call.confidence is not None:
        mean += QUALITY_PER_CONFIDENCE * (call.confidence - 0.86)
    call.score = round(min(1.0, max(0.0, rng.gauss(mean, 0.12))), 2)
    if rng.random() < r.late:
        call.score_at = call.t + int((call.duration + rng.uniform(60, 1500)) * NS)
        if call.score_at >= end:  # not reviewed yet when the on-call looks
            call.score = call.score_at = None
