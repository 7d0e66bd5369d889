"""`driftline annotate`: record a change (deploy, prompt publish, index rebuild, model switch)."""

from __future__ import annotations

from datetime import datetime

import click
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftline.analyzers._timeparse import parse_time
from driftline.collector import _names as n
from driftline.collector.hooks._annotate import annotate
from driftline.collector.store._migrate import require_schema
from driftline.collector.store._spans import write_spans

from ._common import handle_errors, opened, store_option


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return parse_time(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("annotate")
@click.argument("kind", type=click.Choice(n.CHANGE_KINDS))
@click.argument("target")
@click.option("--version", "version", help="The version it changed to (v8, 2026-11-20, gpt-4o-2024-11-20).")
@click.option("-m", "--description", default="", help="What changed and why, for the timeline.")
@click.option("--author", help="Who made the change.")
@click.option("--service", default="driftline", show_default=True, help="Service the change belongs to.")
@click.option("--environment", help="deployment.environment.name of the change.")
@click.option("--at", "at", callback=_when, help="When it happened: 15m (ago), or ISO 8601; default now.")
@store_option
@handle_errors
def annotate_command(kind: str, target: str, version: str | None, description: str, author: str | None,
                     service: str, environment: str | None, at: datetime | None, store_url: str | None) -> None:  # fmt: skip
    """Record a change so the timeline and attribution can line it up with regressions.

    KIND is one of deploy, prompt, index, model, config, provider_incident, other;
    TARGET is what changed (a prompt name, an index, a model alias, a service).

    \b
    Example:
      driftline annotate prompt support-answer --version v8 -m "shorter answers"
      driftline annotate index kb-docs --version 2026-11-20 --at 2026-11-20T09:00:00Z
      driftline annotate provider_incident openai -m "elevated 429s" --at 40m
    """
    with opened(store_url) as store:
        require_schema(store)
        attrs = {"service.name": service, **({n.DEPLOYMENT_ENVIRONMENT: environment} if environment else {})}
        provider = TracerProvider(resource=Resource.create(attrs))
        captured = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(captured))
        annotate(kind, target, version=version, description=description, author=author, at=at, tracer_provider=provider)
        write_spans(store, captured.get_finished_spans())
    click.echo(f"recorded {kind} change of {target}" + (f" to {version}" if version else "") + f" in {store.url}")
