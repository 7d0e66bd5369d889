"""World 2: LexDesk, a simulated legal-document assistant with labelled incidents.

A second, independent world, so the evaluation does not flatter: it was written without reading
driftline's analyzers (or world 1 and the demo), from the OpenTelemetry SDK and driftline's
public hooks only (`llm_call`, `release`, `tag_retrieval`, `record_confidence`,
`record_score`, `annotate`, `ReleaseContextProcessor`, `StoreSpanExporter`).

The product: four services (lexdesk-drafting, lexdesk-intake, lexdesk-research, lexdesk-voice)
on seven routes (/draft, /redline, /classify, /extract, /qa, /cite-check, /voice-notes), three
providers (openai, anthropic, google), fourteen law-firm tenants with Zipf-like volumes and their
own route mixes (two small ones have hard documents and score low), a daily traffic swing with a
slow random drift, an LLM judge (`task_success`, beta-distributed per call) on 30-50% of calls,
lognormal TTFT/latency tails, background 5xx/timeouts/429s (with client retries) and stream
cancellations, structured-output validation on /classify and /extract, ASR confidence on
/voice-notes, and ordinary harmless changes (annotated deploys, prompt publishes on other routes,
index rebuilds, unannotated fingerprint rotations) around the real one.

STORES: every scenario writes the SAME service names (the product has several services), so
write each scenario into its OWN store (a fresh chdb directory, or its own `?database=`).
`LabelledScenario.service` is the filter the on-call uses: None (whole store) or, for a
service-local incident, sometimes that service's name.

Importing this module has no side effects; `scenarios(seed)` only builds specs; a scenario's
`write(store)` simulates and inserts (the store must be migrated). Labels use the evaluation's
common `LabelledScenario` (the only thing this module takes from the package outside the hooks).
"""

from __future__ import annotations

import heapq
import math
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ._labels import CONTROL, LabelledScenario

__all__ = ["EVAL", "KINDS", "WORLD", "answer_key", "scenarios"]

WORLD = "world2"

EVAL = "task_success"
QUALITY = f"quality:{EVAL}"
TTFT = ("ttft_p50", "ttft_p95", "ttft_p99")
LATENCY = ("latency_p50", "latency_p95", "latency_p99")
KINDS = (
    "silent_snapshot_swap", "prompt_regression", "index_rebuild", "asr_deploy_confidence", "provider_429_storm",
    "buffering_proxy", "tenant_mix_shift", "early_cancel_client", "structured_output_break",
)  # fmt: skip

Label = tuple[str, str]

# ---------------------------------------------------------------------------------------------
# The product
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    provider: str
    snapshot: str  # what the provider returns as the response model
    fingerprints: bool  # the provider returns a system fingerprint
    ttft: float  # median seconds to first token at ~2k input tokens
    tpot: float  # median seconds per output token
    price_in: float  # USD per million tokens
    price_out: float


MODELS: dict[str, Model] = {
    "gpt-4.1": Model("openai", "gpt-4.1-2025-04-14", True, 0.55, 0.014, 2.0, 8.0),
    "gpt-4.1-mini": Model("openai", "gpt-4.1-mini-2025-04-14", True, 0.42, 0.008, 0.4, 1.6),
    "gpt-4.1-nano": Model("openai", "gpt-4.1-nano-2025-04-14", True, 0.30, 0.005, 0.1, 0.4),
    "claude-sonnet-4": Model("anthropic", "claude-sonnet-4-20250514", False, 0.95, 0.022, 3.0, 15.0),
    "claude-3-5-haiku": Model("anthropic", "claude-3-5-haiku-20241022", False, 0.60, 0.011, 0.8, 4.0),
    "gemini-2.0-flash": Model("google", "gemini-2.0-flash-001", False, 0.38, 0.005, 0.1, 0.4),
}
NEW_SNAPSHOT = {  # where a provider silently moves an alias
    "gpt-4.1": "gpt-4.1-2025-09-18",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-09-18",
    "claude-sonnet-4": "claude-sonnet-4-20250826",
    "gemini-2.0-flash": "gemini-2.0-flash-002",
}
SERVER = {"openai": "api.openai.com", "anthropic": "api.anthropic.com", "google": "generativelanguage.googleapis.com"}
FINISH = {"openai": "stop", "anthropic": "end_turn", "google": "STOP"}
RATE_LIMIT_ERROR = {"openai": "openai.RateLimitError", "anthropic": "anthropic.RateLimitError",
                    "google": "google.api_core.exceptions.ResourceExhausted"}  # fmt: skip
SERVER_ERROR = {"openai": ("openai.InternalServerError", 500), "anthropic": ("anthropic.InternalServerError", 529),
                "google": ("google.api_core.exceptions.ServiceUnavailable", 503)}  # fmt: skip
TIMEOUT_ERROR = {"openai": "openai.APITimeoutError", "anthropic": "anthropic.APITimeoutError",
                 "google": "google.api_core.exceptions.DeadlineExceeded"}  # fmt: skip


@dataclass(frozen=True)
class Route:
    name: str
    service: str
    model: str
    stream: bool
    prompt: str
    prompt_v: int  # current version; the next publish is prompt_v + 1 (all distinct across prompts)
    index: str | None
    weight: float
    quality: float  # judge mean for an average tenant
    judge: float  # share of calls judged
    in_med: int
    out_med: int
    validation: bool = False
    asr: bool = False


