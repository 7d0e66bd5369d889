"""The moments change-anchored detection tests at: each value of a change-bearing dimension first
seen inside the window (a new model, snapshot, fingerprint, prompt, index or service version),
and the routes its calls reached from then on.

Such a moment is known before any signal is looked at, so a test there has a plain normal null,
unlike the search for the worst split, which noise alone drives to z ~4 (see `_detect`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._model import Filters, Window
from ._signals import filter_sql, utc
from ._sql import quote_identifier, render

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["Anchor", "anchors", "pooled", "segment_alias", "segment_columns"]

PARTIAL = 0.8
"""A new value on under this share of its route's calls in its first hour reached part of it."""
REACH = timedelta(hours=1)
"""The routes a new value reached are read from its first hour (a route it came to later has a moment of its own)."""

CHANGE_DIMENSIONS = ("request_model", "response_model", "system_fingerprint", "prompt_version", "index_version", "service_version")
"""The first_seen table's dimensions, each an llm_calls column."""


@dataclass(frozen=True)
class Anchor:
    """A new value's first appearance, and one route its calls reached."""

    at: datetime
    route: str
    calls: int
    """Calls on the route that carried the value in its first hour (`REACH`)."""
    dimension: str
    value: str
    service: str
    """The service it was first seen in (for a pooled moment, its services joined by commas)."""
    models: tuple[str, ...]
    """The request models of those calls: the route's calls that can stand for the value's own
    before it appeared (a new snapshot of one alias is compared with that alias's calls)."""
    route_calls: int
    """All the route's calls in that hour."""
    routes: tuple[str, ...] = ()
    """Every route the value reached, for its moment over all of them (`pooled`; `route` is then "")."""

    @property
    def partial(self) -> bool:
        """The value reached only part of the route (an A/B test, a canary, one model's snapshot)."""
        return self.calls < PARTIAL * self.route_calls

    @property
    def segment(self) -> bool:
        """Whether the value's own calls are read apart (`segment_columns`): where it reached part of
        its route, or several routes (their calls are then tested together)."""
        return self.partial or bool(self.routes)

    @property
    def change(self) -> str:
        """`dimension=value`."""
        return f"{self.dimension}={self.value}"


def anchors(store: Store, window: Window, filters: Filters, *, settle: timedelta, min_calls: int) -> list[Anchor]:
    """Every (first appearance, route) of the window where the value's first hour (`REACH`) put at
    least `min_calls` calls; a value seen within `settle` of the start of its service's data is no
    change. Two small queries: the first_seen table, then one scan of the new values' first hours."""
    service_only, service_params = filter_sql(filters, only=("service",))
    params = {"start": window.start, "end": window.end, "settle_s": int(settle.total_seconds())} | service_params
    news = [(str(d), str(v), str(s), utc(t)) for d, v, s, t in store.rows(render("anchors", service_filter=service_only), params)
            if d in CHANGE_DIMENSIONS]  # fmt: skip
    if not news:
        return []
    hours: list[str] = []
    carries: list[str] = []
    bound: dict[str, object] = {}
    for i, (dimension, value, service, at) in enumerate(news, start=1):
        hours.append(f"if(time >= {{a{i}f:DateTime64(9)}} AND time < {{a{i}t:DateTime64(9)}} AND service = {{a{i}s:String}}, {i}, 0)")
        carries.append(f"ifNull({quote_identifier(dimension)} = {{a{i}v:String}}, 0)")
        bound |= {f"a{i}s": service, f"a{i}v": value, f"a{i}f": at, f"a{i}t": at + REACH}
    where, filter_params = filter_sql(filters)
    span = {"since": min(t for *_, t in news), "end": min(window.end, max(t for *_, t in news) + REACH)}
    sql = render("anchor_routes", hours=", ".join(hours), carries=f"[{', '.join(carries)}][anchor]", filters=where)
    out = []
    for a, route, calls, route_calls, models in store.rows(sql, bound | filter_params | span):
        dimension, value, service, at = news[a - 1]
        if calls >= min_calls:
            out.append(Anchor(at, str(route), int(calls), dimension, value, service, tuple(sorted(map(str, models))), int(route_calls)))
    # Not the engine's row order: of two tests of the same calls, the first names the change.
    return sorted(out, key=lambda m: (m.at, m.dimension, m.value, m.route))


def pooled(moments: Sequence[Anchor]) -> list[Anchor]:
    """Each value that reached several routes (of one service or several: a new snapshot of a model
    that three services call) once more, over all of them, at its first appearance: such a value
    may move each route too little for its own test, and their calls together clearly."""
    spread: dict[tuple[str, str], list[Anchor]] = {}
    for m in moments:
        spread.setdefault((m.dimension, m.value), []).append(m)
    reached = {key: tuple(sorted({m.route for m in ms})) for key, ms in spread.items()}
    return [Anchor(min(m.at for m in ms), "", sum(m.calls for m in ms), dimension, value, ",".join(sorted({m.service for m in ms})),
                   tuple(sorted({x for m in ms for x in m.models})), sum(m.route_calls for m in ms), reached[dimension, value])
            for (dimension, value), ms in spread.items() if len(reached[dimension, value]) > 1]  # fmt: skip


def segment_columns(moments: Sequence[Anchor]) -> tuple[dict[str, str], dict[str, object]]:
    """One column per moment whose own calls are read apart (`Anchor.segment`) for the sliced scan,
    naming each row's side of its segment test: 2 for the calls carrying the new value on its
    routes from its first appearance, 1 for those routes' calls before it of the same request
    models (all of them for a new request model), else 0. {alias: SQL expression} and the values
    it binds. A moment that reached the whole of one route has none: the route's own test reads
    the same calls."""
    columns: dict[str, str] = {}
    bound: dict[str, object] = {}
    for i, m in ((i, m) for i, m in enumerate(moments) if m.segment):
        same_models = "1" if m.dimension == "request_model" or not m.models else f"has({{s{i}m:Array(String)}}, ifNull(request_model, ''))"
        own_service = "1" if m.routes else f"service = {{s{i}s:String}}"  # a pooled value's routes name its services
        columns[segment_alias(i)] = (f"multiIf(has({{s{i}r:Array(String)}}, route) AND time >= {{s{i}t:DateTime64(9)}} AND {own_service} "
                                     f"AND ifNull({quote_identifier(m.dimension)} = {{s{i}v:String}}, 0), 2, "
                                     f"has({{s{i}r:Array(String)}}, route) AND time < {{s{i}t:DateTime64(9)}} AND {same_models}, 1, 0)")  # fmt: skip
        bound |= {f"s{i}r": list(m.routes or (m.route,)), f"s{i}t": m.at, f"s{i}s": m.service, f"s{i}v": m.value, f"s{i}m": list(m.models)}
    return columns, bound


def segment_alias(i: int) -> str:
    """The sliced scan's column of moments[i]'s segment test."""
    return f"seg{i}"
