"""What serve's query endpoint lets through, judged by the engine's own parser, not by text matching.

A statement goes through three engine steps before it runs:
1. `formatQuerySingleLine` (the text passed as a bound value) parses it as exactly one statement
   (a second one is a syntax error) and prints it canonically: comments gone, identifiers and
   strings in one spelling, `$$heredocs$$` as quoted strings. That canonical text is what runs.
2. `EXPLAIN AST` of the canonical text (with the request's bound values) gives the tree.
3. `vet_ast` walks the tree against allow-lists:
   - the statement is a read: SELECT (with UNION/INTERSECT/EXCEPT), DESCRIBE, SHOW TABLES/DATABASES/
     COLUMNS, EXISTS or SHOW CREATE; never SET, USE, KILL, SYSTEM, CREATE (temporary or not), INSERT;
   - no `INTO OUTFILE` (a literal straight under the statement is its file name);
   - no SETTINGS clause (settings come from URL parameters, allow-listed and clamped; see
     `_query_proxy`), so a query cannot raise its own time or memory limit;
   - table functions only from `TABLE_FUNCTIONS` (numbers, values, ...); any other table function the
     engine knows (file, url, remote, mysql, s3, cosn, oss, executable, input, ...) is refused in every
     position, table or scalar (`1 IN url(...)`, `SELECT file(...)`), whatever its case or quoting;
   - `system.*` tables only from `SYSTEM_TABLES` (no system.disks, system.processes, ...);
   - no output format that writes files on the serving host (`_vet_format`), nor `formatRow`.
The engine's `readonly = 2` (set on every handle) stays underneath as the second wall.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["SYSTEM_TABLES", "TABLE_FUNCTIONS", "Refused", "Statement", "denied_table_functions", "tsv_escape", "vet", "vet_ast"]

READ_ROOTS: Final = frozenset({
    "SelectWithUnionQuery", "DescribeQuery", "ShowTables", "ShowColumns", "ExistsTableQuery", "ShowCreateTableQuery",
})  # fmt: skip
"""EXPLAIN AST names of the statements that only read."""

TABLE_FUNCTIONS: Final = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "view", "generate_series", "generateseries", "null", "primes", "format",
})  # fmt: skip
"""Table functions that compute rows from their arguments alone (lower case)."""

SCALAR_DENIED: Final = frozenset({"file", "catboostevaluate", "filesystemavailable", "filesystemcapacity", "filesystemunreserved"})
"""Scalar functions that read or describe the serving host's files (lower case)."""

SCHEMA_FORMATS: Final = ("protobuf", "capnproto")
"""Output formats (by lower-case prefix) for which the engine writes a generated schema to temporary
files, two per request that fails and never removed: a client could fill the host's disk with them."""

FILE_WRITING_FUNCTIONS: Final = frozenset({"formatrow", "formatrownonewline"})
"""Functions that format a row in any output format, Protobuf's included (lower case)."""

SYSTEM_TABLES: Final = frozenset({
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "tables", "columns", "databases", "settings", "functions",
    "table_functions", "formats", "data_type_families", "time_zones", "table_engines", "parts", "build_options",
})  # fmt: skip
"""system tables clients read for metadata (clickhouse-connect, Grafana's data source, `db status`)."""

_TRAILING_FORMAT: Final = re.compile(r" FORMAT (\w+)$")
_NODE: Final = re.compile(r"^( *)(\S+)(?: (\S+))?")


class Refused(Exception):
    """The statement is not a plain read of the store: ClickHouse code, HTTP status, reason."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Statement:
    """A vetted statement: the canonical text to run and its output format (its FORMAT clause's,
    else the request's default)."""

    sql: str
    fmt: str


Run = Callable[[str, dict[str, str]], str]
"""Runs one statement on a read-only handle with bound values; returns TSVRaw text."""


def vet(run: Run, sql: str, params: dict[str, str], *, denied_functions: frozenset[str], default_format: str) -> Statement:
    """Canonicalise `sql` with the engine, check its output format and its AST; raises Refused."""
    canonical = run("SELECT formatQuerySingleLine({q:String})", {"q": tsv_escape(sql)}).rstrip("\n")
    fmt_match = _TRAILING_FORMAT.search(canonical)
    if fmt_match:
        canonical = canonical[: fmt_match.start()]
    fmt = fmt_match.group(1) if fmt_match else default_format
    _vet_format(fmt)
    vet_ast(run(f"EXPLAIN AST {canonical}", params).splitlines(), denied_functions)
    return Statement(canonical, fmt)


def _vet_format(name: str) -> None:
    """Refuse an output format that writes schema files on the serving host (`SCHEMA_FORMATS`)."""
    if name.lower().startswith(SCHEMA_FORMATS):
        raise Refused(73, f"output format {name} is not served: the engine writes its generated schema to files on this host")


def vet_ast(lines: Iterable[str], denied_functions: frozenset[str]) -> None:
    """Refuse anything but a read of the store's tables and harmless table functions (module docstring)."""
    parents: list[str] = []
    for line in lines:
        match = _NODE.match(line)
        if match is None:
            continue
        depth, kind, name = len(match.group(1)), match.group(2), match.group(3) or ""
        del parents[depth:]
        if depth == 0 and kind not in READ_ROOTS:
            raise Refused(164, f"only reads are allowed, not {kind}")
        if depth == 1 and kind == "Literal":
            raise Refused(164, "INTO OUTFILE is not allowed")
        if kind == "Set":
            raise Refused(164, "a SETTINGS clause is not allowed: pass settings as URL parameters (allow-listed)")
        if kind == "Function":
            _vet_function(name.lower(), parents[-1] if parents else "", denied_functions)
        if kind in ("TableIdentifier", "Identifier"):
            _vet_table(name)
        parents.append(kind)


def _vet_function(name: str, parent: str, denied: frozenset[str]) -> None:
    if parent == "TableExpression" and name not in TABLE_FUNCTIONS:
        raise Refused(497, f"table function {name}() is not allowed (only {', '.join(sorted(TABLE_FUNCTIONS))})")
    if name in denied or name in SCALAR_DENIED:
        raise Refused(497, f"function {name}() reads files, processes or the network and is not allowed")
    if name in FILE_WRITING_FUNCTIONS:
        raise Refused(497, f"function {name}() is not allowed: in some formats it writes schema files on this host")


def _vet_table(name: str) -> None:
    database, dot, table = name.partition(".")
    if dot and database.lower() == "system" and table.lower() not in SYSTEM_TABLES:
        raise Refused(497, f"system.{table} is not readable here (only {', '.join(sorted(SYSTEM_TABLES))})")


def denied_table_functions(engine_names: Iterable[str]) -> frozenset[str]:
    """Every table function the engine knows, except the harmless ones: refused in any position."""
    return frozenset(n.lower() for n in engine_names if n.strip()) - TABLE_FUNCTIONS


def tsv_escape(value: str) -> str:
    """A string as the engine parses a bound String value (TSV escaping)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\0")
