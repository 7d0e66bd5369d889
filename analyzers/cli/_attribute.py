"""`driftline attribute`: which dimension values explain a regression, and how much of it."""

from __future__ import annotations

import json

import click

from driftline.analyzers._attribute import DIMENSIONS, attribute
from driftline.analyzers._model import Attribution, Window, as_dict
from driftline.analyzers._signals import get_signal
from driftline.analyzers._timeparse import _DURATION, parse_duration, parse_time

from ._common import (
    handle_errors,
    json_option,
    opened,
    scope_options,
    store_option,
    table,
    window_and_filters,
)
from ._detect import check_signal, number, when


def baseline_window(incident: Window, baseline: str | None) -> Window:
    """The baseline before the incident: a duration before its start, or an ISO start time;
    default three times the incident's length."""
    if baseline is None:
        return Window(incident.start - 3 * (incident.end - incident.start), incident.start)
    start = incident.start - parse_duration(baseline) if _DURATION.match(baseline) else parse_time(baseline)
    if start >= incident.start:
        raise ValueError(f"--baseline {baseline} does not start before the incident window ({incident.start.isoformat()})")
    return Window(start, incident.start)


def _rows(result: Attribution) -> list[dict[str, str]]:
    return [{
        "#": str(i), "suspect": s.label, "explains": f"{s.explained_share:.0%}", "effect": s.effect,
        "before -> during": f"{number(s.baseline_value)} -> {number(s.current_value)}",
        "calls": f"{s.baseline_calls:,} -> {s.current_calls:,}", "first seen": when(s.first_seen),
        "aligned change": s.aligned_change or "-",
    } for i, s in enumerate(result.suspects, 1)]  # fmt: skip


@click.command("attribute")
@click.option("--signal", required=True, callback=check_signal, metavar="NAME",
              help="The regressed signal: quality:<evaluation>, error_rate, latency_p95, ... (see `driftline detect`).")  # fmt: skip
@scope_options
@click.option("--baseline", metavar="DURATION|TIME", help="Baseline before --since: a duration (6h) or an ISO start. Default: 3x the incident window.")
@click.option("--dimension", "dimensions", multiple=True, type=click.Choice(list(DIMENSIONS)),
              help="Only these dimensions (repeatable); default all.")  # fmt: skip
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many suspects to list.")
@store_option
@json_option
@handle_errors
def attribute_command(signal: str, since: str, until: str, baseline: str | None, dimensions: tuple[str, ...], top: int,
                      store_url: str | None, as_json: bool, **filters: str | None) -> None:  # fmt: skip
    """Rank the dimension values (and pairs) that explain a regression of SIGNAL.

    The incident window is --since .. --until; the baseline is the window before it. Each
    suspect says how much of the change it explains, whether its calls got worse ('worse')
    or merely grew in share ('mix'), and whether its first appearance or an annotated change
    lines up with the start.

    \b
    Example:
      driftline attribute --signal quality:faithfulness --since 2h
      driftline attribute --signal latency_p95 --since 2026-11-21T14:05Z --baseline 12h --json
      driftline attribute --signal error_rate --since 90m --route /chat/answer --dimension response_model --dimension tenant
    """
    incident, scope = window_and_filters(since, until, **filters)
    base = baseline_window(incident, baseline)
    with opened(store_url) as store:
        result = attribute(store, signal, baseline=base, incident=incident, filters=scope, dimensions=dimensions or None, top=top)
    if as_json:
        click.echo(json.dumps(as_dict(result), indent=2))
        return
    change = result.incident_value - result.baseline_value
    what = " (share of calls slower than the baseline's percentile)" if get_signal(signal).quantile is not None else ""
    click.echo(f"{result.signal}{what}: {number(result.baseline_value)} -> {number(result.incident_value)} ({change:+.4g})")
    click.echo(f"baseline {when(base.start)} .. {when(base.end)}; incident {when(incident.start)} .. {when(incident.end)}\n")
    if not result.suspects:
        click.echo("no dimension value explains the change")
        return
    click.echo(table(_rows(result), ["#", "suspect", "explains", "effect", "before -> during", "calls", "first seen", "aligned change"]))
    traced = [s for s in result.suspects if s.evidence.trace_ids]
    if traced:
        click.echo("\nworst calls (trace ids):")
        for s in traced:
            click.echo(f"  {s.label}: {' '.join(s.evidence.trace_ids)}")
