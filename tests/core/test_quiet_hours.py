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


def test_a_no_holiday_window_stays_closed_in_years_the_calendar_does_not_know() -> None:
    # The holidays package knows US holidays up to 2100 and answers "none" after that: a state
    # that forbids calls on holidays must not be taken to allow Christmas Day 2101.
    rhode_island = Window(ReasonCode.STATE_RULE, "RI", WindowSpec(start=time(9), end=time(18), no_holidays=True),
                          ("America/New_York",))
    closed, opens = windows_at((rhode_island,), datetime(2101, 12, 25, 17, 0, tzinfo=UTC))
    assert closed and opens is None
    # A working day of a known year is open as ever, and Christmas Day is not.
    assert windows_at((rhode_island,), datetime(2100, 12, 21, 17, 0, tzinfo=UTC))[0] == ()
    # Christmas 2100 is a Saturday, observed on the Friday: the window opens again on the Sunday.
    closed, opens = windows_at((rhode_island,), datetime(2100, 12, 24, 17, 0, tzinfo=UTC))
    assert closed and opens == datetime(2100, 12, 26, 14, 0, tzinfo=UTC)
