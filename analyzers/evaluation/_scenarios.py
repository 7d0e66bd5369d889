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

`labelled()` generates the incident kinds the on-call report is scored on (the same kinds as
world 2, written here with columnar inserts instead of spans): besides quality causes, 429
storms, a buffering proxy, early-cancelling clients, broken structured output, an ASR deploy, a
tenant surge and controls, with background 429s/5xx, cancellations, judged subsets and
rolling deploys. Its extra columns come from their own draws after the original ones, so
`generate()` produces the same scenarios as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from driftline.analyzers._sql import render

from ._labels import CONTROL, LabelledScenario
from ._labels import Label as LabelSet

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["BUCKET", "CAUSES", "REPORT_KINDS", "Scenario", "generate", "labelled", "write"]

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


def _null_unless(keep: np.ndarray, values: Any) -> np.ndarray:
    """`values` (an array, or one value for every row) as an object column, None (NULL) where not `keep`."""
    out = np.empty(len(keep), dtype=object)
    out[:] = values
    out[~np.asarray(keep, dtype=bool)] = None
    return out


def _world(rng: np.random.Generator, start: datetime, per_minute: float, surge: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """Calls of a healthy app: traffic swinging over the day, per-route models and prompts.

    `surge` (first minute, last minute, multiplier) scales the traffic for a while, drawing no
    extra random numbers (so scenarios without one stay as they were)."""
    minutes = HOURS * 60
    phase = rng.uniform(0, 2 * math.pi)
    rate = per_minute * (1 + 0.6 * np.sin(2 * math.pi * np.arange(minutes) / (24 * 60) * 2 + phase))
    if surge is not None:
        rate[int(surge[0]) : int(surge[1])] *= surge[2]
    counts = rng.poisson(np.clip(rate, 1, None))
    offsets = np.repeat(np.arange(minutes) * 60.0, counts) + rng.uniform(0, 60, counts.sum())
    n = len(offsets)
    route = rng.choice(ROUTES, n, p=ROUTE_P)
    tenant = rng.choice(TENANTS, n, p=TENANT_P / TENANT_P.sum())
    c: dict[str, Any] = {"t": np.sort(offsets), "route": route, "tenant": tenant}
    for i, col in enumerate(("provider", "request_model", "response_model", "system_fingerprint")):
        c[col] = np.array([MODELS[r][i] for r in route], dtype=object)
    c["system_fingerprint"] = _null_unless(c["system_fingerprint"] != "", c["system_fingerprint"])
    c["prompt_version"] = np.full(n, "v3", dtype=object)
    c["index_version"] = _null_unless(route != "/summarize", "idx-2026-09-01")
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


def _outcomes(rng: np.random.Generator, c: dict[str, Any], noise: float = 0.1) -> None:
    """Scores, errors and latencies drawn from the per-call parameters."""
    n = len(c["t"])
    c["score"] = np.clip(c["quality"] + rng.normal(0, noise, n), 0, 1)
    c["error"] = rng.random(n) < c["error_p"]
    c["duration"] = c["latency"] * rng.lognormal(0, 0.35, n)


_CODED = ("route", "tenant", "provider", "request_model", "response_model", "system_fingerprint", "prompt_version",
          "index_version", "service_version")  # fmt: skip
"""String columns shipped as small integer codes into vocabularies; SQL maps them back."""
_EXTRA_CODED = ("error_type", "validation")
"""Coded columns only the report scenarios generate (absent: NULL)."""
_EXTRA_NUMBERS: dict[str, tuple[str, float]] = {
    "ttft": ("float64", math.nan), "stream": ("int8", -1), "cancelled": ("uint8", 0), "delivered": ("int64", -1),
    "after_cancel": ("int64", -1), "in_tokens": ("int64", -1), "out_tokens": ("int64", -1), "cost": ("float64", math.nan),
    "http_status": ("uint16", 0), "rate_limited": ("uint8", 0), "judged": ("uint8", 1),
}  # fmt: skip
"""Numeric columns only the report scenarios generate: numpy type and the value that means NULL (judged: every call)."""


def write(store: Store, scenarios: list[Scenario]) -> None:
    """Insert the scenarios' calls, scores and changes (each scenario is its own service).

    The calls travel as numbers (codes into per-column vocabularies) into a scratch table,
    and one INSERT ... SELECT turns them into llm_calls and llm_scores rows: fast enough for
    a million calls in a few seconds.
    """
    vocab: dict[str, list[str | None]] = {c: [None] for c in (*_CODED, *_EXTRA_CODED)}
    names = ("scenario", "t_ns", "seq", *_CODED, "confidence", "duration", "error", "score", *_EXTRA_CODED, *_EXTRA_NUMBERS)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in names}
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
        for name in _EXTRA_CODED:
            columns[name].append(_codes(c[name], vocab[name]) if name in c else np.ones(n, dtype=np.uint16))
        for name, (dtype, null) in _EXTRA_NUMBERS.items():
            columns[name].append(np.asarray(c[name]).astype(dtype) if name in c else np.full(n, null, dtype=dtype))
    store.command(render("scenario_raw_create"))
    try:
        store.insert("scenario_raw", cast(list[Sequence[Any]], [np.concatenate(v) for v in columns.values()]), list(columns))
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


