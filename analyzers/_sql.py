"""The analyzers' SQL: named templates in `sql/*.sql`, filled only from allow-lists.

Templates hold `$name` slots for SQL fragments that come from driftline's own registries
(signal expressions, allow-listed dimensions, fixed filter columns); every value a user
supplies is bound server-side as `{name:Type}`. `quote_identifier` is the one way an
identifier enters a query.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from string import Template

__all__ = ["quote_identifier", "render"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_identifier(name: str) -> str:
    """`name` as a back-quoted ClickHouse identifier; only plain names are accepted."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f"`{name}`"


@functools.cache
def _template(name: str) -> Template:
    text = resources.files("driftline.analyzers").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **fragments: str) -> str:
    """The named template with its `$slots` filled; a missing slot is a KeyError (a bug)."""
    return _template(name).substitute(fragments)
