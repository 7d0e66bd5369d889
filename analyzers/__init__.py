"""driftline.analyzers: insight out. Signals, detection, attribution (and the CLI).

Everything heavy runs as SQL in ClickHouse; these functions receive small aggregates.
"""

from __future__ import annotations

from ._attribute import DIMENSIONS, attribute, attribute_frame, attribute_many
from ._changepoints import change_points
from ._detect import DetectionSettings, detect
from ._model import Attribution, Evidence, Filters, Regression, Suspect, TimelineEvent, Window, as_dict
from ._signals import signal_names, signal_series

__all__ = [
    "DIMENSIONS",
    "Attribution",
    "DetectionSettings",
    "Evidence",
    "Filters",
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
    "signal_names",
    "signal_series",
]
