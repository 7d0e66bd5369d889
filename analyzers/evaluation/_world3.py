"""World 3 ("Switchboard"): labelled incidents on a telecom customer-support platform.

A third world for the incident-report evaluation, written without reading the analyzers or the
other worlds, so the report is scored on data it was not built around. Operators (tenants, very
different sizes) rent Switchboard for phone support (ASR transcript -> intent, streamed spoken
reply over the knowledge base), web chat (retrieval-augmented answers, an agent-routing step with
JSON output, a quiet billing route) and ticket summaries as JSON (a batch worker traced by a
third-party instrumentation), across OpenAI, Anthropic and Vertex AI. Each scenario is 3.5-5 hours
of a daily traffic curve (roughly 8,500-20,000 calls), LLM-judge scores on a fraction of calls (some
recorded minutes later), background 429s, timeouts, 5xx, cancels and latency tails, and 3-5
harmless changes (deploys, prompt publishes elsewhere, index rebuilds, fingerprint rotations, a
tenant onboarding), one of them within minutes of the incident. Labels are computed from the
planned calls: the injected value, and every value pair that selects the same calls.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ._labels import CONTROL, Label, LabelledScenario, cause_set
from ._world3_emit import write
from ._world3_sim import DIMENSIONS, INDEXES, NEW_TENANT, NS, QUALITY_PER_CONFIDENCE, ROUTE, TENANTS, VERSIONS, WEAK_TENANT, Call, Change, Effect, World, ns, plan

__all__ = ["KINDS", "WORLD", "Probe", "scenario", "scenarios"]

WORLD = "world3"
KINDS = ("silent_snapshot_swap", "prompt_regression", "index_rebuild", "asr_deploy_confidence", "provider_429_storm",
         "buffering_proxy", "tenant_mix_shift", "early_cancel_client", "structured_output_break", CONTROL)  # fmt: skip
MINUTE = 60 * NS


@dataclass(frozen=True)
class Probe:
    """How to see an incident in raw rows: `signal` over the `segment`'s calls after the start is worse than
    over the `context`'s calls before it (the calls that would have been the segment's)."""

    signal: str
    segment: Label
    context: Label


@dataclass(frozen=True)
class Incident:
    """One injected incident: the state it changes, what that does, and its answer key before aliases."""

    key: tuple[str, str] | None
    changes: tuple[Change, ...]
    effects: tuple[Effect, ...]
    signals: tuple[str, ...]
    bases: tuple[Label, ...]
    probe: Probe | None
    notes: str
    until: int | None = None


Builder = Callable[[random.Random, int, int], Incident]
QUALITY_OF = {path: f"quality:{r.evaluation}" for path, r in ROUTE.items() if r.evaluation}
TTFT, LATENCY = ("ttft_p50", "ttft_p95", "ttft_p99"), ("latency_p50", "latency_p95", "latency_p99")


def _silent_snapshot_swap(rng: random.Random, t0: int, end: int) -> Incident:
    """The provider moves an alias to a new snapshot without notice, rolled out over minutes."""
    if rng.random() < 0.5:
        alias, new, fp, routes = "gpt-4o", "gpt-4o-2024-11-20", "fp_7f2b41c9e0", "/voice/reply"
        drop, slower = rng.uniform(0.06, 0.12), rng.uniform(1.8, 2.8)
        effect = Effect((("response_model", new),), t0, quality=drop, ttft=slower)
        signals: tuple[str, ...] = (QUALITY_OF["/voice/reply"], *TTFT, *LATENCY)
        what = f"TTFT x{slower:.1f}"
    else:
        alias, new, fp, routes = "gpt-4o-mini", "gpt-4o-mini-2025-02-26", "fp_c2e41d8a15", "/voice/intent and /chat/route"
        drop, slower = rng.uniform(0.08, 0.14), rng.uniform(1.4, 1.9)
        effect = Effect((("response_model", new),), t0, quality=drop, latency=slower)
        signals, what = (QUALITY_OF["/voice/intent"], *LATENCY), f"latency x{slower:.1f}"
    change = Change(t0, ("snapshot", alias), f"{new}|{fp}", rollout=rng.uniform(0, 600))
    probe = Probe(signals[0], cause_set(("response_model", new)), cause_set(("request_model", alias)))
    notes = f"silent: {alias} now answers as {new} ({fp}) on {routes}: quality -{drop:.2f}, {what}"
    return Incident(change.key, (change,), (effect,), signals, (probe.segment, cause_set(("system_fingerprint", fp))), probe, notes)


def _prompt_regression(rng: random.Random, t0: int, end: int) -> Incident:
    path, version = rng.choice((("/chat/answer", "v32"), ("/voice/reply", "v8"), ("/tickets/summarize", "v10")))
    r, drop = ROUTE[path], rng.uniform(0.05, 0.11)
    change = Change(t0, ("prompt", path), version, (r.service, "prompt", r.prompt, version, "tighter answers, fewer caveats"))
    effect = Effect((("prompt_version", version), ("route", path)), t0, quality=drop)
    probe = Probe(QUALITY_OF[path], cause_set(("prompt_version", version)), cause_set(("route", path)))
    return Incident(change.key, (change,), (effect,), (probe.signal,), (probe.segment,), probe, f"prompt {r.prompt} {version} on {path}: quality -{drop:.2f}")


def _index_rebuild(rng: random.Random, t0: int, end: int) -> Incident:
    """A rebuild from a truncated CMS export: the questions it lost answer worse on both routes that read the index."""
    version, share, drop = "tkb-0413", rng.uniform(0.4, 0.7), rng.uniform(0.12, 0.18)
    change = Change(t0, ("index", "telco-kb"), version, ("chat-assist", "index", "telco-kb", version, "nightly rebuild from the CMS export"))
    effect = Effect((("index_version", version),), t0, share=share, quality=drop)
    probe = Probe("quality:resolution_quality", cause_set(("index_version", version)), cause_set(("index_version", INDEXES["telco-kb"])))
    notes = f"index telco-kb {version}: quality -{drop:.2f} on {share:.0%} of /chat/answer and /voice/reply (mean -{drop * share:.2f})"
    return Incident(change.key, (change,), (effect,), (probe.signal,), (probe.segment,), probe, notes)


def _asr_deploy_confidence(rng: random.Random, t0: int, end: int) -> Incident:
    """A voice-gateway deploy moves narrow-band calls to a new ASR engine that hears them worse."""
    version, share, shift = "3.5.0", rng.uniform(0.45, 0.75), rng.uniform(0.2, 0.28)
    change = Change(t0, ("version", "voice-gateway"), version, ("voice-gateway", "deploy", "voice-gateway", version, "ASR: streaming conformer-6"),
                    rollout=rng.uniform(120, 360))  # fmt: skip
    effect = Effect((("service_version", version),), t0, share=share, confidence=shift)
    probe = Probe("low_confidence_share", cause_set(("service_version", version)), cause_set(("service_version", VERSIONS["voice-gateway"])))
    signals = ("low_confidence_share", "input_confidence", QUALITY_OF["/voice/reply"], QUALITY_OF["/voice/intent"])
    notes = f"voice-gateway {version}: ASR confidence -{shift:.2f} on {share:.0%} of voice calls, their quality -{QUALITY_PER_CONFIDENCE * shift:.2f}"
    return Incident(change.key, (change,), (effect,), signals, (probe.segment, cause_set(("input_confidence", "low"))), probe, notes)


def _provider_429_storm(rng: random.Random, t0: int, end: int) -> Incident:
    provider, rate = rng.choice(("anthropic", "openai", "vertex_ai")), rng.uniform(0.2, 0.45)
    until = min(end, t0 + int(rng.uniform(30, 70) * MINUTE))
    effect = Effect((("provider", provider),), t0, until, rate_limited=rate)
    probe = Probe("rate_limit_rate", cause_set(("provider", provider)), cause_set(("provider", provider)))
    notes = f"{provider} rate-limits {rate:.0%} of calls for {(until - t0) // MINUTE} min"
    return Incident(None, (), (effect,), ("rate_limit_rate", "error_rate"), (probe.segment,), probe, notes, until)


def _deploy(rng: random.Random, t0: int, service: str, version: str, description: str) -> Change:
    return Change(t0, ("version", service), version, (service, "deploy", service, version, description), rollout=rng.uniform(60, 240))


def _buffering_proxy(rng: random.Random, t0: int, end: int) -> Incident:
    service = rng.choice(("chat-assist", "voice-gateway"))
    version, hold = {"chat-assist": "2.19.0", "voice-gateway": "3.4.3"}[service], rng.uniform(0.9, 1.5)
    change = _deploy(rng, t0, service, version, "provider traffic through the new egress proxy")
    effect = Effect((("service_version", version),), t0, buffer=(hold, hold + 0.6))
    probe = Probe("ttft_p50", cause_set(("service_version", version)), cause_set(("service_version", VERSIONS[service])))
    notes = f"{service} {version} egress proxy buffers streams: TTFT +{hold:.1f}-{hold + 0.6:.1f} s, total latency flat"
    return Incident(change.key, (change,), (effect,), TTFT, (probe.segment,), probe, notes)


def _tenant_mix_shift(rng: random.Random, t0: int, end: int) -> Incident:
    """An outage at a weak-scoring operator floods support with its customers; nothing in Switchboard changed."""
    target, weak = rng.uniform(0.22, 0.35), TENANTS[WEAK_TENANT][0]
    others = sum(w for name, (w, _) in TENANTS.items() if name not in (WEAK_TENANT, NEW_TENANT))
    change = Change(t0, ("tenant", WEAK_TENANT), f"{target * others / (weak * (1 - target)):.3f}", rollout=rng.uniform(300, 900))
    probe = Probe("quality:resolution_quality", cause_set(("tenant", WEAK_TENANT)), frozenset())
    share0 = weak / (weak + others)
    notes = f"{WEAK_TENANT} (scores {-TENANTS[WEAK_TENANT][1]:.2f} below) grows from {share0:.0%} to {target:.0%} of traffic; no code change"
    qualities = tuple(dict.fromkeys((probe.signal, *QUALITY_OF.values())))  # its offset lowers every route's judged quality (`_world3_sim`)
    return Incident(change.key, (change,), (), qualities, (probe.segment,), probe, notes)


def _early_cancel_client(rng: random.Random, t0: int, end: int) -> Incident:
    service = rng.choice(("chat-assist", "voice-gateway"))
    version, why = {"chat-assist": ("2.20.0", "widget reconnects close the upstream stream"),
                    "voice-gateway": ("3.6.0", "barge-in: voice-activity detection more sensitive")}[service]  # fmt: skip
    share = rng.uniform(0.3, 0.5)
    change = _deploy(rng, t0, service, version, why)
    effect = Effect((("service_version", version),), t0, cancel=share)
    probe = Probe("cancellation_tax", cause_set(("service_version", version)), cause_set(("service_version", VERSIONS[service])))
    notes = f"{service} {version} ({why}): {share:.0%} more streams cancelled early, the provider keeps billing"
    return Incident(change.key, (change,), (effect,), ("cancellation_tax", "cancellation_cost"), (probe.segment,), probe, notes)


def _structured_output_break(rng: random.Random, t0: int, end: int) -> Incident:
    rate, variant = rng.uniform(0.12, 0.3), rng.randrange(3)
    if variant == 2:  # summaries moved to a model that wraps its JSON in Markdown fences
        path, model = "/tickets/summarize", "gemini-2.5-flash"
        change = Change(t0, ("model", path), model, ("ticket-worker", "model", "ticket-summary", model, "summaries on gemini-2.5-flash"))
        bases: tuple[Label, ...] = (cause_set(("request_model", model)), cause_set(("response_model", "gemini-2.5-flash-002")))
    else:
        path, version, why = (("/tickets/summarize", "v10", "adds next_steps to the schema"), ("/chat/route", "v6", "adds a callback queue"))[variant]
        r = ROUTE[path]
        change = Change(t0, ("prompt", path), version, (r.service, "prompt", r.prompt, version, why))
        bases = (cause_set(("prompt_version", version)),)
    effect = Effect((*bases[0], ("route", path)), t0, invalid=rate)
    probe = Probe("validation_failure_rate", bases[0], cause_set(("route", path)))
    return Incident(change.key, (change,), (effect,), ("validation_failure_rate",), bases, probe, f"{change.key[0]} change on {path}: {rate:.0%} of outputs fail validation")


def _control(rng: random.Random, t0: int, end: int) -> Incident:
    return Incident(None, (), (), (), (), None, "harmless changes only")


BUILDERS: dict[str, Builder] = {
    "silent_snapshot_swap": _silent_snapshot_swap, "prompt_regression": _prompt_regression, "index_rebuild": _index_rebuild,
    "asr_deploy_confidence": _asr_deploy_confidence, "provider_429_storm": _provider_429_storm, "buffering_proxy": _buffering_proxy,
    "tenant_mix_shift": _tenant_mix_shift, "early_cancel_client": _early_cancel_client, "structured_output_break": _structured_output_break,
    CONTROL: _control,
}  # fmt: skip

HARMLESS: dict[tuple[str, str], tuple[str, tuple[str, str, str, str, str] | None]] = {
    ("version", "voice-gateway"): ("3.4.2", ("voice-gateway", "deploy", "voice-gateway", "3.4.2", "retry ASR on silence")),
    ("version", "chat-assist"): ("2.18.1", ("chat-assist", "deploy", "chat-assist", "2.18.1", "connection pool fix")),
    ("version", "ticket-worker"): ("1.9.4", ("ticket-worker", "deploy", "ticket-worker", "1.9.4", "log sampling")),
    ("prompt", "/voice/intent"): ("v13", ("voice-gateway", "prompt", "voice-intent", "v13", "adds the eSIM activation intent")),
    ("prompt", "/chat/billing"): ("v4", ("chat-assist", "prompt", "billing-explain", "v4", "mentions the new roaming bundle")),
    ("prompt", "/tickets/classify"): ("v22", ("ticket-worker", "prompt", "ticket-tags", "v22", "two new tags")),
    ("index", "billing-faq"): ("bf-89", ("chat-assist", "index", "billing-faq", "bf-89", "hourly refresh")),
    ("index", "telco-kb"): ("tkb-0413", ("chat-assist", "index", "telco-kb", "tkb-0413", "nightly rebuild, no content change")),
    ("snapshot", "gpt-4o-mini"): ("gpt-4o-mini-2024-07-18|fp_9d3a1b7c44", None),
    ("snapshot", "gpt-4o"): ("gpt-4o-2024-08-06|fp_a7d06e42a7", None),
    ("tenant", NEW_TENANT): ("1", ("chat-assist", "config", f"tenant {NEW_TENANT}", "", "operator onboarded")),
}  # fmt: skip
"""Changes that hurt nothing: (new value, annotation or None for a silent fingerprint rotation)."""


def _harmless(rng: random.Random, incident: Incident, start: int, end: int, t0: int) -> list[Change]:
    """3-5 harmless changes off the incident's key; the first lands within minutes of its start."""
    keys = [k for k in HARMLESS if k != incident.key]
    chosen = rng.sample(keys, rng.randint(3, 5))
    out = []
    for i, key in enumerate(chosen):
        at = t0 + int(rng.uniform(-12, 6) * MINUTE) if i == 0 else int(rng.uniform(start + 15 * MINUTE, end - 15 * MINUTE))
        value, annotation = HARMLESS[key]
        out.append(Change(at, key, value, annotation, rollout=rng.uniform(60, 240) if key[0] == "version" else 0.0))
    return out


