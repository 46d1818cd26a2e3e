"""Durations written the way policies and people write them: ``15m``, ``24h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``'7d'``-style text (a bare number is seconds); raise ValueError on anything else."""
    if isinstance(text, timedelta):
        return text
    # Pydantic turns only ValueError into a policy error naming the field: anything else raised
    # here (a list given, a number too large for a timedelta) would stop the server with a traceback.
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise ValueError("a duration like '24h' or '7d' is required")
    try:
        if isinstance(text, int | float):
            return timedelta(seconds=text)
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration like '15m', '24h' or '7d'")
        amount, unit = float(match.group(1)), match.group(2)
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration can be") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact ``'7d'``-style text for a duration (inverse of parse_duration)."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
