"""The HTML report in a real headless Chromium: it renders offline, its charts are visible, the page
logs no error, and a screenshot is taken."""

from __future__ import annotations

import re
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from driftline.analyzers._model import Window
from driftline.analyzers._render import render_report
from driftline.analyzers._report import IncidentReport, incident_report

CHARTS = """
new Promise(function (resolve) {
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    resolve(Array.from(document.querySelectorAll('.chart')).map(function (chart) {
      var box = chart.getBoundingClientRect();
      var lines = Array.from(chart.querySelectorAll('.scatterlayer path.js-line'));
      var labels = Array.from(chart.querySelectorAll('.annotation')).map(function (a) { return a.getBoundingClientRect(); });
      var covered = Array.from(chart.querySelectorAll('.scatterlayer path.point')).filter(function (p) {
        var r = p.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
        return labels.some(function (l) { return x >= l.left && x <= l.right && y >= l.top && y <= l.bottom; });
      }).length;
      return {signal: chart.dataset.signal, width: box.width, height: box.height,
              traces: chart.querySelectorAll('.scatterlayer .trace').length,
              drawn: lines.filter(function (p) { return /^M[^L]+L/.test(p.getAttribute('d') || ''); }).length,
              markers: chart.querySelectorAll('.shapelayer path').length, labels: labels.length, covered: covered,
              visible: getComputedStyle(chart).visibility === 'visible' && getComputedStyle(chart).display !== 'none'};
    }));
  }); });
})
"""


@pytest.fixture(scope="module")
def report(silent_update_store: Any, costly_store: Any) -> list[IncidentReport]:
    """Reports with known causes: a silent provider update (quality), a costly prompt (cost and cancellation tax)."""
    return [incident_report(store, Window(s.start, s.end + timedelta(minutes=1))) for store, s in (silent_update_store, costly_store)]


@pytest.mark.parametrize("which", [0, 1], ids=["silent-provider-update", "costly-prompt"])
def test_html_report_renders_its_charts_with_no_console_errors(report: list[IncidentReport], which: int, chromium: Any,
                                                               tmp_path: Path) -> None:  # fmt: skip
    result = report[which]
    page = tmp_path / "incident.html"
    page.write_text(render_report(result, "html"), encoding="utf-8")
    chromium.errors.clear()
    chromium.open(page)
    charts = chromium.evaluate(CHARTS)
    assert chromium.errors == []
    assert [c["signal"] for c in charts] == [f.regression.signal for f in result.findings if f.chart is not None]
    assert len(charts) == len(result.findings) >= 1
    for chart, finding in zip(charts, result.findings):
        assert chart["visible"] and chart["width"] > 400 and chart["height"] > 200, chart
        assert finding.chart is not None
        assert chart["traces"] == chart["drawn"] == len(finding.chart.lines) == 2, chart  # top suspect vs the rest
        assert chart["markers"] == chart["labels"] == len(finding.chart.markers) >= 1, chart
        assert chart["covered"] == 0, chart  # no marker label hides a data point
    assert chromium.evaluate("document.getElementById('summary').textContent") == result.summary
    shot = chromium.screenshot(tmp_path / "incident.png")
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and width >= 1000 and height > 1000


def test_html_report_is_one_self_contained_file(report: list[IncidentReport]) -> None:
    html = render_report(report[0], "html")
    assert "Plotly.newPlot" in html and "plotly.js v" in html
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # inline scripts: plotly.js and the plots
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|(?:src|href)=\"(?:https?:)?//", markup)
    for heading in ("Impact", "Findings", "Timeline (UTC)", "Runbooks", "Action items"):
        assert f">{heading}</h2>" in html


def test_html_report_escapes_what_the_data_says(report: list[IncidentReport]) -> None:
    from dataclasses import replace

    hostile = replace(report[0], summary="<img src=x onerror=alert(1)>")
    html = render_report(hostile, "html")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