def _in_scope(signal: str, call: Call) -> bool:
    """Whether a call counts towards a signal (the population its aliases are judged in)."""
    if signal.startswith("quality:"):
        return call.score is not None and call.route.evaluation == signal.removeprefix("quality:")
    if signal.startswith("ttft_"):
        return call.ttft is not None
    if signal.startswith("latency_"):
        return call.error is None
    if signal.startswith("cancellation_"):
        return call.route.stream
    if signal == "validation_failure_rate":
        return call.validation is not None
    if signal in ("low_confidence_share", "input_confidence"):
        return call.confidence is not None
    return True


def _causes(calls: list[Call], incident: Incident, t0: int, stop: int) -> tuple[Label, ...]:
    """The bases, and each base with a value every one of its calls shares within a signal's population after the start
    (the new response model with its route, a prompt version with its service version)."""
    out = list(incident.bases)
    after = [c for c in calls if t0 <= c.t < stop]
    for signal in incident.signals:
        scoped = [c.dims() for c in after if _in_scope(signal, c)]
        for base in incident.bases:
            hit = [d for d in scoped if all(d[k] == v for k, v in base)]
            named = {k for k, _ in base}
            for dim in DIMENSIONS:
                values = {d[dim] for d in hit}
                if dim in named or len(values) != 1 or None in values:
                    continue
                cause = base | {(dim, str(values.pop()))}
                if cause not in out:
                    out.append(cause)
    return tuple(out)


