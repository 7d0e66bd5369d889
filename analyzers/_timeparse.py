"""Times on the command line: relative (`2h`, `30m`, `1d`, `now`) or absolute ISO 8601.

A naive absolute time is read as UTC, and every time driftline prints says its zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_duration", "parse_time"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w|wk)s?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "w": 604800, "wk": 604800}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1w` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 90s, 30m, 2h, 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A relative duration ago, `now`, or an ISO 8601 time; always timezone-aware (UTC if naive)."""
    now = now or datetime.now(UTC)
    if text.strip().lower() == "now":
        return now
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use a duration ago (2h, 30m, 1d), 'now', or ISO 8601 (2026-11-22T14:05:00+01:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
