"""Calling windows: when a closed window next opens."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.core.eligibility import _limits_at, _window_limits
from consentgate.core.policy import WindowSpec
from consentgate.core.quiet_hours import Window, closed_windows, next_open, windows_at
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


# Zones whose offsets are whole minutes today and were not always (Monrovia -0:44:30 until 1972,
# Amsterdam +0:19:32 until 1937), zones with half- and three-quarter-hour offsets, and zones with
# summer time, so that the instants drawn fall on both sides of offset changes.
ZONES = ("America/New_York", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "America/St_Johns",
         "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "Africa/Monrovia", "Europe/Amsterdam")
clocks = st.one_of(st.times(), st.builds(time, st.integers(0, 23), st.integers(0, 59)))
windows = st.lists(st.builds(
    Window, st.sampled_from([ReasonCode.QUIET_HOURS, ReasonCode.STATE_RULE]), st.sampled_from(["federal", "FL", "RI"]),
    st.builds(WindowSpec, start=clocks, end=clocks, no_sunday=st.booleans(), no_holidays=st.booleans()),
    st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True).map(tuple)), min_size=1, max_size=3)
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 12, 30), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(windows.map(tuple), instants, st.data())
def test_the_calling_window_answer_at_any_instant_is_the_one_at_that_instant(windows, at, data) -> None:  # type: ignore[no-untyped-def]
    # The answer is worked out once per minute and cached: every instant of the minute must get
    # what the windows say at that very instant (here: computed afresh, without any cache). Some
    # instants are drawn close to a window's opening or closing in one of its zones.
    window = data.draw(st.sampled_from(windows))
    bound = data.draw(st.sampled_from([window.spec.start, window.spec.end]))
    zone = ZoneInfo(data.draw(st.sampled_from(window.zones)))
    near = datetime.combine(at.date(), bound, tzinfo=zone) + timedelta(seconds=data.draw(st.integers(-90, 90)))
    for instant in (at, near.astimezone(UTC)):
        closed = closed_windows(windows, instant)
        limits = _window_limits(windows, instant, True)
        assert [(limit.code, limit.data["zone"], limit.data["local_time"]) for limit in limits] == [
            (c.window.code, c.zone, c.local.isoformat()) for c in closed]
        opens = next_open(windows, instant) if closed else instant
        assert all(limit.next_allowed_at == opens for limit in limits)
        assert [limit.next_allowed_at for limit in _window_limits(windows, instant, False)] == [opens] * len(closed)
        # The message names the local day and minute as at that instant, too.
        assert [limit.message for limit in limits] == [limit.message for limit in _limits_at.__wrapped__(
            windows, instant, True)]
