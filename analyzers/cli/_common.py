"""What every command shares: the --store option, error-to-exit-code mapping, output helpers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

import click

from driftline.analyzers._model import Filters, Window
from driftline.analyzers._timeparse import parse_time
from driftline.collector import _config
from driftline.collector._errors import ConfigError, DriftlineError, NoDataError, StoreUnavailable
from driftline.collector.store._store import Store, connect

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_NO_DATA = 4
EXIT_REGRESSION = 5
"""`incident report --fail-on-regression` found a regression (the report is still written)."""

_EXIT_CODES: tuple[tuple[type[DriftlineError], int], ...] = (
    (ConfigError, EXIT_STORE),
    (StoreUnavailable, EXIT_STORE),
    (NoDataError, EXIT_NO_DATA),
)
"""Error class -> exit code; the first match wins, anything else exits 1."""


def exit_code_for(exc: DriftlineError) -> int:
    """The documented exit code for a library error."""
    return next((code for cls, code in _EXIT_CODES if isinstance(exc, cls)), EXIT_OTHER)


def store_option(func: F) -> F:
    """--store URL, falling back to DRIFTLINE_STORE, then the embedded ./.driftline store."""
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        default=None,
        help=f"chdb:///dir (embedded) or http(s)://user:pass@host:8123/db. Default: ${_config.DRIFTLINE_STORE}, else ./.driftline/store.",
    )(func)


def json_option(func: F) -> F:
    """--json: machine-readable output instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


@overload
def scope_options(func: F, *, since: str = ...) -> F: ...
@overload
def scope_options(func: None = None, *, since: str = ...) -> Callable[[F], F]: ...
def scope_options(func: F | None = None, *, since: str = "2h") -> F | Callable[[F], F]:
    """--since/--until (relative or ISO 8601, UTC unless the time says its zone) and the five
    filters --service/--route/--tenant/--environment/--provider; turn them into a Window and Filters with
    `window_and_filters`. Use bare (`@scope_options`) or with another default (`@scope_options(since="24h")`).
    """

    def decorate(f: F) -> F:
        options = [
            click.option("--since", default=since, show_default=True, help="Window start: 2h, 90m, 1d (ago), or ISO 8601 (UTC if no zone)."),
            click.option("--until", default="now", show_default=True, help="Window end: 'now', a duration ago, or ISO 8601."),
            click.option("--service", help="Only calls of this service."),
            click.option("--route", help="Only calls of this route."),
            click.option("--tenant", help="Only calls of this tenant."),
            click.option("--environment", help="Only calls of this deployment environment."),
            click.option("--provider", help="Only calls to this provider (openai, anthropic, ...: gen_ai.provider.name)."),
        ]  # fmt: skip
        for option in reversed(options):
            f = option(f)
        return f

    return decorate if func is None else decorate(func)


def window_and_filters(since: str, until: str, **filters: str | None) -> tuple[Window, Filters]:
    """The window the options name (one `now` for both ends, in UTC) and the filters; ValueError if empty."""
    now = datetime.now(UTC)
    start, end = parse_time(since, now=now).astimezone(UTC), parse_time(until, now=now).astimezone(UTC)
    if end <= start:
        raise ValueError(f"empty window: --until {end:%Y-%m-%d %H:%M:%S} UTC is not after --since {start:%Y-%m-%d %H:%M:%S} UTC")
    return Window(start, end), Filters(**filters)


def handle_errors(func: F) -> F:
    """Turn library errors into one clear line on stderr and the mapped exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DriftlineError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exit_code_for(exc))
        except ValueError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


@contextmanager
def opened(store_url: str | None) -> Iterator[Store]:
    """The store for a command, closed when the command ends."""
    store = connect(store_url)
    try:
        yield store
    finally:
        store.close()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (no colour, so it pastes cleanly)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)
