"""Labelled incident scenarios for evaluating detection and attribution, generated fast.

Each scenario is an LLM app's calls over 12 hours (daily traffic swing, several routes,
tenants, models, prompts, indexes, ASR input) with one injected cause from a known time on,
written straight into llm_calls / llm_scores / changes with columnar inserts (the
materialized first_seen table fills as in production). Causes cover every type attribution
must tell apart — model change, silent provider update, prompt edit, index rebuild,
low-confidence ASR, mix shift, two-dimensional causes — and come with red herrings
(harmless changes annotated at the same time), a tiny tenant that always scores badly, and
scenarios without any incident. The labels say which (dimension, value) sets are the cause;
values that always appear together with the cause (a new model's response model and
fingerprint) are equally correct.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.analyzers._sql import render

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["BUCKET", "CAUSES", "Scenario", "generate", "write"]

BUCKET = timedelta(minutes=10)
HOURS = 12
EPOCH = datetime(2026, 10, 1, tzinfo=UTC)
EVALUATION = "faithfulness"
Label = tuple[tuple[str, str], ...]

ROUTES = np.array(["/chat/answer", "/search", "/summarize"])
ROUTE_P = np.array([0.5, 0.3, 0.2])
TENANTS = np.array(["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tiny"])
TENANT_P = np.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.0498, 0.0002])
ROUTE_QUALITY = {"/chat/answer": 0.84, "/search": 0.80, "/summarize": 0.88}
MODELS = {  # route -> (provider, request model, response model, fingerprint)
    "/chat/answer": ("openai", "gpt-4o", "gpt-4o-2024-08-06", "fp_a1"),
    "/search": ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fp_m1"),
    "/summarize": ("anthropic", "claude-sonnet", "claude-sonnet-20250514", ""),
}


@dataclass
class Scenario:
    """One generated incident (or none): its data, what caused it, and when it started."""

    name: str
    cause: str
    signal: str
    start: datetime
    end: datetime
    incident_start: datetime | None
    truth: tuple[Label, ...]
    calls: dict[str, Any] = field(repr=False, default_factory=dict)
    changes: list[tuple[datetime, str, str, str, str]] = field(repr=False, default_factory=list)

    @property
    def service(self) -> str:
        return self.name


def _world(rng: np.random.Generator, start: datetime, per_minute: float) -> dict[str, Any]:
    """Calls of a healthy app: traffic swinging over the day, per-route models and prompts."""
    minutes = HOURS * 60
    phase = rng.uniform(0, 2 * math.pi)
    rate = per_minute * (1 + 0.6 * np.sin(2 * math.pi * np.arange(minutes) / (24 * 60) * 2 + phase))
    counts = rng.poisson(np.clip(rate, 1, None))
    offsets = np.repeat(np.arange(minutes) * 60.0, counts) + rng.uniform(0, 60, counts.sum())
    n = len(offsets)
    route = rng.choice(ROUTES, n, p=ROUTE_P)
    tenant = rng.choice(TENANTS, n, p=TENANT_P / TENANT_P.sum())
    c: dict[str, Any] = {"t": np.sort(offsets), "route": route, "tenant": tenant}
    for i, col in enumerate(("provider", "request_model", "response_model", "system_fingerprint")):
        c[col] = np.array([MODELS[r][i] for r in route], dtype=object)
    c["system_fingerprint"] = np.where(c["system_fingerprint"] == "", None, c["system_fingerprint"])
    c["prompt_version"] = np.full(n, "v3", dtype=object)
    c["index_version"] = np.where(route == "/summarize", None, "idx-2026-09-01").astype(object)
    voice = rng.random(n) < 0.3
    c["confidence_mean"] = np.where(voice, np.clip(rng.beta(10, 2, n), 0, 1), np.nan)
    c["service_version"] = np.full(n, "1.4.0", dtype=object)
    tenant_offset = {t: o for t, o in zip(TENANTS, (0, 0.02, -0.02, 0.01, -0.01, 0.0, 0.01, -0.5))}
    quality = np.array([ROUTE_QUALITY[r] for r in route]) + np.array([tenant_offset[t] for t in tenant])
    low = np.nan_to_num(c["confidence_mean"], nan=1.0) < 0.6
    c["quality"] = quality - 0.25 * low
    c["error_p"] = np.full(n, 0.01)
    c["latency"] = np.full(n, 1.2)
    return c


def _after(c: dict[str, Any], at: float) -> np.ndarray:
    return c["t"] >= at


Cause = Callable[[np.random.Generator, dict[str, Any], float, list[Any]], tuple[tuple[Label, ...], str]]
"""Edits a world's calls from `at` (seconds) on, appends its annotations; returns labels and signal kind."""


def _route_aliases(route: str) -> list[tuple[str, str]]:
    """The (dimension, value)s that select exactly the calls of `route` in a healthy world."""
    _, request, response, fingerprint = MODELS[route]
    return [("route", route), ("request_model", request), ("response_model", response), ("system_fingerprint", fingerprint)]


