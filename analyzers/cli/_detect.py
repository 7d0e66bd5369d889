"""`driftline detect`: which signals left their baseline, when, by how much, how sure."""

from __future__ import annotations

import json
from datetime import datetime

import click

from driftline.analyzers._detect import detect
from driftline.analyzers._model import Regression, as_dict
from driftline.analyzers._signals import get_signal
from driftline.analyzers._timeparse import parse_duration
from driftline.collector._errors import AnalysisError

from ._common import (
    handle_errors,
    json_option,
    opened,
    scope_options,
    store_option,
    table,
    window_and_filters,
)


def check_signal(ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """Reject an unknown signal name as bad usage, listing the valid ones."""
    for name in (value,) if isinstance(value, str) else value or ():
        try:
            get_signal(name)
        except AnalysisError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def check_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """A duration option (5m, 1h) as a timedelta, or bad usage."""
    try:
        return None if value is None else parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def when(value: datetime | None) -> str:
    """A time for a table: UTC, to the second."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | None) -> str:
    """A value for a table: 4 significant digits."""
    return "-" if value is None else f"{value:.4g}"


def _row(r: Regression) -> dict[str, str]:
    return {"signal": r.signal, "started": when(r.started_at), "baseline": number(r.baseline), "current": number(r.current),
            "change": f"{r.relative_change:+.1%}", "confidence": f"{r.confidence:.3f}", "calls": f"{r.calls:,}",
            "ended": when(r.ended_at), "slice": r.where or "all"}  # fmt: skip


@click.command("detect")
@scope_options(since="24h")
@click.option("--signal", "signals", multiple=True, callback=check_signal, metavar="NAME",
              help="Only this signal (repeatable): error_rate, latency_p95, quality:<evaluation>, ...")  # fmt: skip
@click.option("--bucket", callback=check_duration, metavar="DURATION", help="Time bucket (5m, 1h); default: a round width giving about 150 buckets.")
@store_option
@json_option
@handle_errors
def detect_command(since: str, until: str, signals: tuple[str, ...], bucket: object, store_url: str | None, as_json: bool,
                   **filters: str | None) -> None:  # fmt: skip
    """Find the signals that left their baseline in the window: when, how far, how sure.

    Each signal is bucketed in ClickHouse, over the whole scope and per route, provider and
    service in the same scan; a shift counts only if the regimes before and after differ by
    several standard errors computed from the calls (a slice, or a regression that already
    ended, needs more), lasts 10 minutes and rests on enough calls. The `slice` column says
    where a regression the whole scope hid was found. Where a new model, snapshot, prompt,
    index or service version appeared, each route it reached in its first hour is also tested at that moment
    alone (a lower bar, about 3.5 standard errors, since the moment was known before looking):
    such findings name the change (`anchor`) and come last. Where one tenant's share of the calls
    stepped (doubled or halved, not from the trend it was on), each score is tested there for the
    move that step alone explains (`anchor` names the tenant, `share_step` its share before and
    after). Worst first; exit 0 whether or not anything regressed.

    \b
    Example:
      driftline detect --since 24h
      driftline detect --since 2026-11-20T00:00Z --until 2026-11-21T00:00Z --route /chat/answer --json
      driftline detect --signal quality:faithfulness --signal latency_p95 --bucket 10m
      driftline detect --since 2h --provider openai --signal rate_limit_rate
    """
    window, scope = window_and_filters(since, until, **filters)
    with opened(store_url) as store:
        found = detect(store, window, filters=scope, signals=signals or None, bucket=bucket)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"window": as_dict(window), "regressions": [as_dict(r) for r in found]}, indent=2))
        return
    span = f"{when(window.start)} .. {when(window.end)}"
    if not found:
        click.echo(f"no regression between {span}")
        return
    click.echo(f"{len(found)} regressed signal(s) between {span}\n")
    click.echo(table([_row(r) for r in found], ["signal", "started", "baseline", "current", "change", "confidence", "calls", "ended"]))
    for r in (r for r in found if r.anchor is not None):
        click.echo(f"{r.signal}{f' on {r.where}' if r.slice else ''}: {r.anchor_note}")
