"""The demo's simulated world: services, routes, tenants, models, and what changes when.

Everything here is data plus the few rules that make it behave like production: traffic that
swings through the day, tenants of very different sizes, providers whose answers, latency and
price differ, rate-limit bursts, and a timeline of changes. One change is the injected incident
(the provider silently moves the `gpt-4o` alias behind /chat/answer to a newer snapshot, which
answers worse and starts slower); the others are ordinary changes that hurt nothing.
Times are nanoseconds since the epoch, like OTel span times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Burst", "Change", "Model", "Rollout", "Route", "Tenant", "World", "build_world"]

T = TypeVar("T")

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class Model:
    """What a provider serves behind a requested model name, and how it behaves."""

    provider: str
    request: str
    response: str
    fingerprint: str | None
    ttft_median_s: float
    ttft_sigma: float
    tokens_per_s: float
    usd_per_mtok_in: float
    usd_per_mtok_cached: float
    usd_per_mtok_out: float
    quality_shift: float = 0.0
    """How much better or worse this model's answers are judged than the route's usual."""

    @property
    def server(self) -> str:
        return f"api.{self.provider}.com"

    @property
    def rate_limit_error(self) -> str:
        return f"{self.provider}.RateLimitError"


@dataclass(frozen=True)
class Rollout(Generic[T]):
    """A value that changes from `before` to `after` at `at`, phased in over `ramp` ns."""

    before: T
    after: T
    at: int = 0
    ramp: int = 0

    def value(self, t: int, rng: random.Random) -> T:
        if t < self.at:
            return self.before
        if t >= self.at + self.ramp:
            return self.after
        return self.after if rng.random() < (t - self.at) / self.ramp else self.before


def steady(value: T) -> Rollout[T]:
    """A value that never changes."""
    return Rollout(value, value)


@dataclass(frozen=True)
class Route:
    """One feature of one service and the LLM call behind it."""

    service: str
    path: str
    share: float
    model: Rollout[Model]
    stream: bool
    prompt: str
    prompt_version: Rollout[str]
    input_tokens: tuple[float, float]
    """Lognormal median and sigma of the prompt size."""
    output_tokens: tuple[float, float]
    max_tokens: int
    quality: float
    """Mean judged answer quality (0..1) on this route with its usual model."""
    cancel_rate: float = 0.0
    feedback_rate: float = 0.0
    """Share of answered requests whose user presses thumbs up or down."""
    index: str | None = None
    index_version: Rollout[str] | None = None
    asr: bool = False
    validated: bool = False
    conversational: bool = False


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: float
    quality_offset: float
    noisy_audio: float
    """Share of this tenant's voice calls on bad lines (low ASR confidence)."""


@dataclass(frozen=True)
class Burst:
    """A stretch of time when one provider rate-limits a share of requests."""

    provider: str
    start: int
    end: int
    rate: float


@dataclass(frozen=True)
class Change:
    """A line of the answer key: what happened in the simulation, and whether it is annotated."""

    at: int
    kind: str
    target: str
    version: str
    description: str
    service: str
    annotated: bool
    author: str | None = None
    harmful: bool = False
    route: str | None = None
    """The one route a change reached, when it reached only one."""


@dataclass(frozen=True)
class World:
    start: int
    end: int
    routes: list[Route]
    tenants: list[Tenant]
    versions: dict[str, Rollout[str]]
    """service -> its deployed version over time."""
    bursts: list[Burst]
    changes: list[Change]
    baseline_429: float = 0.002
    timeout_rate: float = 0.001

    def traffic(self, t: int) -> float:
        """Relative request rate at `t`: a daily swing plus a faster wobble (never below 0.3)."""
        hours = (t - self.start) / HOUR
        return max(0.3, 1.0 + 0.45 * math.sin(2 * math.pi * hours / 24 - 1.2) + 0.12 * math.sin(2 * math.pi * hours / 1.7))

    def rate_limit(self, provider: str, t: int) -> float:
        """Share of requests to `provider` that get a 429 at `t`."""
        return max([b.rate for b in self.bursts if b.provider == provider and b.start <= t < b.end], default=self.baseline_429)


GPT4O = Model("openai", "gpt-4o", "gpt-4o-2024-08-06", "fp_a7d06e42a7", 0.42, 0.45, 82.0, 2.50, 1.25, 10.00)
GPT4O_NEW = Model("openai", "gpt-4o", "gpt-4o-2024-11-20", "fp_d28bcae782", 0.66, 0.50, 74.0, 2.50, 1.25, 10.00, quality_shift=-0.16)
MINI = Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fp_0ba0d124f1", 0.30, 0.40, 115.0, 0.15, 0.075, 0.60)
MINI_ROTATED = Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fp_1b5c0ed9a2", 0.30, 0.40, 115.0, 0.15, 0.075, 0.60)
SONNET = Model("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", None, 0.85, 0.40, 62.0, 3.00, 0.30, 15.00)

