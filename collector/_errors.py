"""driftline's one exception tree; callers catch at the level they need.

    DriftlineError
    ├── ConfigError            bad store URL, bad option value, missing extra
    ├── StoreError             anything the store said or did not say (keeps `code`, `name`)
    │   ├── StoreUnavailable   server unreachable, embedded dir held by another process
    │   └── SchemaError        schema missing or older than this driftline expects
    ├── NoDataError            the window asked about holds no data
    └── AnalysisError          input an analysis cannot work with (unknown signal, too little data)

The library raises these and never prints or exits; the CLI maps each to an exit code.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "ConfigError",
    "DriftlineError",
    "NoDataError",
    "SchemaError",
    "StoreError",
    "StoreUnavailable",
    "TooLittleDataError",
]


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError):
    """A setting is wrong or a needed extra is not installed."""


class StoreError(DriftlineError):
    """The store refused or failed a statement; `code`/`name` are ClickHouse's when known."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened right now."""


class SchemaError(StoreError):
    """The schema is missing or not at the version this driftline expects."""


class NoDataError(DriftlineError):
    """The window holds no data to analyse."""


class AnalysisError(DriftlineError):
    """An analysis was asked for something it cannot compute."""


class TooLittleDataError(NoDataError, AnalysisError):
    """The window holds calls, but too few for the analysis asked (exit code 4, as for no data;
    still an AnalysisError for code that caught that before)."""
