"""Calling windows: when a closed window next opens."""

from __future__ import annotations

from datetime import UTC, datetime, time

from consentgate.core.policy import WindowSpec
from consentgate.core.quiet_hours import Window, windows_at
from consentgate.core.reasons import ReasonCode


def test_a_window_opening_at_midnight_opens_at_the_next_midnight() -> None:
    # The search once stood still here (and never returned): the next day's opening is its first instant.
    late = Window(ReasonCode.STATE_RULE, "FL", WindowSpec(start=time(0), end=time(0, 15)), ("America/New_York",))
    at = datetime(2026, 1, 4, 0, 1, 34, tzinfo=UTC)   # 19:01 on the 3rd in New York
    closed, opens = windows_at((late,), at)
    assert [c.zone for c in closed] == ["America/New_York"]
    assert opens == datetime(2026, 1, 4, 5, 0, tzinfo=UTC)


def test_a_window_that_never_opens_has_no_next_opening() -> None:
    never = Window(ReasonCode.STATE_RULE, "FL", WindowSpec(start=time(9), end=time(9)), ("America/New_York",))
    closed, opens = windows_at((never,), datetime(2026, 1, 4, 12, 0, tzinfo=UTC))
    assert closed and opens is None