def _route(rng: np.random.Generator) -> str:
    return str(rng.choice(ROUTES[:2]))


def model_change(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """An annotated switch of the requested model on one route; the new model answers worse."""
    route = _route(rng)
    hit = _after(c, at) & (c["route"] == route)
    c["request_model"][hit], c["response_model"][hit], c["system_fingerprint"][hit] = "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "fp_z9"
    c["quality"][hit] -= rng.uniform(0.12, 0.2)
    changes.append((at, "model", route, "gpt-4.1-mini", "cheaper model"))
    return ((("request_model", "gpt-4.1-mini"),), (("response_model", "gpt-4.1-mini-2025-04-14"),), (("system_fingerprint", "fp_z9"),)), "quality"


def silent_update(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """The provider swaps the model behind an alias (new response model and fingerprint), nothing annotated."""
    route = _route(rng)
    hit = _after(c, at) & (c["route"] == route)
    new_model = c["response_model"][hit][0] + "-upd" if hit.any() else "x"
    c["response_model"][hit], c["system_fingerprint"][hit] = new_model, "fp_new7"
    signal = "quality" if rng.random() < 0.7 else "errors"
    if signal == "quality":
        c["quality"][hit] -= rng.uniform(0.12, 0.2)
    else:
        c["error_p"][hit] = 0.08
    return ((("response_model", new_model),), (("system_fingerprint", "fp_new7"),)), signal


def prompt_edit(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """A new prompt version on one route, annotated; it answers worse."""
    route = _route(rng)
    hit = _after(c, at) & (c["route"] == route)
    c["prompt_version"][hit] = "v4"
    c["quality"][hit] -= rng.uniform(0.12, 0.2)
    changes.append((at, "prompt", route, "v4", "shorter answers"))
    return ((("prompt_version", "v4"),),), "quality"


def index_rebuild(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """The retrieval index rebuilt from stale documents: every retrieving route gets worse."""
    hit = _after(c, at) & (c["index_version"] != None)  # noqa: E711 (numpy: elementwise)
    c["index_version"][hit] = "idx-2026-10-stale"
    c["quality"][hit] -= rng.uniform(0.1, 0.16)
    changes.append((at, "index", "kb-docs", "idx-2026-10-stale", "nightly rebuild"))
    return ((("index_version", "idx-2026-10-stale"),),), "quality"


def low_confidence(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """An ASR engine update: many more voice inputs are low-confidence, and those answers are worse."""
    voice = _after(c, at) & ~np.isnan(c["confidence_mean"])
    worse = voice & (rng.random(len(voice)) < 0.7)
    c["confidence_mean"][worse] = rng.uniform(0.3, 0.58, worse.sum())
    c["quality"][worse] -= 0.25
    return ((("input_confidence", "low"),),), "quality"


def mix_shift(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """No one got worse: a tenant with weaker answers grows to most of the traffic (Simpson)."""
    after = _after(c, at)
    moved = after & (rng.random(len(after)) < 0.55)
    c["tenant"][moved] = "initech"
    c["quality"][c["tenant"] == "initech"] -= 0.12
    return ((("tenant", "initech"),),), "quality"


def two_dimensional(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """A prompt version rolled out everywhere that breaks only one route."""
    route = _route(rng)
    after = _after(c, at)
    c["prompt_version"][after] = "v5"
    c["quality"][after & (c["route"] == route)] -= rng.uniform(0.15, 0.22)
    changes.append((at, "prompt", "all", "v5", "new system prompt"))
    return tuple((("prompt_version", "v5"), alias) for alias in _route_aliases(route)), "quality"


def latency_model(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """A provider-side update on one route makes it much slower (p95 latency)."""
    route = _route(rng)
    hit = _after(c, at) & (c["route"] == route)
    c["response_model"][hit], c["system_fingerprint"][hit] = "gpt-4o-2024-11-20", "fp_slow"
    c["latency"][hit] = 3.5
    return ((("response_model", "gpt-4o-2024-11-20"),), (("system_fingerprint", "fp_slow"),)), "latency"


def no_incident(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> tuple[tuple[Label, ...], str]:
    """Nothing breaks; only harmless changes happen."""
    return (), "quality"


CAUSES: dict[str, Cause] = {
    "model_change": model_change, "silent_update": silent_update, "prompt_edit": prompt_edit,
    "index_rebuild": index_rebuild, "low_confidence": low_confidence, "mix_shift": mix_shift,
    "two_dimensional": two_dimensional, "latency_update": latency_model, "none": no_incident,
}  # fmt: skip
SIGNALS = {"quality": f"quality:{EVALUATION}", "errors": "error_rate", "latency": "latency_p95"}


def _red_herrings(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> None:
    """Harmless changes around the same time: a deploy everywhere, a prompt edit on /summarize."""
    after = _after(c, at + rng.uniform(-600, 600))
    c["service_version"][after] = "1.5.0"
    changes.append((at, "deploy", "support-bot", "1.5.0", "routine deploy"))
    if rng.random() < 0.5:
        summ = _after(c, at) & (c["route"] == "/summarize")
        c["prompt_version"][summ] = "v9"
        changes.append((at, "prompt", "/summarize", "v9", "tone tweak"))


def generate(count: int = 54, *, seed: int = 7, per_minute: float = 30.0, causes: Sequence[str] | None = None) -> list[Scenario]:
    """`count` scenarios cycling through `causes` (default every cause, and the no-incident
    case), reproducible by seed; `per_minute` is the mean traffic."""
    rng = np.random.default_rng(seed)
    names = list(causes or CAUSES)
    out = []
    for i in range(count):
        cause = names[i % len(names)]
        start = EPOCH + timedelta(days=i)
        at = float(rng.uniform(6.5, 9.5) * 3600)
        world = _world(rng, start, per_minute)
        changes: list[tuple[float, str, str, str, str]] = []
        truth, kind = CAUSES[cause](rng, world, at, changes)
        _red_herrings(rng, world, at, changes)
        _outcomes(rng, world)
        out.append(Scenario(
            name=f"scn{i:02d}_{cause}", cause=cause, signal=SIGNALS[kind], start=start, end=start + timedelta(hours=HOURS),
            incident_start=None if cause == "none" else start + timedelta(seconds=at), truth=truth, calls=world,
            changes=[(start + timedelta(seconds=t), k, tg, v, d) for t, k, tg, v, d in changes],
        ))  # fmt: skip
    return out


def _outcomes(rng: np.random.Generator, c: dict[str, Any]) -> None:
    """Scores, errors and latencies drawn from the per-call parameters."""
    n = len(c["t"])
    c["score"] = np.clip(c["quality"] + rng.normal(0, 0.1, n), 0, 1)
    c["error"] = rng.random(n) < c["error_p"]
    c["duration"] = c["latency"] * rng.lognormal(0, 0.35, n)


_CODED = ("route", "tenant", "provider", "request_model", "response_model", "system_fingerprint", "prompt_version",
          "index_version", "service_version")  # fmt: skip
"""String columns shipped as small integer codes into vocabularies; SQL maps them back."""


def write(store: Store, scenarios: list[Scenario]) -> None:
    """Insert the scenarios' calls, scores and changes (each scenario is its own service).

    The calls travel as numbers (codes into per-column vocabularies) into a scratch table,
    and one INSERT ... SELECT turns them into llm_calls and llm_scores rows: fast enough for
    a million calls in a few seconds.
    """
    vocab: dict[str, list[str | None]] = {c: [None] for c in _CODED}
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("scenario", "t_ns", "seq", *_CODED, "confidence", "duration", "error", "score")}
    for i, s in enumerate(scenarios):
        c = s.calls
        n = len(c["t"])
        columns["scenario"].append(np.full(n, i, dtype=np.uint16))
        columns["t_ns"].append(int(s.start.timestamp()) * 10**9 + (c["t"] * 1e9).astype(np.int64))
        columns["seq"].append(np.arange(n, dtype=np.uint32))
        for name in _CODED:
            columns[name].append(_codes(c[name], vocab[name]))
        columns["confidence"].append(c["confidence_mean"].astype(np.float64))
        columns["duration"].append(c["duration"].astype(np.float64))
        columns["error"].append(c["error"].astype(np.uint8))
        columns["score"].append(c["score"].astype(np.float64))
    store.command(render("scenario_raw_create"))
    try:
        store.insert("scenario_raw", [np.concatenate(v) for v in columns.values()], list(columns))
        params = {f"{name}_vocab": values for name, values in vocab.items()} | {"services": [s.service for s in scenarios]}
        store.command(render("scenario_calls_insert"), params)
        store.command(render("scenario_scores_insert"), params | {"evaluation": EVALUATION})
    finally:
        store.command("DROP TABLE IF EXISTS scenario_raw")
    rows = [(t, k, tg, v, d, s.service) for s in scenarios for t, k, tg, v, d in s.changes]
    if rows:
        store.insert("changes", [list(col) for col in zip(*rows)], ["time", "kind", "target", "version", "description", "service"])


def _codes(values: np.ndarray, vocabulary: list[str | None]) -> np.ndarray:
    """1-based codes of `values` in `vocabulary` (extended as needed; None is code 1)."""
    index = {v: i for i, v in enumerate(vocabulary)}
    out = np.empty(len(values), dtype=np.uint16)
    for i, v in enumerate(values):
        key = None if v is None else str(v)
        if key not in index:
            index[key] = len(vocabulary)
            vocabulary.append(key)
        out[i] = index[key] + 1
    return out