TENANTS = [
    Tenant("acme", 30.0, 0.01, 0.08), Tenant("globex", 18.0, -0.01, 0.10), Tenant("initech", 11.0, 0.0, 0.06),
    Tenant("umbrella", 7.0, -0.02, 0.40), Tenant("hooli", 5.0, 0.015, 0.05), Tenant("stark", 3.0, 0.0, 0.08),
    Tenant("wayne", 2.5, 0.01, 0.10), Tenant("wonka", 2.0, -0.01, 0.12), Tenant("tyrell", 1.5, 0.02, 0.05),
    Tenant("cyberdyne", 1.0, -0.015, 0.15), Tenant("soylent", 0.8, 0.0, 0.20), Tenant("aperture", 0.6, 0.01, 0.05),
]  # fmt: skip
"""A few big tenants and a long tail of small ones."""


def build_world(start: int, end: int, rng: random.Random) -> World:
    """The world for a simulation from `start` to `end`, with the incident at end - 90 min."""
    span = end - start
    incident = end - 90 * MINUTE
    prompt_at, deploy_at, index_at = end - 115 * MINUTE, end - 100 * MINUTE, end - 80 * MINUTE
    voice_deploy_at, rotation_at = start + int(span * 0.30), start + int(span * 0.45)
    routes = [
        Route("support-bot", "/chat/answer", 0.40, Rollout(GPT4O, GPT4O_NEW, incident, 4 * MINUTE), True, "answer", steady("v7"),
              (1400, 0.45), (260, 0.5), 900, 0.86, cancel_rate=0.03, feedback_rate=0.08, conversational=True),
        Route("support-bot", "/chat/summarize", 0.15, steady(SONNET), False, "summarize", Rollout("v3", "v4", prompt_at),
              (3200, 0.4), (190, 0.35), 600, 0.84, feedback_rate=0.05),
        Route("search-api", "/search/rerank", 0.30, Rollout(MINI, MINI_ROTATED, rotation_at, 10 * MINUTE), False, "rerank",
              steady("v12"), (2600, 0.3), (70, 0.4), 256, 0.81, index="kb-docs", index_version=Rollout("v41", "v42", index_at, 2 * MINUTE)),
        Route("voice-agent", "/voice/intake", 0.15, steady(GPT4O), True, "intake", steady("v5"), (520, 0.35), (150, 0.35), 400,
              0.85, cancel_rate=0.04, feedback_rate=0.06, asr=True, validated=True),
    ]  # fmt: skip
    changes = [
        Change(voice_deploy_at, "deploy", "voice-agent", "0.9.5", "retry ASR on silence", "voice-agent", True, "ci"),
        Change(rotation_at, "model", "gpt-4o-mini", "fp_1b5c0ed9a2", "system fingerprint rotation (provider, routine)", "search-api", False),
        Change(prompt_at, "prompt", "summarize", "v4", "shorter summaries, bullet points", "support-bot", True, "dana"),
        Change(deploy_at, "deploy", "support-bot", "1.8.1", "connection pool fix", "support-bot", True, "ci"),
        Change(incident, "model", "gpt-4o", "gpt-4o-2024-11-20", "provider moved the alias behind /chat/answer (silent)", "support-bot",
               False, harmful=True, route="/chat/answer"),
        Change(index_at, "index", "kb-docs", "v42", "nightly rebuild", "search-api", True, "ci"),
    ]  # fmt: skip
    versions = {
        "support-bot": Rollout("1.8.0", "1.8.1", deploy_at, 8 * MINUTE),
        "search-api": steady("2.3.1"),
        "voice-agent": Rollout("0.9.4", "0.9.5", voice_deploy_at, 5 * MINUTE),
    }
    return World(start, end, routes, TENANTS, versions, _bursts(start, end, rng), sorted(changes, key=lambda c: c.at))


def _bursts(start: int, end: int, rng: random.Random) -> list[Burst]:
    """About one rate-limit burst per 90 minutes, 3 to 8 minutes long, on either provider."""
    count = max(2, round((end - start) / (90 * MINUTE)))
    bursts = []
    for _ in range(count):
        at = rng.randrange(start, end - 10 * MINUTE)
        bursts.append(Burst(rng.choice(["openai", "anthropic"]), at, at + rng.randint(3, 8) * MINUTE, rng.uniform(0.2, 0.4)))
    return sorted(bursts, key=lambda b: b.start)
