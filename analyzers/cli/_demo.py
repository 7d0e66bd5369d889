"""`driftline demo`: simulate an LLM application with one injected incident into the store."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click

from driftline.analyzers.demo._run import QUALITY, DemoRun, ModelSummary, run_demo, summary
from driftline.collector.store._migrate import migrate, reset

from ._common import handle_errors, json_option, opened, store_option, table


@click.command("demo")
@store_option
@click.option("--calls", type=click.IntRange(min=100), default=30_000, show_default=True, help="How many LLM calls to simulate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed: the same seed writes the same data.")
@click.option("--hours", type=click.FloatRange(min=3), default=6.0, show_default=True,
              help="Simulated history, ending now; the incident starts 90 minutes before the end.")  # fmt: skip
@click.option("--fresh", is_flag=True, help="Empty driftline's tables in the store first (other tables and the directory stay).")
@json_option
@handle_errors
def demo(store_url: str | None, calls: int, seed: int, hours: float, fresh: bool, as_json: bool) -> None:
    """Simulate an LLM app through driftline's real hooks, with one injected incident.

    Three services (support-bot, search-api, voice-agent), a dozen tenants, OpenAI and
    Anthropic, streamed and plain calls, prompt and index versions, ASR confidence, judge scores
    and user thumbs, cancellations, 429 bursts, a few harmless changes, and one silent provider
    model update. Ends with what the store holds per model and prompt version.

    \b
    Example:
      driftline demo --store chdb://./.driftline/demo --calls 30000 --seed 7 --fresh
      driftline demo --calls 5000 --hours 4 --json
    """
    with opened(store_url) as store:
        if fresh:
            reset(store)
        else:
            migrate(store)
        with click.progressbar(length=calls, label="simulating LLM calls", file=sys.stderr) as bar:
            run = run_demo(store, calls=calls, seed=seed, hours=hours, progress=bar.update)
        rows = summary(store)
        url = store.url
    if as_json:
        click.echo(json.dumps({"store": url, "run": _run_dict(run), "summary": [asdict(r) for r in rows]}, indent=2))
        return
    _print_text(run, rows, url)


def _iso(value: datetime | int) -> str:
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1e9, tz=UTC)
    return when.isoformat(timespec="seconds")


def _run_dict(run: DemoRun) -> dict[str, Any]:
    data = asdict(run)
    data["start"], data["end"] = _iso(run.start), _iso(run.end)
    for change in data["changes"]:
        change["at"] = _iso(change["at"])
    return data


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%H:%M")


def _print_text(run: DemoRun, rows: list[ModelSummary], url: str) -> None:
    hours = (run.end - run.start).total_seconds() / 3600
    click.echo(f"simulated {run.calls:,} LLM calls over {hours:g}h ({run.start:%H:%M} to {run.end:%H:%M} UTC, seed {run.seed}) "
               f"in {run.seconds:.1f}s")  # fmt: skip
    click.echo("\nwhat happened (the answer key; the incident report should single out the incident):")
    key = [{"UTC": _clock(c.at), "change": f"{c.kind} {c.target} -> {c.version}", "recorded": "annotated" if c.annotated else "not annotated",
            "effect": ("INCIDENT: " if c.harmful else "harmless: ") + c.description} for c in run.changes]  # fmt: skip
    click.echo(table(key, ["UTC", "change", "recorded", "effect"]))
    click.echo("\nwhat the store holds per model and prompt version:")
    lines = [{"provider": r.provider, "request model": r.request_model, "response model": r.response_model or "(no response)",
              "prompt": r.prompt, "calls": f"{r.calls:,}", "TTFT p95": "-" if r.ttft_p95_s is None else f"{r.ttft_p95_s:.2f}s",
              "quality": "-" if r.quality is None else f"{r.quality:.2f}"} for r in rows]  # fmt: skip
    click.echo(table(lines, ["provider", "request model", "response model", "prompt", "calls", "TTFT p95", "quality"]))
    click.echo(f"\nstore: {url}")
    click.echo(f"next:  driftline detect --since 2h --store '{url}'")
    click.echo(f"       driftline attribute --signal quality:{QUALITY} --since 2h --store '{url}'")
