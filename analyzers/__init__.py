"""driftline.analyzers: insight out. Signals, detection, attribution, the incident report (and the CLI).

Everything heavy runs as SQL in ClickHouse; these functions receive small aggregates.
"""

from __future__ import annotations

from ._attribute import DIMENSIONS, attribute, attribute_many
from ._attribute_frame import attribute_frame
from ._changepoints import change_points
from ._detect import DetectionSettings, detect
from ._model import Attribution, Evidence, Filters, Regression, Suspect, TimelineEvent, Window, as_dict
from ._render import render_report
from ._report import IncidentReport, incident_report
from ._signals import signal_names, signal_series
from ._timeline import timeline

__all__ = [
    "DIMENSIONS",
    "Attribution",
    "DetectionSettings",
    "Evidence",
    "Filters",
    "IncidentReport",
    "Regression",
    "Suspect",
    "TimelineEvent",
    "Window",
    "as_dict",
    "attribute",
    "attribute_frame",
    "attribute_many",
    "change_points",
    "detect",
    "incident_report",
    "render_report",
    "signal_names",
    "signal_series",
    "timeline",
]
