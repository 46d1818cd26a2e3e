"""Business-day arithmetic for revocation deadlines (47 CFR 64.1200(a)(10), 15 USC 7704(a)(4)).

Both laws count business days: weekends and federal holidays do not count. The ``holidays``
package supplies the calendar with observed dates (a Saturday holiday is observed on the
Friday before, a Sunday one on the Monday after), so no holiday table lives in this code.
A deadline is the end of the Nth business day after the day the request was received, in the
policy's calendar time zone (US Eastern by default): the most generous reading a court would
still accept is the one that protects the person, so the instant is exclusive of the next day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=32)
def _calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=range(year - 1, year + 3), observed=True)


def is_business_day(day: date, country: str = "US") -> bool:
    return day.weekday() < 5 and day not in _calendar(country, day.year)


def add_business_days(start: date, days: int, country: str = "US") -> date:
    """The date ``days`` business days after ``start`` (``start`` itself never counts)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_business_day(current, country):
            remaining -= 1
    return current


def business_days_between(start: datetime, end: datetime, *, country: str = "US",
                          timezone: str = "America/New_York") -> int:
    """Business days from the day of ``start`` to the day of ``end`` (0 for the same day)."""
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    if last <= first:
        return 0
    count, current = 0, first
    while current < last:
        current += timedelta(days=1)
        if is_business_day(current, country):
            count += 1
    return count


def revocation_deadline(received_at: datetime, business_days: int, *, country: str = "US",
                        timezone: str = "America/New_York") -> datetime:
    """The last instant (UTC) of the Nth business day after the day a revocation was received."""
    zone = ZoneInfo(timezone)
    local_day = received_at.astimezone(zone).date()
    last_day = add_business_days(local_day, business_days, country)
    end = datetime.combine(last_day, time(23, 59, 59, 999999), tzinfo=zone)
    return end.astimezone(UTC)