# ---------------------------------------------------------------------------------------------
# Report scenarios: the incident kinds the on-call report must get right, as LabelledScenarios
# ---------------------------------------------------------------------------------------------

WORLD = "world1"
QUALITY = f"quality:{EVALUATION}"
TTFT = ("ttft_p50", "ttft_p95", "ttft_p99")
STREAMING = ("/chat/answer", "/summarize")
VALIDATED = ("/search", "/summarize")
"""Routes whose answers are JSON checked against a schema."""
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "claude-sonnet": (3.0, 15.0), "gpt-4.1-mini": (0.4, 1.6), "claude-haiku": (0.8, 4.0)}
"""USD per million input, output tokens, by request model."""
NEW_VERSION = "1.5.0"
REPORT_KINDS = (
    "silent_snapshot_swap", "prompt_regression", "index_rebuild", "asr_deploy_confidence", "provider_429_storm",
    "buffering_proxy", "tenant_mix_shift", "early_cancel_client", "structured_output_break", CONTROL,
)  # fmt: skip


@dataclass(frozen=True)
class _Truth:
    """What a report cause injected: signals it moves, correct suspects, notes, and what harmless changes must avoid."""

    signals: tuple[str, ...]
    causes: tuple[LabelSet, ...]
    notes: str
    avoid: frozenset[str] = frozenset()
    start: float | None = None
    """Seconds from the window start the incident began, when not the drawn time."""


ReportCause = Callable[[np.random.Generator, dict[str, Any], float, list[Any]], _Truth]


def _init_extras(c: dict[str, Any]) -> None:
    """Per-call parameters of the report columns, at their healthy values (no random draws)."""
    n = len(c["t"])
    stream = np.isin(c["route"], STREAMING)
    c["p429"] = np.full(n, 0.003)
    c["ttft_mult"] = np.ones(n)
    c["cancel_p"] = np.where(stream, 0.03, 0.0)
    c["tail_p"] = np.zeros(n)
    c["val_fail"] = np.zeros(n)


def _with_routes(labels: list[tuple[str, str]], routes: Sequence[str]) -> tuple[LabelSet, ...]:
    """Each label alone, and each with one of the routes it hit (a narrower, equally right suspect);
    a route's healthy models select the same calls as the route here, so they stand in for it."""
    narrower = [frozenset({lab, alias}) for lab in labels for r in routes for alias in _route_aliases(r) if alias[1] and alias[0] != lab[0]]
    return tuple([frozenset({lab}) for lab in labels] + narrower)


def _rollout(rng: np.random.Generator, c: dict[str, Any], at: float, version: str) -> np.ndarray:
    """A deploy rolling out over 20-60 minutes from 10% of calls to all; returns the calls on it."""
    share = np.clip(0.1 + 0.9 * (c["t"] - at) / rng.uniform(1200, 3600), 0, 1)
    new = _after(c, at) & (rng.random(len(share)) < share)
    c["service_version"][new] = version
    return new


