"""The incident report as Markdown, self-contained HTML, or JSON.

Markdown and HTML come from the jinja2 templates in analyzers/templates/; both show the same
sections from the same `IncidentReport`. The HTML inlines its charting library (plotly.js from
the `plotly` package, the `report` extra) so the file opens offline and can be attached to the
incident as it is. JSON is `as_dict(report)`: its shape is versioned by `schema_version` and
documented in docs/incident-report.md.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, Final

from driftline.collector._errors import ConfigError

from ._model import Evidence, Suspect, as_dict
from ._report import Chart, Finding, IncidentReport

__all__ = ["FORMATS", "render_report", "trace_url"]

FORMATS: Final = ("md", "html", "json")
TRACE_ID: Final = "{trace_id}"
"""Placeholder in a Grafana URL template, replaced by each exemplar trace id."""
_REPORT_EXTRA = "pip install 'driftline[report]'"
SUSPECTS_SHOWN: Final = 5
"""Suspects per finding in Markdown and HTML (JSON carries every one attribution returned)."""
TRACES_SHOWN: Final = 3
"""Exemplar trace ids per suspect in Markdown and HTML."""
HEADROOM: Final = 0.35
"""Space above a chart's highest value, as a share of its range: the marker labels go there."""


def trace_url(template: str | None, trace_id: str) -> str | None:
    """The URL that opens `trace_id` (template with {trace_id}, e.g. a Grafana Explore link), or None."""
    return template.replace(TRACE_ID, trace_id) if template else None


def render_report(report: IncidentReport, fmt: str, *, grafana_url: str | None = None) -> str:
    """The report in `fmt` (md, html or json); exemplar trace ids link through `grafana_url`."""
    if grafana_url is not None and TRACE_ID not in grafana_url:
        raise ValueError(f"the Grafana URL template needs a {TRACE_ID} placeholder, e.g. http://grafana:3000/explore?...{TRACE_ID}...")
    if fmt == "json":
        return render_json(report, grafana_url=grafana_url)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    template = _environment(autoescape=fmt == "html").get_template(f"report.{fmt}.j2")
    context: dict[str, Any] = {"r": report, "grafana_url": grafana_url, "version": version("driftline")}
    if fmt == "html":
        context["plotly_js"] = _plotly_js()
        context["charts"] = [_figure(f) for f in report.findings]
    return str(template.render(**context))


def render_json(report: IncidentReport, *, grafana_url: str | None = None) -> str:
    """The report as versioned JSON (schema_version first); NaN becomes null."""
    data = as_dict(report)
    head = {"schema_version": data.pop("schema_version"), "kind": data.pop("kind"), "trace_url_template": grafana_url}
    return json.dumps(_finite({**head, **data}), indent=2, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@functools.cache
def _plotly_js() -> str:
    """plotly.min.js as shipped in the plotly package, safe to inline in a <script> element."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ConfigError(f"the HTML report inlines plotly.js from the plotly package: {_REPORT_EXTRA}") from None
    return str(get_plotlyjs()).replace("</script", "<\\/script")


@functools.cache
def _environment(*, autoescape: bool) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("driftline.analyzers", "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        when=when, clock=clock, pct=pct, money=money, num=num, value=value, cell=cell, suspect_values=suspect_values
    )
    env.globals.update(trace_url=trace_url, evidence_text=evidence_text, short=short, suspects_shown=SUSPECTS_SHOWN,
                       traces_shown=TRACES_SHOWN)  # fmt: skip
    return env


# --- formatting helpers, shared by both templates -------------------------------------------------


def when(moment: datetime | None) -> str:
    """`2026-11-22 14:05 UTC`."""
    return "–" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def clock(moment: datetime) -> str:
    """`14:05:30` (UTC; the section heading says so)."""
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def pct(fraction: float | None, digits: int = 0) -> str:
    return "–" if fraction is None or not math.isfinite(fraction) else f"{fraction:.{digits}%}"


def money(amount: float | None) -> str:
    if amount is None or not math.isfinite(amount):
        return "–"
    return f"${amount:,.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


def num(count: int | None) -> str:
    return "–" if count is None else f"{count:,}"


def value(amount: float | None) -> str:
    """A signal value: 3 significant digits."""
    if amount is None or not math.isfinite(amount):
        return "–"
    return f"{amount:.3g}" if abs(amount) < 1000 else f"{amount:,.0f}"


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def short(trace_id: str) -> str:
    return trace_id[:12] + "…" if len(trace_id) > 13 else trace_id


def suspect_values(s: Suspect) -> str:
    """`0.85 → 0.55` (baseline → incident value of the suspect segment)."""
    return f"{value(s.baseline_value)} → {value(s.current_value)}"


def evidence_text(evidence: Evidence) -> str:
    """`query incident_changes` — the cited query, for a reader to rerun."""
    return f"query `{evidence.query}`"


# --- charts -----------------------------------------------------------------------------------------


def _figure(finding: Finding) -> dict[str, Any] | None:
    """A plotly figure (data + layout) for a finding's chart; None if it has none."""
    chart: Chart | None = finding.chart
    if chart is None:
        return None
    times = [t.isoformat() for t in chart.times]
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": line.name, "x": times,
         "y": [None if v is None or not math.isfinite(v) else v for v in line.values],
         "customdata": list(line.calls), "hovertemplate": "%{y:.3g} (%{customdata} calls)<extra>" + line.name + "</extra>",
         "connectgaps": False, "marker": {"size": 4}}
        for line in chart.lines
    ]  # fmt: skip
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": m.time.isoformat(), "x1": m.time.isoformat(), "y0": 0, "y1": 1,
               "line": {"color": "#c0392b" if i == 0 else "#7f8c8d", "dash": "dash", "width": 2}}
              for i, m in enumerate(chart.markers)]  # fmt: skip
    notes = [{"x": m.time.isoformat(), "xref": "x", "y": 1 - 0.08 * i, "yref": "paper", "text": m.label, "showarrow": False,
              "xanchor": "left", "bgcolor": "rgba(255,255,255,0.8)", "font": {"size": 11}}
             for i, m in enumerate(chart.markers)]  # fmt: skip
    layout = {
        "title": {"text": f"{chart.signal}, split by the top suspect", "font": {"size": 14}},
        "xaxis": {"title": {"text": "time (UTC)"}, "type": "date"},
        "yaxis": {"title": {"text": chart.signal}, "range": _y_range(chart)},
        "shapes": shapes,
        "annotations": notes,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "height": 340,
        "legend": {"orientation": "h", "y": -0.25},
    }
    return {"data": data, "layout": layout}


def _y_range(chart: Chart) -> list[float]:
    """From zero (or below) to the highest value plus headroom where the marker labels sit, so
    no label covers a line."""
    values = [v for line in chart.lines for v in line.values if v is not None and math.isfinite(v)]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or abs(high) or 1.0
    return [low, high + span * HEADROOM]