ROUTES: dict[str, Route] = {r.name: r for r in (
    Route("/draft", "lexdesk-drafting", "claude-sonnet-4", True, "draft-clause", 14, "clause-library", 0.17, 0.80, 0.45, 2400, 520),
    Route("/redline", "lexdesk-drafting", "gpt-4.1", True, "redline", 8, None, 0.09, 0.83, 0.50, 3800, 380),
    Route("/classify", "lexdesk-intake", "gemini-2.0-flash", False, "doc-classify", 21, None, 0.15, 0.87, 0.35, 1500, 40, validation=True),
    Route("/extract", "lexdesk-intake", "gpt-4.1-mini", False, "extract-fields", 11, None, 0.16, 0.84, 0.30, 5200, 260, validation=True),
    Route("/qa", "lexdesk-research", "gpt-4.1", True, "case-qa", 31, "caselaw", 0.25, 0.78, 0.50, 6500, 420),
    Route("/cite-check", "lexdesk-research", "claude-3-5-haiku", False, "cite-check", 3, "caselaw", 0.07, 0.86, 0.40, 2800, 150),
    Route("/voice-notes", "lexdesk-voice", "gpt-4.1-mini", True, "voice-memo", 5, None, 0.11, 0.84, 0.50, 900, 300, asr=True),
)}  # fmt: skip
SERVICE_VERSION = {"lexdesk-drafting": (2, 14, 3), "lexdesk-intake": (5, 3, 0), "lexdesk-research": (1, 22, 7), "lexdesk-voice": (3, 8, 2)}
INDEX_VERSION = {"caselaw": ("b", 4471), "clause-library": ("v", 88)}
STREAM_SERVICES = ("lexdesk-drafting", "lexdesk-research", "lexdesk-voice")
TENANTS = ("hartwell", "northgate", "castellan", "pemberton", "ashford", "kestrel", "lowry",
           "marlowe", "quillon", "redfern", "sable", "tamsin", "vantor", "wexley")  # fmt: skip
PEOPLE = ("maya", "jonas", "priya", "tomas", "elif", "ci")