def snapshot_swap(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """The provider moves an alias to a new snapshot on one route, unannotated; answers get a little worse."""
    route = str(rng.choice(ROUTES))
    _, request, _, fingerprint = MODELS[route]
    hit = _after(c, at) & (c["route"] == route)
    snapshot, fp = f"{request}-2026-10-upd", ("fp_new7" if fingerprint else None)
    c["response_model"][hit], c["system_fingerprint"][hit] = snapshot, fp
    dq = rng.uniform(0.05, 0.15)
    c["quality"][hit] -= dq
    labels = [("response_model", snapshot)] + ([("system_fingerprint", fp)] if fp else [])
    return _Truth((QUALITY,), _with_routes(labels, [route]), f"{request} -> {snapshot} on {route}, dq -{dq:.3f}", frozenset({f"fp:{route}"}))


def prompt_regression(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """An annotated prompt publish on one route that answers worse."""
    route = str(rng.choice(ROUTES))
    hit = _after(c, at) & (c["route"] == route)
    c["prompt_version"][hit] = "v4"
    dq = rng.uniform(0.05, 0.15)
    c["quality"][hit] -= dq
    changes.append((at, "prompt", route, "v4", "tighter instructions"))
    return _Truth((QUALITY,), _with_routes([("prompt_version", "v4")], [route]), f"prompt v4 on {route}, dq -{dq:.3f}", frozenset({f"prompt:{route}"}))


def stale_index(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """The index is rebuilt from stale documents: a share of retrievals miss and those answers are worse."""
    hit = _after(c, at) & (c["index_version"] != None)  # noqa: E711 (numpy: elementwise)
    c["index_version"][hit] = "idx-2026-10-stale"
    miss, loss = rng.uniform(0.3, 0.6), rng.uniform(0.12, 0.25)
    c["quality"][hit & (rng.random(len(hit)) < miss)] -= loss
    if rng.random() < 0.5:
        changes.append((at, "index", "kb-docs", "idx-2026-10-stale", "nightly rebuild"))
    routes = [r for r in ROUTES if r != "/summarize"]
    return _Truth((QUALITY,), _with_routes([("index_version", "idx-2026-10-stale")], routes), f"stale index, {miss:.0%} miss by {loss:.2f}", frozenset({"index"}))


def asr_deploy(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """A deploy switches the ASR engine: voice inputs' confidence drops, more are low, those answer worse."""
    new = _rollout(rng, c, at, NEW_VERSION) & ~np.isnan(c["confidence_mean"])
    was_low = c["confidence_mean"] < 0.6
    shift = rng.uniform(0.08, 0.15)
    c["confidence_mean"][new] = np.clip(c["confidence_mean"][new] - shift, 0.05, 1)
    c["quality"][(c["confidence_mean"] < 0.6) & ~was_low] -= 0.25
    changes.append((at, "deploy", "support-bot", NEW_VERSION, "switch ASR to streaming endpoint"))
    causes = (frozenset({("service_version", NEW_VERSION)}), frozenset({("input_confidence", "low")}),
              frozenset({("service_version", NEW_VERSION), ("input_confidence", "low")}))  # fmt: skip
    return _Truth(("low_confidence_share", "input_confidence", QUALITY), causes, f"ASR confidence -{shift:.3f} on {NEW_VERSION}", frozenset({"deploy"}))


def rate_limit_storm(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """One provider (or one of its models) answers 10-40% of calls with 429 for 20-60 minutes, maybe still going."""
    route = str(rng.choice(ROUTES))
    provider, request, _, _ = MODELS[route]
    minutes, p = rng.uniform(20, 60), rng.uniform(0.1, 0.4)
    if rng.random() < 0.5:  # still going at the end of the window
        at = HOURS * 3600 - minutes * 60 * rng.uniform(0.7, 1.0)
    hit = (c["t"] >= at) & (c["t"] < at + minutes * 60) & (c["route"] == route)
    c["error_p"][hit] += p
    c["p429"][hit] += p
    labels = [("request_model", request), ("route", route)] + ([("provider", provider)] if provider == "anthropic" else [])
    causes = tuple(frozenset({lab}) for lab in labels) + (frozenset({("request_model", request), ("route", route)}),)
    return _Truth(("rate_limit_rate", "error_rate"), causes, f"{provider}/{request} 429s {p:.0%} for {minutes:.0f} min", start=at)


def buffering_proxy(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """A deploy brings a proxy that buffers streams: time to first token 2-4x, total duration unchanged."""
    new = _rollout(rng, c, at, NEW_VERSION)
    factor = rng.uniform(2, 4)
    c["ttft_mult"][new] = factor
    changes.append((at, "deploy", "support-bot", NEW_VERSION, "envoy sidecar upgrade"))
    causes = _with_routes([("service_version", NEW_VERSION)], STREAMING)
    return _Truth(TTFT, causes, f"{NEW_VERSION} buffers streams, ttft x{factor:.2f}", frozenset({"deploy"}))


def tenant_surge(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """A tenant with hard documents (always scoring lower) grows to 30-45% of traffic; nobody got worse."""
    tenant = str(rng.choice(["umbrella", "hooli", "stark"]))
    share = float(np.mean(c["tenant"] == tenant))
    end = HOURS * 3600 if rng.random() < 0.7 else at + rng.uniform(1800, 7200)
    window = (c["t"] >= at) & (c["t"] < end)
    moved = window & (rng.random(len(window)) < (rng.uniform(0.3, 0.45) - share) / (1 - share))
    c["tenant"][moved] = tenant
    offset = rng.uniform(0.12, 0.2)
    c["quality"][c["tenant"] == tenant] -= offset
    return _Truth((QUALITY,), (frozenset({("tenant", tenant)}),), f"tenant {tenant} ({share:.0%}, -{offset:.2f}) grows")


def early_cancel(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """A client deploy aborts streams early and leaves the upstream request open: tokens after cancel pile up."""
    new = _rollout(rng, c, at, NEW_VERSION) & np.isin(c["route"], STREAMING)
    p = rng.uniform(0.15, 0.35)
    c["cancel_p"][new], c["tail_p"][new] = p, 0.7
    changes.append((at, "deploy", "support-bot", NEW_VERSION, "abort stream on tab switch"))
    causes = _with_routes([("service_version", NEW_VERSION)], STREAMING)
    return _Truth(("cancellation_tax", "cancellation_cost"), causes, f"{NEW_VERSION} cancels {p:.0%} of streams", frozenset({"deploy"}))


def structured_output_break(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """A model or prompt change on one JSON route: 6-18% more outputs fail validation."""
    route = str(rng.choice(VALIDATED))
    hit = _after(c, at) & (c["route"] == route)
    fail = rng.uniform(0.06, 0.18)
    c["val_fail"][hit] = fail
    if rng.random() < 0.5:
        model = {"/search": ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "fp_z9"), "/summarize": ("claude-haiku", "claude-3-5-haiku-20241022", None)}[route]
        c["request_model"][hit], c["response_model"][hit], c["system_fingerprint"][hit] = model
        changes.append((at, "model", route, model[0], "cheaper model"))
        labels = [("request_model", model[0]), ("response_model", model[1])] + ([("system_fingerprint", model[2])] if model[2] else [])
        return _Truth(("validation_failure_rate",), _with_routes(labels, [route]), f"model {model[0]} on {route}, +{fail:.0%} invalid", frozenset({f"fp:{route}"}))
    c["prompt_version"][hit] = "v4"
    changes.append((at, "prompt", route, "v4", "new output fields"))
    return _Truth(("validation_failure_rate",), _with_routes([("prompt_version", "v4")], [route]), f"prompt v4 on {route}, +{fail:.0%} invalid", frozenset({f"prompt:{route}"}))


def control(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any]) -> _Truth:
    """No incident: only harmless changes (and, in some, a traffic surge set up by the caller)."""
    return _Truth((), (), "no incident")


REPORT_CAUSES: dict[str, ReportCause] = {
    "silent_snapshot_swap": snapshot_swap, "prompt_regression": prompt_regression, "index_rebuild": stale_index,
    "asr_deploy_confidence": asr_deploy, "provider_429_storm": rate_limit_storm, "buffering_proxy": buffering_proxy,
    "tenant_mix_shift": tenant_surge, "early_cancel_client": early_cancel, "structured_output_break": structured_output_break,
    CONTROL: control,
}  # fmt: skip


def _harmless(rng: np.random.Generator, c: dict[str, Any], at: float, changes: list[Any], avoid: set[str]) -> None:
    """One ordinary change at `at` that hurts nothing (a deploy, a neutral prompt, a fingerprint rotation, a rebuild)."""
    options = [o for o in ("deploy", "prompt:/summarize", "prompt:/search", "fp:/search", "index") if o not in avoid]
    if not options:
        return
    option = str(rng.choice(options))
    avoid.add(option)
    if option == "deploy":
        _rollout(rng, c, at, "1.4.1")
        changes.append((at, "deploy", "support-bot", "1.4.1", "routine deploy"))
    elif option.startswith("prompt:"):
        hit = _after(c, at) & (c["route"] == option[7:])
        c["prompt_version"][hit] = "v3.1"
        c["quality"][hit] += rng.uniform(-0.01, 0.01)
        changes.append((at, "prompt", option[7:], "v3.1", "tone tweak"))
    elif option == "fp:/search":
        c["system_fingerprint"][_after(c, at) & (c["system_fingerprint"] == "fp_m1")] = "fp_m2"
    else:
        c["index_version"][_after(c, at) & (c["index_version"] == "idx-2026-09-01")] = "idx-2026-10-02"
        changes.append((at, "index", "kb-docs", "idx-2026-10-02", "nightly rebuild"))


def _extras(rng: np.random.Generator, c: dict[str, Any]) -> None:
    """The report columns drawn from their per-call parameters: 429s and 5xx, streams, TTFT, cancels, tokens, cost, validation, judging."""
    n = len(c["t"])
    err = c["error"]
    limited = err & (rng.random(n) < c["p429"] / c["error_p"])
    other = rng.choice([500, 503, 0], n, p=[0.5, 0.3, 0.2])
    c["rate_limited"], c["http_status"] = limited, np.where(limited, 429, np.where(err, other, 0))
    kind = np.where(limited, "RateLimitError", np.where(other == 0, "APITimeoutError", "InternalServerError"))
    c["error_type"] = _null_unless(err, np.char.add(np.char.add(c["provider"].astype(str), "."), kind))
    c["response_model"][err], c["system_fingerprint"][err] = None, None
    stream = np.isin(c["route"], STREAMING)
    c["stream"] = stream.astype(np.int8)
    c["ttft"] = np.where(stream & ~err, np.minimum(0.22 * rng.lognormal(0, 0.3, n) * c["ttft_mult"], 0.95 * c["duration"]), np.nan)
    _tokens(rng, c, stream & ~err & (rng.random(n) < c["cancel_p"]))
    _validation(rng, c)
    valid = (c["validation"] == None) | (c["validation"] == "ok")  # noqa: E711 (numpy: elementwise)
    c["judged"] = ~err & ~c["cancelled"] & valid & (rng.random(n) < 0.5)


def _tokens(rng: np.random.Generator, c: dict[str, Any], cancelled: np.ndarray) -> None:
    """Tokens and cost; cancelled streams stop early and are billed for what the provider generated after the cancel."""
    n = len(cancelled)
    c["in_tokens"] = np.maximum(50, rng.lognormal(np.log(1500), 0.5, n)).astype(np.int64)
    out = np.maximum(5, rng.lognormal(np.log(300), 0.45, n)).astype(np.int64)
    frac = rng.uniform(0.05, 0.9, n)
    delivered = (out * frac).astype(np.int64)
    tail = np.where(rng.random(n) < c["tail_p"], out - delivered, np.minimum(out - delivered, rng.lognormal(np.log(30), 0.6, n).astype(np.int64)))
    c["cancelled"] = cancelled
    c["delivered"], c["after_cancel"] = np.where(cancelled, delivered, -1), np.where(cancelled, tail, -1)
    c["out_tokens"] = np.where(cancelled, delivered + tail, out)
    c["duration"] = np.where(cancelled, np.nan_to_num(c["ttft"]) + (c["duration"] - np.nan_to_num(c["ttft"])) * frac, c["duration"])
    price = np.array([PRICES[m] for m in c["request_model"]])
    cost = (c["in_tokens"] * price[:, 0] + c["out_tokens"] * price[:, 1]) / 1e6
    c["cost"] = np.where(c["error"], np.nan, cost)


def _validation(rng: np.random.Generator, c: dict[str, Any]) -> None:
    """Outcome of the schema check on JSON routes: about 2% fail normally, more where a change broke it."""
    n = len(c["t"])
    checked = np.isin(c["route"], VALIDATED) & ~c["error"] & ~c["cancelled"]
    u, extra = rng.random(n), c["val_fail"]
    outcome = np.select([u < 0.006 + 0.4 * extra, u < 0.014 + extra, u < 0.019 + extra], ["parse_error", "schema_error", "semantic_error"], "ok")
    c["validation"] = _null_unless(checked, outcome)


def _control_surge(rng: np.random.Generator, i: int) -> tuple[tuple[float, float, float] | None, int, str]:
    """Control variants by index: plain (two harmless changes), busy (five), surge (traffic x1.8-3 for 40-90 min)."""
    variant = ("plain", "busy", "surge")[i % 3]
    if variant != "surge":
        return None, 2 if variant == "plain" else 5, variant
    first = rng.uniform(5, 10) * 60
    return (first, first + rng.uniform(40, 90), rng.uniform(1.8, 3.0)), 1, variant


def _report_scenario(kind: str, i: int, seed: int, day: int, per_minute: float) -> LabelledScenario:
    """One world-1 scenario of `kind`, reproducible from (seed, kind, i), as a LabelledScenario."""
    rng = np.random.default_rng([seed, REPORT_KINDS.index(kind), i])
    name, start = f"w1-{kind}-{i}", EPOCH + timedelta(days=day)
    surge, harmless, variant = _control_surge(rng, i) if kind == CONTROL else (None, int(rng.integers(2, 4)), "")
    at = float(rng.uniform(6.5, 9.5) * 3600)
    calls = _world(rng, start, per_minute, surge)
    _init_extras(calls)
    changes: list[tuple[float, str, str, str, str]] = []
    truth = REPORT_CAUSES[kind](rng, calls, at, changes)
    avoid = set(truth.avoid)
    for k in range(harmless):
        near = k == 0 and variant != "plain"
        when = at + rng.choice([-1, 1]) * rng.uniform(480, 1800) if near else rng.uniform(1500, HOURS * 3600 - 720)
        _harmless(rng, calls, float(when), changes, avoid)
    _outcomes(rng, calls, noise=0.12)
    _extras(rng, calls)
    began = None if kind == CONTROL else start + timedelta(seconds=truth.start if truth.start is not None else at)
    scenario = Scenario(name=name, cause=kind, signal=truth.signals[0] if truth.signals else QUALITY, start=start,
                        end=start + timedelta(hours=HOURS), incident_start=began, truth=(), calls=calls,
                        changes=[(start + timedelta(seconds=t), k, tg, v, d) for t, k, tg, v, d in changes])  # fmt: skip
    return LabelledScenario(name=name, kind=kind, world=WORLD, service=scenario.service, start=scenario.start, end=scenario.end,
                            incident_start=began, signals=truth.signals, causes=truth.causes, writer=partial(_write_one, scenario),
                            notes=truth.notes + (f" ({variant})" if variant else ""), detail=scenario)  # fmt: skip


def _write_one(scenario: Scenario, store: Store) -> int:
    write(store, [scenario])
    return len(scenario.calls["t"])


def labelled(seed: int = 0, *, per_kind: int = 2, per_minute: float = 20.0) -> list[LabelledScenario]:
    """World 1's report scenarios: `per_kind` of each incident kind, max(3, per_kind + 1) controls.

    Each scenario is its own service (its name) over its own 12 hours; write each into its own store.
    """
    kinds = [(kind, i) for kind in REPORT_KINDS for i in range(max(3, per_kind + 1) if kind == CONTROL else per_kind)]
    return [_report_scenario(kind, i, seed, day, per_minute) for day, (kind, i) in enumerate(kinds)]
