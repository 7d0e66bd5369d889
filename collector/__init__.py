"""driftline.collector: data in. Instrumentation hooks, the store, its schema.

Importing this package is cheap: nothing heavy (pandas, chdb, jinja2, the ClickHouse driver)
is imported until a function that needs it runs.
"""

from __future__ import annotations

from ._errors import AnalysisError, ConfigError, DriftlineError, NoDataError, SchemaError, StoreError, StoreUnavailable, TooLittleDataError
from ._redaction import RedactionPolicy
from .hooks._annotate import annotate
from .hooks._calls import LLMCall, llm_call
from .hooks._context import ReleaseContextProcessor, current_release, record_confidence, release, tag_retrieval
from .hooks._exporter import StoreSpanExporter
from .hooks._instrument import Instrumentation, instrument
from .hooks._scores import record_score
from .store._migrate import migrate, pending
from .store._store import Store, connect

__all__ = [
    "AnalysisError",
    "ConfigError",
    "DriftlineError",
    "Instrumentation",
    "LLMCall",
    "NoDataError",
    "RedactionPolicy",
    "ReleaseContextProcessor",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreSpanExporter",
    "StoreUnavailable",
    "TooLittleDataError",
    "annotate",
    "connect",
    "current_release",
    "instrument",
    "llm_call",
    "migrate",
    "pending",
    "record_confidence",
    "record_score",
    "release",
    "tag_retrieval",
]