def scenario(kind: str, seed: int, index: int, end: datetime, *, volume: float = 1.0) -> LabelledScenario:
    """One scenario of `kind`; `volume` scales its traffic (tests write smaller worlds)."""
    rng = random.Random(f"world3/{seed}/{kind}/{index}")
    hours = rng.choice((3.5, 4.0, 4.5, 5.0))
    start = end - timedelta(hours=hours)
    t0 = ns(start) + int(rng.uniform(0.58, 0.75) * hours * 60 * MINUTE)
    incident = BUILDERS[kind](rng, t0, ns(end))
    world = World(seed=f"world3/{seed}/{kind}/{index}/calls", start=start, end=end, rate=rng.uniform(40, 75) * volume)
    world.changes = sorted([*incident.changes, *_harmless(rng, incident, ns(start), ns(end), t0)], key=lambda c: c.at)
    world.effects = list(incident.effects)
    calls = plan(world)
    stop = incident.until or ns(end)
    causes = _causes(calls, incident, t0, stop) if incident.bases else ()
    after = [c for c in calls if t0 <= c.t < stop]
    hit = sum(c.hit for c in after) / max(1, len(after))
    notes = f"{incident.notes}; {len(calls):,} calls" + (f", {hit:.0%} of those after the start in the changed segment" if incident.effects else "")
    return LabelledScenario(
        name=f"w3-{kind}-{seed}-{index}", kind=kind, world=WORLD, service=None, start=start, end=end,
        incident_start=None if kind == CONTROL else datetime.fromtimestamp(t0 / NS, tz=UTC), signals=incident.signals, causes=causes,
        writer=functools.partial(write, world), notes=notes, detail=incident.probe,
    )  # fmt: skip


def scenarios(seed: int = 0, *, per_kind: int = 2, end: datetime | None = None) -> list[LabelledScenario]:
    """`per_kind` scenarios of every kind (controls included), each with its own window ending at `end` (default: this minute)."""
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    return [scenario(kind, seed, i, end) for kind in KINDS for i in range(per_kind)]