def _routes_of(*, service: str | None = None, model: str | None = None, index: str | None = None) -> list[str]:
    return [r.name for r in ROUTES.values()
            if (service is None or r.service == service) and (model is None or r.model == model) and (index is None or r.index == index)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# A scenario's spec: the timeline of changes, effects keyed by the labels that carry them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    dq: float = 0.0  # judge mean shift
    dq_p: float = 0.0  # with this probability per call ...
    dq_bad: float = 0.0  # ... the mean shifts by this much (e.g. a retrieval miss)
    ttft_mult: float = 1.0  # provider prefill slower
    buffer: float = 1.0  # a proxy holds the first chunks: TTFT x this, total duration unchanged
    cancel_p: float | None = None  # stream cancellation probability (default ~3%)
    cancel_frac: tuple[float, float] = (0.1, 0.9)  # where in the stream users cancel
    full_tail_p: float = 0.0  # the client leaves the upstream request open: provider bills everything
    asr_shift: float = 0.0  # ASR mean confidence shift
    val_fail: float = 0.0  # extra structured-output failures
    val_parse_share: float = 0.3  # of those, parse errors (the rest schema errors)


@dataclass
class Change:
    at: datetime
    key: tuple[str, str]  # ("svc", service) ("prompt", route) ("index", name) ("snap", request model) ("model", route)
    value: Any
    annotation: tuple[str, str, str | None, str, str] | None = None  # kind, target, version, description, author
    note: str = ""  # for the answer key
    harmful: bool = False


@dataclass
class Spec:
    seed: str
    start: datetime
    end: datetime
    calls: int  # target base calls (surges and retries add)
    swing: float  # daily swing amplitude
    peak_hour: float
    tenant_weights: list[float]
    tenant_offsets: list[float]
    tenant_routes: list[list[float]]  # per tenant, route weights (ROUTES order)
    weak: list[int]  # indices of the low-quality tenants
    initial: dict[tuple[str, str], Any]
    changes: list[Change] = field(default_factory=list)
    fx: dict[Label, Effect] = field(default_factory=dict)
    storms: list[tuple[datetime, datetime, str, str | None, float]] = field(default_factory=list)  # start, end, provider, model|None, p
    surges: list[tuple[datetime, datetime, float, int | None]] = field(default_factory=list)  # start, end, multiplier, tenant|None


def _writer(spec: Spec, name: str) -> Callable[[Any], int]:
    """How a scenario is written: simulate, then export every span through the store's exporter."""

    def write(store: Any) -> int:
        from opentelemetry.sdk.trace.export import SpanExportResult

        from driftline.collector import StoreSpanExporter

        spans, calls = _simulate(spec)
        exporter = StoreSpanExporter(store, owns_store=False)
        for i in range(0, len(spans), 25_000):
            if exporter.export(spans[i : i + 25_000]) is not SpanExportResult.SUCCESS:
                raise RuntimeError(f"{name}: could not write spans into {getattr(store, 'url', store)}")
        return calls

    return write


def _labelled(name: str, kind: str, service: str | None, spec: Spec, incident_start: datetime | None,
              signals: tuple[str, ...], causes: tuple[frozenset[Label], ...], notes: str) -> LabelledScenario:
    return LabelledScenario(name=name, kind=kind, world=WORLD, service=service, start=spec.start, end=spec.end,
                            incident_start=incident_start, signals=signals, causes=causes, writer=_writer(spec, name),
                            notes=notes, detail=spec)  # fmt: skip


def answer_key(scenario: LabelledScenario) -> list[str]:
    """The timeline of changes in a world-2 scenario, for humans."""
    spec: Spec = scenario.detail
    out = []
    for c in sorted(spec.changes, key=lambda c: c.at):
        rec = "annotated" if c.annotation else "not annotated"
        out.append(f"{c.at:%H:%M} {c.key[0]} {c.key[1]} -> {_fmt(c.value)} ({rec}) {'INCIDENT' if c.harmful else 'harmless'}: {c.note}")
    for s, e, p, m, rate in spec.storms:
        out.append(f"{s:%H:%M}-{e:%H:%M} 429 storm {p}{'/' + m if m else ''} {rate:.0%} INCIDENT")
    for s, e, mult, t in spec.surges:
        who = TENANTS[t] if t is not None else "all tenants"
        out.append(f"{s:%H:%M}-{e:%H:%M} traffic x{mult:.1f} from {who} {'INCIDENT' if scenario.kind == 'tenant_mix_shift' else 'harmless'}")
    return out


def _fmt(value: Any) -> str:
    return "/".join(str(v) for v in value if v) if isinstance(value, tuple) else str(value)


# ---------------------------------------------------------------------------------------------
# Building scenarios
# ---------------------------------------------------------------------------------------------


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _base_spec(rng: random.Random, seed: str, end: datetime) -> Spec:
    hours = rng.choice((3.0, 3.5, 4.0, 4.5, 5.0, 6.0))
    start = end - timedelta(hours=hours)
    zipf = [1 / (k + 1) ** 1.1 for k in range(len(TENANTS))]
    order = list(range(len(TENANTS)))
    rng.shuffle(order[1:])  # the biggest stays first; the rest in a scenario-specific order
    weights = [0.0] * len(TENANTS)
    for rank, t in enumerate(order):
        weights[t] = zipf[rank]
    total = sum(weights)
    weights = [w / total for w in weights]
    offsets = [rng.gauss(0, 0.02) for _ in TENANTS]
    mid = [t for t in order[3:9]]  # tenants with 3-8% of traffic
    weak = rng.sample(mid, 2)
    for t in weak:
        offsets[t] = -rng.uniform(0.12, 0.20)
    base = [r.weight for r in ROUTES.values()]
    tenant_routes = []
    for _ in TENANTS:
        row = [b * rng.lognormvariate(0, 0.5) for b in base]
        if rng.random() < 0.3:
            row[list(ROUTES).index("/voice-notes")] = 0.0
        s = sum(row)
        tenant_routes.append([x / s for x in row])
    initial: dict[tuple[str, str], Any] = {}
    for svc, parts in SERVICE_VERSION.items():
        initial[("svc", svc)] = ".".join(map(str, parts))
    for r in ROUTES.values():
        initial[("prompt", r.name)] = f"v{r.prompt_v}"
        initial[("model", r.name)] = r.model
    for name, (p, v) in INDEX_VERSION.items():
        initial[("index", name)] = f"{p}{v}"
    for m, spec in MODELS.items():
        initial[("snap", m)] = (spec.snapshot, f"fp_{_hex(rng, 10)}" if spec.fingerprints else None)
    return Spec(seed=seed, start=start, end=end, calls=int(rng.uniform(3500, 8500)), swing=rng.uniform(0.3, 0.6),
                peak_hour=rng.uniform(13, 17), tenant_weights=weights, tenant_offsets=offsets, tenant_routes=tenant_routes,
                weak=weak, initial=initial)  # fmt: skip


def _bump(version: str, *, minor: bool) -> str:
    major, mi, patch = map(int, version.split("."))
    return f"{major}.{mi + 1}.0" if minor else f"{major}.{mi}.{patch + 1}"


DEPLOY_NOTES = ("connection pool fix", "logging cleanup", "bump dependencies", "retry budget tweak", "feature flag cleanup",
                "metrics labels", "pdf parser upgrade", "timeout config")  # fmt: skip


def _harmless(spec: Spec, rng: random.Random, at: datetime, avoid: set[tuple[str, str]]) -> None:
    """One ordinary change that hurts nothing, at `at`, not touching the keys in `avoid`."""
    current = _state_at(spec, at)
    options: list[Callable[[], Change | None]] = []

    def deploy() -> Change | None:
        svcs = [s for s in SERVICE_VERSION if ("svc", s) not in avoid]
        if not svcs:
            return None
        svc = rng.choice(svcs)
        v = _bump(current[("svc", svc)], minor=False)
        return Change(at, ("svc", svc), v, ("deploy", svc, v, rng.choice(DEPLOY_NOTES), "ci"), note="deploy")

    def prompt() -> Change | None:
        routes = [r for r in ROUTES if ("prompt", r) not in avoid and current[("prompt", r)] == f"v{ROUTES[r].prompt_v}"]
        if not routes:
            return None
        r = rng.choice(routes)
        v = f"v{ROUTES[r].prompt_v + 1}"
        spec.fx[("prompt_version", v)] = Effect(dq=rng.uniform(-0.01, 0.015))
        return Change(at, ("prompt", r), v, ("prompt", ROUTES[r].prompt, v, rng.choice(("wording", "add example", "tone", "shorter")), rng.choice(PEOPLE[:-1])),
                      note="prompt publish, neutral")  # fmt: skip

    def rebuild() -> Change | None:
        idx = [i for i in INDEX_VERSION if ("index", i) not in avoid]
        if not idx:
            return None
        i = rng.choice(idx)
        p, n = INDEX_VERSION[i]
        cur = int(current[("index", i)][len(p) :])
        v = f"{p}{cur + 1}"
        ann = ("index", i, v, "nightly rebuild", "ci") if rng.random() < 0.6 else None
        return Change(at, ("index", i), v, ann, note="index rebuild, same content")

    def rotate() -> Change | None:
        models = [m for m in ("gpt-4.1", "gpt-4.1-mini") if ("snap", m) not in avoid]
        if not models:
            return None
        m = rng.choice(models)
        return Change(at, ("snap", m), (current[("snap", m)][0], f"fp_{_hex(rng, 10)}"), None, note="fingerprint rotation")

    options = [deploy, deploy, prompt, rebuild, rotate]
    rng.shuffle(options)
    for make in options:
        change = make()
        if change is not None:
            spec.changes.append(change)
            avoid.add(change.key)  # one change per thing per scenario
            return


def _add_harmless(spec: Spec, rng: random.Random, count: int, avoid: set[tuple[str, str]], near: datetime | None) -> None:
    lo, hi = spec.start + timedelta(minutes=25), spec.end - timedelta(minutes=12)
    times = []
    if near is not None and count:
        t = near + timedelta(minutes=rng.choice((-1, 1)) * rng.uniform(8, 30))
        times.append(min(max(t, lo), hi))
        count -= 1
    times += [lo + (hi - lo) * rng.random() for _ in range(count)]
    for t in times:
        _harmless(spec, rng, t.replace(microsecond=0), avoid)


def _incident_start(rng: random.Random, spec: Spec, lo: float = 35, hi: float = 110) -> datetime:
    return (spec.end - timedelta(minutes=rng.uniform(lo, hi))).replace(microsecond=0)


def _with_routes(labels: list[Label], routes: list[str]) -> tuple[frozenset[Label], ...]:
    out = [frozenset({lab}) for lab in labels]
    out += [frozenset({lab, ("route", r)}) for lab in labels for r in routes]
    return tuple(out)


def _make(kind: str, i: int, seed: int, end: datetime) -> LabelledScenario:
    rng = random.Random(f"world2:{seed}:{kind}:{i}")
    name = f"w2-{kind}-{i}"
    spec = _base_spec(rng, f"{seed}:{kind}:{i}", end)
    service: str | None = None
    local = i % 2 == 1  # odd scenarios of service-local kinds: the on-call filters to the service
    t0 = _incident_start(rng, spec)
    avoid: set[tuple[str, str]] = set()
    signals: tuple[str, ...] = ()
    causes: tuple[frozenset[Label], ...] = ()
    notes = ""

    if kind == "silent_snapshot_swap":
        m = rng.choice(list(NEW_SNAPSHOT))
        snap = NEW_SNAPSHOT[m]
        fp = f"fp_{_hex(rng, 10)}" if MODELS[m].fingerprints else None
        dq = -rng.uniform(0.05, 0.15)
        ttft = rng.choice((1.0, rng.uniform(1.2, 1.6)))
        spec.changes.append(Change(t0, ("snap", m), (snap, fp), None, note=f"provider moved alias, quality {dq:+.2f}, ttft x{ttft:.2f}", harmful=True))
        spec.fx[("response_model", snap)] = Effect(dq=dq, ttft_mult=ttft)
        avoid.add(("snap", m))
        signals = (QUALITY, *(TTFT + LATENCY if ttft > 1.1 else ()))  # a call's duration includes its TTFT
        labels = [("response_model", snap)] + ([("system_fingerprint", fp)] if fp else [])
        causes = _with_routes(labels, _routes_of(model=m))
        notes = f"{m} -> {snap} on {', '.join(_routes_of(model=m))}, dq {dq:+.3f}, ttft x{ttft:.2f}"

    elif kind == "prompt_regression":
        r = rng.choice(["/draft", "/redline", "/classify", "/extract", "/qa", "/voice-notes"])
        route = ROUTES[r]
        v = f"v{route.prompt_v + 1}"
        dq = -rng.uniform(0.05, 0.15)
        spec.changes.append(Change(t0, ("prompt", r), v, ("prompt", route.prompt, v, "tighter instructions", rng.choice(PEOPLE[:-1])),
                                   note=f"quality {dq:+.2f} on {r}", harmful=True))  # fmt: skip
        spec.fx[("prompt_version", v)] = Effect(dq=dq)
        avoid.add(("prompt", r))
        signals = (QUALITY,)
        causes = _with_routes([("prompt_version", v)], [r])
        service = route.service if local else None
        notes = f"{route.prompt} {v} on {r}, dq {dq:+.3f}"

    elif kind == "index_rebuild":
        idx = rng.choice(list(INDEX_VERSION))
        p, n = INDEX_VERSION[idx]
        v = f"{p}{n + 1}"
        miss = rng.uniform(0.2, 0.5)
        ann = ("index", idx, v, "re-embedded with new chunker", "ci") if rng.random() < 0.5 else None
        spec.changes.append(Change(t0, ("index", idx), v, ann, note=f"{miss:.0%} of retrievals miss", harmful=True))
        spec.fx[("index_version", v)] = Effect(dq_p=miss, dq_bad=-0.28)
        avoid.add(("index", idx))
        signals = (QUALITY,)
        routes = _routes_of(index=idx)
        causes = _with_routes([("index_version", v)], routes)
        service = ROUTES[routes[0]].service if local else None
        notes = f"{idx} -> {v} ({'annotated' if ann else 'not annotated'}), miss {miss:.0%} (~{-0.28 * miss:+.3f}) on {', '.join(routes)}"

    elif kind == "asr_deploy_confidence":
        svc = "lexdesk-voice"
        v = _bump(spec.initial[("svc", svc)], minor=True)
        shift = -rng.uniform(0.08, 0.15)
        spec.changes.append(Change(t0, ("svc", svc), v, ("deploy", svc, v, "switch ASR to streaming endpoint, VAD tuning", "ci"),
                                   note=f"ASR confidence {shift:+.2f}", harmful=True))  # fmt: skip
        spec.fx[("service_version", v)] = Effect(asr_shift=shift)
        avoid.add(("svc", svc))
        signals = ("low_confidence_share", "input_confidence", QUALITY)
        causes = _with_routes([("service_version", v), ("input_confidence", "low")], ["/voice-notes"])
        service = svc if local else None
        notes = f"{svc} {v}, confidence {shift:+.3f}"

    elif kind == "provider_429_storm":
        provider = rng.choice(("openai", "anthropic", "google"))
        model = rng.choice(("gpt-4.1", "gpt-4.1-mini")) if provider == "openai" else None
        dur = rng.uniform(20, 60)
        ongoing = rng.random() < 0.5
        t0 = (spec.end - timedelta(minutes=rng.uniform(dur * 0.7, dur) if ongoing else dur + rng.uniform(10, 60))).replace(microsecond=0)
        t1 = t0 + timedelta(minutes=dur)
        rate = rng.uniform(0.10, 0.40)
        spec.storms.append((t0, t1, provider, model, rate))
        signals = ("rate_limit_rate", "error_rate")
        if model:
            causes = _with_routes([("request_model", model)], _routes_of(model=model))
        else:
            models = sorted({r.model for r in ROUTES.values() if MODELS[r.model].provider == provider})
            labels = [("provider", provider)] + ([("request_model", models[0])] if len(models) == 1 else [])
            causes = _with_routes(labels, [r.name for r in ROUTES.values() if MODELS[r.model].provider == provider])
        notes = f"{provider}{'/' + model if model else ''} 429s {rate:.0%} for {dur:.0f} min ({'ongoing' if t1 > spec.end else 'ended'})"

    elif kind == "buffering_proxy":
        svc = rng.choice(STREAM_SERVICES)
        v = _bump(spec.initial[("svc", svc)], minor=True)
        f = rng.uniform(2.0, 4.0)
        spec.changes.append(Change(t0, ("svc", svc), v, ("deploy", svc, v, "envoy sidecar upgrade", "ci"), note=f"streams buffered, ttft x{f:.1f}", harmful=True))
        spec.fx[("service_version", v)] = Effect(buffer=f)
        avoid.add(("svc", svc))
        signals = TTFT
        causes = _with_routes([("service_version", v)], [r for r in _routes_of(service=svc) if ROUTES[r].stream])
        service = svc if local else None
        notes = f"{svc} {v} buffers streams, ttft x{f:.2f}"

    elif kind == "tenant_mix_shift":
        t = rng.choice(spec.weak)
        g = rng.uniform(4.0, 8.0)
        ongoing = rng.random() < 0.7
        t1 = spec.end + timedelta(minutes=5) if ongoing else t0 + timedelta(minutes=rng.uniform(30, (spec.end - t0).total_seconds() / 60 - 5))
        spec.surges.append((t0, t1, g, t))
        signals = (QUALITY,)
        causes = (frozenset({("tenant", TENANTS[t])}),)
        notes = f"tenant {TENANTS[t]} (share {spec.tenant_weights[t]:.1%}, offset {spec.tenant_offsets[t]:+.2f}) x{g:.1f}"

    elif kind == "early_cancel_client":
        svc = rng.choice(STREAM_SERVICES)
        v = _bump(spec.initial[("svc", svc)], minor=True)
        cp = rng.uniform(0.15, 0.35)
        spec.changes.append(Change(t0, ("svc", svc), v, ("deploy", svc, v, "new stop button; abort stream on tab switch", "ci"),
                                   note=f"cancels {cp:.0%}, upstream left open", harmful=True))  # fmt: skip
        spec.fx[("service_version", v)] = Effect(cancel_p=cp, cancel_frac=(0.05, 0.5), full_tail_p=0.7)
        avoid.add(("svc", svc))
        signals = ("cancellation_tax", "cancellation_cost")
        causes = _with_routes([("service_version", v)], [r for r in _routes_of(service=svc) if ROUTES[r].stream])
        service = svc if local else None
        notes = f"{svc} {v}: cancel p {cp:.0%}"

    elif kind == "structured_output_break":
        variant = ("model", "prompt", "snapshot")[(i + seed) % 3]
        fail = rng.uniform(0.06, 0.18)
        eff = Effect(val_fail=fail, val_parse_share=rng.uniform(0.2, 0.6))
        if variant == "model":
            spec.changes.append(Change(t0, ("model", "/extract"), "gpt-4.1-nano", ("model", "extract-fields", "gpt-4.1-nano", "cheaper model for extraction", "priya"),
                                       note=f"validation failures +{fail:.0%}", harmful=True))  # fmt: skip
            spec.fx[("request_model", "gpt-4.1-nano")] = eff
            avoid.add(("model", "/extract"))
            fp = spec.initial[("snap", "gpt-4.1-nano")][1]
            causes = _with_routes([("request_model", "gpt-4.1-nano"), ("response_model", MODELS["gpt-4.1-nano"].snapshot), ("system_fingerprint", fp)], ["/extract"])
        elif variant == "prompt":
            v = f"v{ROUTES['/extract'].prompt_v + 1}"
            spec.changes.append(Change(t0, ("prompt", "/extract"), v, ("prompt", "extract-fields", v, "new fields: governing_law, term", "jonas"),
                                       note=f"validation failures +{fail:.0%}", harmful=True))  # fmt: skip
            spec.fx[("prompt_version", v)] = eff
            avoid.add(("prompt", "/extract"))
            causes = _with_routes([("prompt_version", v)], ["/extract"])
        else:
            snap, fp = NEW_SNAPSHOT["gpt-4.1-mini"], f"fp_{_hex(rng, 10)}"
            spec.changes.append(Change(t0, ("snap", "gpt-4.1-mini"), (snap, fp), None, note=f"validation failures +{fail:.0%} on /extract", harmful=True))
            spec.fx[("response_model", snap)] = replace(eff, val_fail=fail)  # only /extract validates with this model
            avoid.add(("snap", "gpt-4.1-mini"))
            causes = _with_routes([("response_model", snap), ("system_fingerprint", fp)], ["/extract"])
        signals = ("validation_failure_rate",)
        service = "lexdesk-intake" if local else None
        notes = f"{variant} change on /extract, failures +{fail:.1%}"
    else:
        raise ValueError(kind)

    _add_harmless(spec, rng, rng.choice((2, 3)), avoid, t0)
    start_at = spec.storms[0][0] if spec.storms else spec.surges[0][0] if kind == "tenant_mix_shift" else t0
    return _labelled(name, kind, service, spec, start_at, signals, causes, notes)


def _control(i: int, seed: int, end: datetime) -> LabelledScenario:
    rng = random.Random(f"world2:{seed}:control:{i}")
    spec = _base_spec(rng, f"{seed}:control:{i}", end)
    variant = ("plain", "busy", "surge")[i % 3]
    if variant == "plain":
        _add_harmless(spec, rng, 2, set(), None)
        notes = "plain: two harmless changes"
    elif variant == "busy":
        near = _incident_start(rng, spec)
        _add_harmless(spec, rng, 5, set(), near)
        notes = "busy: five harmless changes (deploys, prompt publish, rebuilds, fingerprint rotation)"
    else:
        s = _incident_start(rng, spec, 40, 150)
        mult = rng.uniform(1.8, 3.0)
        spec.surges.append((s, s + timedelta(minutes=rng.uniform(40, 90)), mult, None))
        _add_harmless(spec, rng, rng.choice((1, 2)), set(), None)
        notes = f"surge: traffic x{mult:.1f} for all tenants, nothing worse"
    return _labelled(f"w2-control-{i}", CONTROL, None, spec, None, (), (), notes)


def scenarios(seed: int = 0, *, per_kind: int = 2, end: datetime | None = None) -> list[LabelledScenario]:
    """`per_kind` scenarios of each incident kind plus max(3, per_kind + 1) controls.

    Every scenario ends at `end` (default: the last whole minute, less two). Write each into its
    own store.
    """
    end = end or _minute(datetime.now(UTC)) - timedelta(minutes=2)
    out = [_make(kind, i, seed, end) for kind in KINDS for i in range(per_kind)]
    out += [_control(i, seed, end) for i in range(max(3, per_kind + 1))]
    return out


# ---------------------------------------------------------------------------------------------
# The simulation
# ---------------------------------------------------------------------------------------------


def _state_at(spec: Spec, t: datetime) -> dict[tuple[str, str], Any]:
    state = dict(spec.initial)
    for c in sorted(spec.changes, key=lambda c: c.at):
        if c.at <= t:
            state[c.key] = c.value
    return state


class _Collect:
    """A span processor that keeps every finished span (exported once at the end)."""

    def __init__(self, out: list[Any]) -> None:
        self.out = out

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: Any) -> None:
        self.out.append(span)

    def _on_ending(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _chunks(now: list[int], times: list[int], sizes: list[int]) -> Iterator[int]:
    for t, k in zip(times, sizes):
        now[0] = t
        yield k


def _ident(x: int) -> int:
    return x


def _arrivals(spec: Spec, rnd: random.Random) -> list[tuple[float, int | None]]:
    """(seconds since start, forced tenant or None), sorted: Poisson per minute on a daily swing with drift."""
    import numpy as np

    nrng = np.random.default_rng(zlib.crc32(spec.seed.encode()))
    minutes = int((spec.end - spec.start).total_seconds() // 60)
    t0 = spec.start.hour + spec.start.minute / 60
    shape = np.array([1 + spec.swing * math.sin(2 * math.pi * (t0 + m / 60 - spec.peak_hour + 6) / 24) for m in range(minutes)])
    drift = np.zeros(minutes)
    x = 0.0
    for m in range(minutes):
        x = 0.97 * x + rnd.gauss(0, 0.03)
        drift[m] = x
    rate = shape * np.exp(drift)
    rate *= spec.calls / rate.sum()
    out: list[tuple[float, int | None]] = []
    counts = nrng.poisson(rate)
    for m, c in enumerate(counts.tolist()):
        out += [((m + rnd.random()) * 60, None) for _ in range(c)]
    for s, e, mult, tenant in spec.surges:
        share = spec.tenant_weights[tenant] if tenant is not None else 1.0
        for m in range(minutes):
            mt = spec.start + timedelta(minutes=m)
            if s <= mt < e:
                ramp = min(1.0, (mt - s).total_seconds() / 600)  # ten minutes to full strength
                extra = nrng.poisson(rate[m] * share * (mult - 1) * ramp)
                out += [((m + rnd.random()) * 60, tenant) for _ in range(int(extra))]
    out.sort(key=lambda a: a[0])
    return out


def _simulate(spec: Spec) -> tuple[list[Any], int]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from driftline.collector import ReleaseContextProcessor, annotate, llm_call, record_confidence, record_score, release, tag_retrieval

    rnd = random.Random(spec.seed)
    spans: list[Any] = []
    providers: dict[tuple[str, str], TracerProvider] = {}

    def tp(service: str, version: str) -> TracerProvider:
        p = providers.get((service, version))
        if p is None:
            p = TracerProvider(resource=Resource.create({"service.name": service, "service.version": version,
                                                         "deployment.environment.name": "prod"}), shutdown_on_exit=False)  # fmt: skip
            p.add_span_processor(ReleaseContextProcessor())
            p.add_span_processor(_Collect(spans))  # type: ignore[arg-type]
            providers[(service, version)] = p
        return p

    # annotations, from the service that made the change
    for c in spec.changes:
        if c.annotation:
            kind, target, version, desc, author = c.annotation
            svc = c.key[1] if c.key[0] == "svc" else ROUTES[c.key[1]].service if c.key[0] in ("prompt", "model") else (
                ROUTES[_routes_of(index=c.key[1])[0]].service if c.key[0] == "index" else "lexdesk-research")  # fmt: skip
            ver = _state_at(spec, c.at)[("svc", svc)]
            annotate(kind, target, version=version, description=desc, author=author, at=c.at, tracer_provider=tp(svc, ver))

    # the state as a step function of time
    cuts = sorted({c.at for c in spec.changes})
    states = [(spec.start - timedelta(days=1), _state_at(spec, spec.start))] + [(t, _state_at(spec, t)) for t in cuts]
    cut_s = [(t - spec.start).total_seconds() for t, _ in states]

    route_names = list(ROUTES)
    routes = [ROUTES[r] for r in route_names]
    tenant_idx = list(range(len(TENANTS)))
    start_ns = _ns(spec.start)
    fx = spec.fx
    storms = [((s - spec.start).total_seconds(), (e - spec.start).total_seconds(), p, m, rate) for s, e, p, m, rate in spec.storms]
    now = [0]

    def clock() -> int:
        return now[0]

    calls = 0
    si = 0
    arrivals = [(t, tn, -1, 0) for t, tn in _arrivals(spec, rnd)]
    queue: list[tuple[float, int, int | None, int, int]] = [(t, k, tn, r, a) for k, (t, tn, r, a) in enumerate(arrivals)]
    heapq.heapify(queue)
    seq = len(queue)
    end_s = (spec.end - spec.start).total_seconds()
    while queue:
        t, _, tenant, ri, attempt = heapq.heappop(queue)
        if t >= end_s:
            continue
        while si + 1 < len(cut_s) and cut_s[si + 1] <= t:
            si += 1
        state = states[si][1]
        if tenant is None:
            tenant = rnd.choices(tenant_idx, spec.tenant_weights)[0]
        if ri < 0:
            ri = rnd.choices(range(len(routes)), spec.tenant_routes[tenant])[0]
        route = routes[ri]
        svc_v = state[("svc", route.service)]
        pv = state[("prompt", route.name)]
        req = state[("model", route.name)]
        model = MODELS[req]
        provider = model.provider
        snap, fp = state[("snap", req)]
        iv = state[("index", route.index)] if route.index else None
        effs = [e for e in (fx.get(("service_version", svc_v)), fx.get(("prompt_version", pv)), fx.get(("request_model", req)),
                            fx.get(("response_model", snap)), fx.get(("index_version", iv)) if iv else None) if e is not None]  # fmt: skip

        # what happens
        in_tok = max(50, int(route.in_med * rnd.lognormvariate(0, 0.5)))
        out_tok = max(5, int(route.out_med * rnd.lognormvariate(0, 0.45)))
        ttft = model.ttft * (in_tok / 2000) ** 0.25 * rnd.lognormvariate(0, 0.3)
        if rnd.random() < 0.02:
            ttft *= rnd.uniform(2, 6)
        for e in effs:
            ttft *= e.ttft_mult
        gen = out_tok * model.tpot * rnd.lognormvariate(0, 0.15)
        q = route.quality + spec.tenant_offsets[tenant]
        conf = None
        if route.asr:
            mu = 0.84 if rnd.random() > 0.06 else 0.62  # noisy rooms
            mu += sum(e.asr_shift for e in effs)
            conf = min(0.99, max(0.05, rnd.betavariate(mu * 14, (1 - mu) * 14)))
            q -= max(0.0, 0.78 - conf) * 0.9
        if route.index and rnd.random() < 0.04:
            q -= 0.2  # the usual retrieval miss
        for e in effs:
            q += e.dq
            if e.dq_p and rnd.random() < e.dq_p:
                q += e.dq_bad
        q = min(0.97, max(0.05, q))

        # failures
        fail: tuple[str, int | None, float] | None = None
        u = rnd.random()
        p429 = 0.003
        for s0, s1, sp, sm, rate in storms:
            if s0 <= t < s1 and sp == provider and (sm is None or sm == req):
                p429 += rate
        if u < p429:
            fail = (RATE_LIMIT_ERROR[provider], 429, rnd.uniform(0.05, 0.4))
        elif u < p429 + 0.003:
            et, code = SERVER_ERROR[provider]
            fail = (et, code, rnd.uniform(0.3, 3.0))
        elif u < p429 + 0.0045:
            fail = (TIMEOUT_ERROR[provider], None, rnd.uniform(30, 60))

        t_ns = start_ns + int(t * 1e9)
        calls += 1
        with release(route=route.name, tenant=TENANTS[tenant], prompt_name=route.prompt, prompt_version=pv):
            if route.index:
                tag_retrieval(index_name=route.index, index_version=iv, documents=rnd.randint(4, 12))
            if conf is not None:
                words = max(5, int(in_tok * 0.6))
                low = int(round(words * min(1.0, max(0.0, (0.8 - conf) * 1.6)) * rnd.uniform(0.5, 1.5)))
                record_confidence(mean=round(conf, 4), minimum=round(max(0.01, conf - rnd.uniform(0.15, 0.45)), 4), low_words=min(words, low),
                                  engine="whisper-large-v3")  # fmt: skip
            now[0] = t_ns
            with llm_call(provider=provider, model=req, stream=route.stream, server_address=SERVER[provider], clock=clock,
                          tracer_provider=tp(route.service, svc_v)) as call:  # fmt: skip
                if fail is not None:
                    et, status, dur = fail
                    now[0] = t_ns + int(dur * 1e9)
                    call.failed(error_type=et, http_status=status, message=et.rsplit(".", 1)[-1])
                else:
                    cost_in = in_tok * model.price_in
                    if route.stream:
                        buffer = max([e.buffer for e in effs], default=1.0)
                        first = ttft if buffer == 1.0 else min(ttft * buffer, ttft + 0.85 * gen)
                        n = max(3, min(10, out_tok // 40))
                        sizes = [out_tok // n + (1 if k < out_tok % n else 0) for k in range(n)]
                        span_gen = ttft + gen - first
                        times = [t_ns + int((first + span_gen * k / (n - 1)) * 1e9) for k in range(n)]
                        cp = next((e.cancel_p for e in effs if e.cancel_p is not None), 0.05 if route.asr else 0.03)
                        ce = next((e for e in effs if e.cancel_p is not None), None)
                        stop = n
                        if rnd.random() < cp:
                            lo, hi = ce.cancel_frac if ce else (0.1, 0.9)
                            stop = max(1, min(n - 1, int(n * rnd.uniform(lo, hi))))
                        got = 0
                        it = call.stream(_chunks(now, times, sizes), tokens=_ident)
                        for _k in it:
                            got += 1
                            if stop < n and got >= stop:
                                break
                        if stop < n:
                            call.cancel()
                            delivered = sum(sizes[:stop])
                            remaining = out_tok - delivered
                            if ce is not None and rnd.random() < ce.full_tail_p:
                                tail = remaining
                            else:
                                tail = min(remaining, int(rnd.lognormvariate(math.log(30), 0.6)))
                            billed = delivered + tail
                            now[0] = times[stop - 1] + int(rnd.uniform(0.05, 0.5) * 1e9)
                            call.response(model=snap, fingerprint=fp, input_tokens=in_tok, output_tokens=billed,
                                          cost=round((cost_in + billed * model.price_out) / 1e6, 7))  # fmt: skip
                        else:
                            now[0] = times[-1] + int(rnd.uniform(0.005, 0.05) * 1e9)
                            call.response(model=snap, fingerprint=fp, finish_reason=FINISH[provider], input_tokens=in_tok, output_tokens=out_tok,
                                          cost=round((cost_in + out_tok * model.price_out) / 1e6, 7))  # fmt: skip
                        del it
                    else:
                        now[0] = t_ns + int((ttft + gen + rnd.lognormvariate(math.log(0.05), 0.5)) * 1e9)
                        call.response(model=snap, fingerprint=fp, finish_reason=FINISH[provider] if rnd.random() > 0.01 else "length",
                                      input_tokens=in_tok, output_tokens=out_tok, cost=round((cost_in + out_tok * model.price_out) / 1e6, 7))  # fmt: skip
                        stop = n = 1
                    valid = True
                    if route.validation:
                        extra = sum(e.val_fail for e in effs if route.name == "/extract")
                        parse_share = next((e.val_parse_share for e in effs if e.val_fail), 0.3)
                        v = rnd.random()
                        base_p, base_s, base_m = (0.004, 0.006, 0.004) if route.name == "/classify" else (0.008, 0.012, 0.006)
                        if v < base_p + extra * parse_share:
                            outcome = "parse_error"
                        elif v < base_p + base_s + extra:
                            outcome = "schema_error"
                        elif v < base_p + base_s + base_m + extra:
                            outcome = "semantic_error"
                        else:
                            outcome = "ok"
                        call.validation(outcome)
                        valid = outcome == "ok"
                    if stop == n and valid and rnd.random() < route.judge:
                        k = 8.0
                        score = rnd.betavariate(q * k, (1 - q) * k)
                        record_score(EVAL, value=round(score, 2), clock=clock)
        if fail is not None and fail[1] == 429 and attempt < 2 and rnd.random() < 0.6:
            seq += 1
            heapq.heappush(queue, (t + rnd.uniform(1, 6) * (attempt + 1), seq, tenant, ri, attempt + 1))
    return spans, calls
