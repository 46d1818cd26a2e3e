"""The one wire format for instants: RFC 3339 in UTC with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime (SQLite's text, a command-line day) is taken as UTC,
    never as the host's local time."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _utc_text(value)


@lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    # Cached: a batch's answers repeat a few instants (the decision time, the next opening of a
    # calling window) thousands of times. Equal instants in other zones give the same text.
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
