"""Revocation deadlines: end of the Nth business day, US federal holidays and weekends excluded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.core.business_days import (
    add_business_days,
    business_days_between,
    is_business_day,
    revocation_deadline,
)

ET = ZoneInfo("America/New_York")


def test_christmas_and_new_year() -> None:
    deadline = revocation_deadline(datetime(2026, 12, 23, 15, tzinfo=UTC), 10)
    assert deadline.astimezone(ET).date() == date(2027, 1, 8)
    assert deadline.astimezone(ET).time().hour == 23


def test_thanksgiving_and_observed_holidays() -> None:
    assert not is_business_day(date(2026, 11, 26))          # Thanksgiving
    assert not is_business_day(date(2026, 7, 3))            # 4 July 2026 is a Saturday: observed Friday
    assert add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 27)


def test_received_late_evening_eastern_counts_from_that_eastern_day() -> None:
    # 02:00 UTC on 24 Nov is still 23 Nov in New York.
    deadline = revocation_deadline(datetime(2026, 11, 24, 2, tzinfo=UTC), 1)
    assert deadline.astimezone(ET).date() == date(2026, 11, 24)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
       st.integers(1, 30))
@settings(max_examples=200)
def test_deadline_is_exactly_n_business_days_later(received: datetime, n: int) -> None:
    deadline = revocation_deadline(received, n)
    assert deadline > received
    assert is_business_day(deadline.astimezone(ET).date())
    assert business_days_between(received, deadline) == n
    # One microsecond later is the next day: the deadline is the end of its day.
    assert (deadline + timedelta(microseconds=1)).astimezone(ET).date() > deadline.astimezone(ET).date()
