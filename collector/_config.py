"""Environment variables driftline reads, and the one precedence rule for settings.

Precedence: explicit argument, then command-line flag (the CLI passes it as the argument),
then the `DRIFTLINE_*` variable, then the default. A bad variable value warns and falls back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

DRIFTLINE_STORE: Final = "DRIFTLINE_STORE"
"""Store URL: chdb:///path/to/dir or http(s)://user:pass@host:8123/db."""
DRIFTLINE_DATA_DIR: Final = "DRIFTLINE_DATA_DIR"
"""Where the default embedded store lives when DRIFTLINE_STORE is unset (default ./.driftline)."""
DRIFTLINE_GRAFANA_URL: Final = "DRIFTLINE_GRAFANA_URL"
"""URL template opening a trace in Grafana (Explore), with {trace_id} where the id goes; used by incident reports."""
DRIFTLINE_EXPORT_BATCH: Final = "DRIFTLINE_EXPORT_BATCH"
"""Maximum spans per insert of the direct store exporter (default 2048)."""
DRIFTLINE_SERVE_TOKEN: Final = "DRIFTLINE_SERVE_TOKEN"
"""Bearer token `driftline serve` requires (same as --token; --token-file keeps it out of `ps`)."""
DRIFTLINE_REDACTION: Final = "DRIFTLINE_REDACTION"
"""Redaction policy file (TOML) for serve and instrument(), or `off`; unset: the default policy."""
DRIFTLINE_REDACTION_KEY: Final = "DRIFTLINE_REDACTION_KEY"
"""HMAC key for a redaction policy's `hash` actions (when its file names no hash_key_file)."""

_log = logging.getLogger("driftline")


def default_store_url() -> str:
    """The embedded store under DRIFTLINE_DATA_DIR, or ./.driftline in the working directory."""
    base = os.environ.get(DRIFTLINE_DATA_DIR) or ".driftline"
    return "chdb://" + str(Path(base).expanduser().resolve() / "store")


def store_url(explicit: str | None = None) -> str:
    """Resolve the store URL by the precedence rule."""
    return explicit or os.environ.get(DRIFTLINE_STORE) or default_store_url()


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """Read an integer variable; a bad value warns and falls back to the default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        _log.warning("ignoring %s=%r: expected an integer >= %d; using %d", name, raw, minimum, default)
        return default
    return value
