"""driftline's Grafana dashboards: load them, check them against a real store, export them.

The dashboards (dashboards/*.json, built by dashboards/build.py) target the official
ClickHouse data source plugin. `check` proves they work without Grafana: it checks each
dashboard's structure, resolves its template variables by running their queries, expands every
panel, annotation and variable query the way Grafana and the plugin do (`_grafana_macros`),
runs it in the store and checks the result has the shape its panel type needs and holds data.
It does so with every filter on "All", again with each filter on its first value, and once per
option of each fixed-list variable (signal, dimension, baseline) for the queries that use it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from driftline.collector._errors import DriftlineError, StoreError
from driftline.collector.store._store import Store
from driftline.runbooks import _loader as _runbooks

from ._grafana_macros import ALL, QueryContext, Variable, grafana_interval, interpolate, leftover_macros

__all__ = ["DashboardCheckFailed", "QueryCheck", "Report", "check", "export", "load", "runbook_links", "structure_problems"]

_PACKAGE = "driftline.dashboards"
PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_REF = {"type": PLUGIN, "uid": "${datasource}"}
FORMAT_OF = {"timeseries": 0, "table": 1, "traces": 3}
TRACE_COLUMNS = ("traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration")
"""What Grafana's trace view reads from a traces-format frame (the plugin's trace-id query)."""
_RUNBOOK_URL = re.compile(r"^\$\{runbook_base\}/(?P<name>[^/]+)\.md$")
_VAR_USE = r"\$(?:\{{{0}(?:[:.][^}}]*)?\}}|{0}\b)|\[\[{0}(?::\w+)?\]\]"


class DashboardCheckFailed(DriftlineError):
    """A dashboard is malformed, or one of its queries failed, returned nothing, or the wrong shape."""


def load() -> dict[str, dict[str, Any]]:
    """Every shipped dashboard, by file name."""
    root = resources.files(_PACKAGE)
    return {e.name: json.loads(e.read_text(encoding="utf-8")) for e in sorted(root.iterdir(), key=lambda e: e.name) if e.name.endswith(".json")}


def _provisioning(name: str) -> str:
    return resources.files(_PACKAGE).joinpath("provisioning", name).read_text(encoding="utf-8")


def export(directory: Path, *, grafana_dir: str = "/etc/grafana/provisioning") -> list[Path]:
    """Write a Grafana provisioning folder: the data source, the dashboard provider and the
    dashboards. `grafana_dir` is where Grafana will see `directory` (the provider's path)."""
    written = []
    files = {
        Path("datasources/driftline-clickhouse.yaml"): _provisioning("datasource.yaml"),
        Path("dashboards/driftline.yaml"): _provisioning("dashboards.yaml").replace("${DASHBOARDS_DIR}", f"{grafana_dir.rstrip('/')}/dashboards/driftline"),
        **{Path("dashboards/driftline") / name: json.dumps(d, indent=2, ensure_ascii=False) + "\n" for name, d in load().items()},
    }  # fmt: skip
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


# --- structure -----------------------------------------------------------------------------


def _panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield from (panel.get("panels") or []) if panel.get("type") == "row" else [panel]


def _variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def _query_sql(query: Any) -> str:
    return query if isinstance(query, str) else str((query or {}).get("rawSql", ""))


def _uses(sql: str, name: str) -> bool:
    return re.search(_VAR_USE.format(re.escape(name)), sql) is not None


def runbook_links(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, runbook name) for every panel's runbook link; `${runbook}` means the
    runbook of the selected signal."""
    found = []
    for panel in _panels(dashboard):
        for link in panel.get("links", []):
            match = _RUNBOOK_URL.match(str(link.get("url", "")))
            if match:
                found.append((str(panel.get("title")), match.group("name")))
    return found


def _foreign_uids(node: Any, path: str = "") -> Iterator[str]:
    """Any uid other than the datasource variable, the Grafana built-in, or the dashboard's own."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "uid" and path and value not in ("${datasource}", "-- Grafana --"):
                yield f"{path}.uid = {value!r}"
            yield from _foreign_uids(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _foreign_uids(value, f"{path}[{i}]")


def _panel_problems(panel: Mapping[str, Any], defined: set[str]) -> Iterator[str]:
    title = panel.get("title") or f"panel {panel.get('id')}"
    kind = panel.get("type")
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if panel.get("datasource") != DATASOURCE_REF:
        yield f"{title}: data source is not the ClickHouse plugin through ${{datasource}}"
    if not panel.get("description"):
        yield f"{title}: no description"
    if kind != "traces" and not defaults.get("unit"):
        yield f"{title}: no unit"
    if kind != "traces" and not defaults.get("thresholds", {}).get("steps"):
        yield f"{title}: no thresholds"
    if kind == "timeseries" and not panel.get("options", {}).get("legend", {}).get("showLegend"):
        yield f"{title}: legend hidden"
    runbooks = [name for _, name in runbook_links({"panels": [panel]})]
    if not runbooks:
        yield f"{title}: no runbook link (${{runbook_base}}/<name>.md)"
    for name in runbooks:
        if not name.startswith("$") and name not in _runbooks.names():
            yield f"{title}: links runbook {name!r}, which does not ship"
    targets = panel.get("targets", [])
    if not targets:
        yield f"{title}: no query"
    for target in targets:
        if target.get("datasource") != DATASOURCE_REF or target.get("editorType") != "sql":
            yield f"{title}: query {target.get('refId')} is not a SQL query on ${{datasource}}"
        if FORMAT_OF.get(str(kind)) != target.get("format") or target.get("queryType") != kind:
            yield f"{title}: query format/queryType do not match a {kind} panel"
        yield from _undefined(str(title), _query_sql(target), defined)


def _undefined(where: str, sql: str, defined: set[str]) -> Iterator[str]:
    for name in set(re.findall(r"\$\{?(\w+)", sql)):
        if not name.startswith("__") and name not in defined:
            yield f"{where}: uses undefined variable ${name}"


def structure_problems(dashboard: Mapping[str, Any]) -> list[str]:
    """What would stop the dashboard from loading or working the first time, without running it."""
    problems: list[str] = []
    variables = _variables(dashboard)
    defined = {str(v.get("name")) for v in variables}
    if not dashboard.get("uid") or not dashboard.get("title"):
        problems.append("dashboard has no uid or title")
    if not any(v.get("type") == "datasource" and v.get("name") == "datasource" and v.get("query") == PLUGIN for v in variables):
        problems.append(f"no `datasource` template variable of type datasource for {PLUGIN}")
    problems += list(_foreign_uids({k: v for k, v in dashboard.items() if k != "uid"}))
    for i, variable in enumerate(variables):
        if variable.get("type") == "query":
            if variable.get("datasource") != DATASOURCE_REF:
                problems.append(f"variable {variable.get('name')}: not on ${{datasource}}")
            earlier = {str(v.get("name")) for v in variables[:i]}
            problems += [p.replace("undefined variable", "a variable not defined before it:")
                         for p in _undefined(f"variable {variable.get('name')}", _query_sql(variable.get("query")), earlier)]  # fmt: skip
    for panel in _panels(dashboard):
        problems += _panel_problems(panel, defined)
    changes = [a for a in _annotations(dashboard) if re.search(r"\bFROM\s+changes\b", _query_sql(a.get("target")))]
    if any(p.get("type") == "timeseries" for p in _panels(dashboard)):
        if not changes:
            problems.append("no annotation query on the `changes` table")
        for annotation in changes:
            if not annotation.get("enable") or annotation.get("filter"):
                problems.append(f"annotation {annotation.get('name')}: not enabled on every panel")
    for annotation in _annotations(dashboard):
        problems += _undefined(f"annotation {annotation.get('name')}", _query_sql(annotation.get("target")), defined)
    return problems


def _annotations(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in dashboard.get("annotations", {}).get("list", []) if a.get("datasource") == DATASOURCE_REF]


# --- running the queries -------------------------------------------------------------------


@dataclass(frozen=True)
class QueryCheck:
    """One query run: which, under which variable values, what came back, what is wrong."""

    dashboard: str
    title: str
    kind: str  # timeseries | table | traces | annotation | variable
    variant: str
    rows: int
    columns: list[str]
    seconds: float
    problem: str | None = None
    cpu_seconds: float = 0.0  # this process's CPU (all the engine's threads, when embedded)
    sql: str = field(default="", repr=False)


@dataclass
class Report:
    """Everything `check` found; `ok` when nothing is wrong."""

    structure: dict[str, list[str]]
    queries: list[QueryCheck]
    runbooks: dict[str, list[tuple[str, str]]]

    @property
    def problems(self) -> list[str]:
        found = [f"{d}: {p}" for d, ps in self.structure.items() for p in ps]
        return found + [f"{q.dashboard}: {q.title} [{q.variant}]: {q.problem}" for q in self.queries if q.problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "runbooks": self.runbooks,
                "queries": [{k: v for k, v in asdict(q).items() if k != "sql"} for q in self.queries]}  # fmt: skip


def _numeric(series: Any) -> bool:
    from pandas.api import types

    return bool(types.is_numeric_dtype(series) and not types.is_bool_dtype(series))


def shape_problem(kind: str, frame: Any) -> str | None:
    """Why a result cannot feed its panel type (None when it can)."""
    from pandas.api import types

    if frame.empty:
        return "no rows"
    times = [c for c in frame.columns if types.is_datetime64_any_dtype(frame[c])]
    if kind == "timeseries":
        values = [c for c in frame.columns if c not in times and _numeric(frame[c])]
        if not times or not values:
            return f"a time series needs a time column and numeric columns, got {dict(frame.dtypes.astype(str))}"
        if not frame[times[0]].is_monotonic_increasing:
            return f"rows are not sorted by {times[0]} (Grafana cannot turn long rows into series)"
        if frame[values].isna().all().all():
            return "every value is null"
    elif kind == "traces":
        missing = [c for c in TRACE_COLUMNS if c not in frame.columns]
        if missing:
            return f"the trace view needs columns {', '.join(missing)}"
        if not (_numeric(frame["startTime"]) and _numeric(frame["duration"])):
            return "startTime and duration must be numbers of milliseconds"
    elif kind == "annotation":
        if not times or "text" not in frame.columns:
            return "an annotation needs a time column and a text column"
    return None


@dataclass(frozen=True)
class _Variant:
    """One set of variable choices to check under; `only` limits it to queries using those
    variables; `narrow` selections (one value per filter) may match no rows."""

    name: str
    choices: Mapping[str, str]
    only: frozenset[str] | None = None
    narrow: bool = False

    def concerns(self, sql: str) -> bool:
        return self.only is None or any(_uses(sql, v) for v in self.only)


class _Run:
    """One dashboard checked under one set of variable choices."""

    def __init__(self, store: Store, name: str, dashboard: Mapping[str, Any], ctx: QueryContext, results: list[QueryCheck]) -> None:
        self.store, self.name, self.dashboard, self.ctx, self.results = store, name, dashboard, ctx, results

    def query(self, title: str, kind: str, sql: str, variables: Mapping[str, Variable], variant: str,
              min_interval: str | None = None, *, may_be_empty: bool = False) -> Any:
        """Expand and run one query, record what came back; the frame (None when it failed).

        `may_be_empty`: a narrow selection (every filter on one value) may match nothing."""
        ctx = self.ctx
        if min_interval:
            floor = timedelta(seconds=_seconds(min_interval))
            ctx = QueryContext(ctx.start, ctx.end, grafana_interval(ctx.start, ctx.end, min_interval=floor))
        expanded = ""
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            expanded = interpolate(sql, variables, ctx)
            leftover = leftover_macros(expanded)
            if leftover:
                raise ValueError(f"not expanded: {', '.join(sorted(set(leftover)))}")
            frame = self.store.df(expanded)
            problem = None if frame.empty and may_be_empty else shape_problem(kind, frame)
        except (StoreError, ValueError) as exc:
            frame, problem = None, f"query failed: {exc}"
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rows, columns = (0, []) if frame is None else (len(frame), [str(c) for c in frame.columns])
        self.results.append(QueryCheck(self.name, title, kind, variant, rows, columns, seconds, problem, cpu, expanded))
        return frame

    def resolve(self, choices: Mapping[str, str], variant: str) -> dict[str, Variable]:
        """Every template variable's value, in order, running query variables on the store.

        `choices` overrides a variable: a value, or "first" for its first option."""
        resolved: dict[str, Variable] = {}
        for spec in _variables(self.dashboard):
            name, kind = str(spec["name"]), spec.get("type")
            if kind == "datasource":
                continue
            if kind == "constant":
                resolved[name] = Variable(name, str(spec.get("query", "")))
            elif kind == "custom":
                options = [str(o["value"]) for o in spec.get("options", [])]
                resolved[name] = Variable(name, choices.get(name, str(spec.get("current", {}).get("value", options[0]))), options)
            elif kind == "query":
                frame = self.query(f"variable {name}", "variable", _query_sql(spec.get("query")), resolved, variant)
                options = [] if frame is None or frame.empty else [str(v) for v in frame.iloc[:, 0].tolist()]
                resolved[name] = self._choose(spec, options, choices.get(name))
        return resolved

    @staticmethod
    def _choose(spec: Mapping[str, Any], options: list[str], choice: str | None) -> Variable:
        name = str(spec["name"])
        first = options[0] if options else ""
        if choice is None and spec.get("includeAll"):
            return Variable(name, [ALL], options, spec.get("allValue"))
        value = first if choice in (None, "first") else choice
        return Variable(name, [value] if spec.get("multi") else value, options, spec.get("allValue"))

    def panels(self, variables: Mapping[str, Variable], variant: _Variant) -> None:
        """Run the panel and annotation queries the variant concerns."""
        for panel in _panels(self.dashboard):
            for target in panel.get("targets", []):
                sql = _query_sql(target)
                if variant.concerns(sql):
                    title = interpolate_title(str(panel.get("title")), variables)
                    self.query(title, str(panel.get("type")), sql, variables, variant.name, panel.get("interval"), may_be_empty=variant.narrow)
        for annotation in _annotations(self.dashboard):
            sql = _query_sql(annotation.get("target"))
            if variant.concerns(sql):
                self.query(f"annotation {annotation.get('name')}", "annotation", sql, variables, variant.name, may_be_empty=variant.narrow)


def interpolate_title(title: str, variables: Mapping[str, Variable]) -> str:
    """A panel title with its variables filled in, for the report."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: _as_text(variables.get(m.group(1)), m.group(0)), title)


def _as_text(variable: Variable | None, default: str) -> str:
    if variable is None:
        return default
    return variable.value if isinstance(variable.value, str) else ",".join(variable.value)


def _seconds(text: str) -> float:
    from driftline.analyzers._timeparse import parse_duration

    return parse_duration(text).total_seconds()


def _dependents(dashboard: Mapping[str, Any], name: str) -> set[str]:
    """`name` and every variable whose query uses it, directly or through another variable."""
    found, grew = {name}, True
    while grew:
        grew = False
        for spec in _variables(dashboard):
            if spec.get("type") == "query" and spec["name"] not in found and any(_uses(_query_sql(spec.get("query")), n) for n in found):
                found.add(str(spec["name"]))
                grew = True
    return found


def _check_one(store: Store, name: str, dashboard: Mapping[str, Any], ctx: QueryContext, results: list[QueryCheck],
               keep: tuple[str, ...] | None, choices: Mapping[str, str]) -> list[tuple[str, str]]:
    run = _Run(store, name, dashboard, ctx, results)
    specs = _variables(dashboard)
    links = runbook_links(dashboard)
    resolved_links: set[tuple[str, str]] = {link for link in links if not link[1].startswith("$")}
    variants = [_Variant("filters: All", {})]
    multi = [str(s["name"]) for s in specs if s.get("type") == "query" and s.get("includeAll")]
    if multi:
        concerned = frozenset().union(*(_dependents(dashboard, n) for n in multi))
        variants.append(_Variant("filters: first value", {n: "first" for n in multi}, concerned, narrow=True))
    for spec in specs:
        if spec.get("type") == "custom":
            name, default = str(spec["name"]), str(spec.get("current", {}).get("value"))
            variants += [_Variant(f"{name}={o['value']}", {name: str(o["value"])}, frozenset(_dependents(dashboard, name)))
                         for o in spec.get("options", []) if str(o["value"]) != default]  # fmt: skip
    for variant in variants:
        if keep is not None and not variant.name.startswith(keep):
            continue
        variables = run.resolve({**choices, **variant.choices}, variant.name)
        run.panels(variables, variant)
        for title, runbook in links:
            if runbook.startswith("$"):
                resolved_links.add((interpolate_title(title, variables), interpolate_title(runbook, variables)))
    for title, runbook in sorted(resolved_links):
        try:
            _runbooks.get(runbook)
        except _runbooks.RunbookNotFound as exc:
            results.append(QueryCheck(name, title, "runbook", "links", 0, [], 0.0, str(exc)))
    return sorted(resolved_links)


def check(store: Store, *, start: datetime, end: datetime, dashboards: Iterable[str] | None = None,
          variants: tuple[str, ...] | None = None, choices: Mapping[str, str] | None = None) -> Report:
    """Check every shipped dashboard (or the named ones) against the data in `store`.

    `variants` keeps only the variable choices whose names start with one of these prefixes
    (e.g. `("filters: All", "signal=")`); by default every one is checked. `choices` sets
    variables in every variant (e.g. `{"evaluation": "user_feedback"}`; default: first value)."""
    chosen = load()
    if dashboards is not None:
        wanted = set(dashboards)
        unknown = wanted - set(chosen)
        if unknown:
            raise ValueError(f"no dashboard {', '.join(sorted(unknown))}; shipped: {', '.join(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in wanted}
    ctx = QueryContext(start, end, grafana_interval(start, end))
    results: list[QueryCheck] = []
    structure = {name: structure_problems(d) for name, d in chosen.items()}
    runbooks = {name: _check_one(store, name, d, ctx, results, variants, choices or {}) for name, d in chosen.items()}
    return Report(structure, results, runbooks)
