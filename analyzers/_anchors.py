"""The moments change-anchored detection tests at: each value of a change-bearing dimension first
seen inside the window (a new model, snapshot, fingerprint, prompt, index or service version),
and the routes its calls reached from then on.

Such a moment is known before any signal is looked at, so a test there has a plain normal null,
unlike the search for the worst split, which noise alone drives to z ~4 (see `_detect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._model import Filters, Window
from ._signals import filter_sql, utc
from ._sql import quote_identifier, render

if TYPE_CHECKING:
    from driftline.collector.store._store import Store

__all__ = ["Anchor", "anchors"]

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
    change: str
    """`dimension=value`."""


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
    matches: list[str] = []
    bound: dict[str, object] = {}
    for i, (dimension, value, service, at) in enumerate(news, start=1):
        matches.append(f"if(time < {{a{i}t:DateTime64(9)}} AND service = {{a{i}s:String}} AND ifNull({quote_identifier(dimension)} = {{a{i}v:String}}, 0), {i}, 0)")
        bound |= {f"a{i}s": service, f"a{i}v": value, f"a{i}t": at + REACH}
    where, filter_params = filter_sql(filters)
    span = {"since": min(t for *_, t in news), "end": min(window.end, max(t for *_, t in news) + REACH)}
    rows = store.rows(render("anchor_routes", matches=", ".join(matches), filters=where), bound | filter_params | span)
    return [Anchor(news[a - 1][3], str(route), int(calls), f"{news[a - 1][0]}={news[a - 1][1]}")
            for a, route, calls in rows if calls >= min_calls]  # fmt: skip
