"""Quiet hours at the recipient's location: federal and state calling windows.

The zone is the identity's known IANA zone; else every zone the phone number may be in (the
send must be inside the window in each of them); with no zone at all, every mainland US zone,
so an unplaceable number is held to the strictest reading rather than to none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from consentgate.core.addresses import phone_timezones, phone_us_state
from consentgate.core.facts import ContactPointFact, IdentityFact
from consentgate.core.policy import LoadedPolicy, QuietHoursSpec, WindowSpec, matches
from consentgate.core.reasons import ReasonCode

UNPLACED_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
SEARCH_LIMIT = timedelta(days=14)


@dataclass(frozen=True)
class Window:
    """One calling window that applies to a send, with the zones it is judged in."""

    code: ReasonCode
    name: str                 # "federal" or a state code
    spec: WindowSpec
    zones: tuple[str, ...]
    # Windows key the caches of every check outside calling hours, several times a check:
    # hashed once here rather than through the policy model's fields on each look-up.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.code, self.name, self.spec, self.zones)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class Closed:
    window: Window
    zone: str
    local: datetime


def recipient_zones(identity: IdentityFact | None, target: ContactPointFact | None) -> tuple[str, ...]:
    if identity is not None and identity.timezone:
        return (identity.timezone,)
    if target is not None and target.kind == "phone" and target.value:
        zones = phone_timezones(target.value)
        if zones:
            return zones
    return UNPLACED_ZONES


def recipient_states(identity: IdentityFact | None, target: ContactPointFact | None) -> frozenset[str]:
    """The identity's known state and the number's area-code state: both apply."""
    states = set()
    if identity is not None and identity.state:
        states.add(identity.state.upper())
    if target is not None and target.kind == "phone" and target.value:
        state = phone_us_state(target.value)
        if state:
            states.add(state)
    return frozenset(states)


def applicable_windows(policy: LoadedPolicy, channel: str, purpose: str, identity: IdentityFact | None,
                       target: ContactPointFact | None, states: frozenset[str] | None = None) -> tuple[Window, ...]:
    """The windows a send must fall in (``states``: ``recipient_states``, when the caller has them)."""
    spec = policy.policy.quiet_hours
    if not (matches(spec.channels, channel) and matches(spec.purposes, purpose)):
        return ()
    zones = recipient_zones(identity, target)
    states = recipient_states(identity, target) if states is None else states
    # One tuple per placement and policy, built once: people placed alike share it.
    key = (policy.version, zones, states)
    windows = _PLACED.get(key)
    if windows is None:
        if len(_PLACED) >= _PLACED_KEPT:
            _PLACED.clear()
        windows = _PLACED[key] = _windows(spec, zones, states)
    return windows


# Placements seen (zones and states, per policy version): a few hundred in practice.
_PLACED: dict[tuple[str, tuple[str, ...], frozenset[str]], tuple[Window, ...]] = {}
_PLACED_KEPT = 4096


def _windows(spec: QuietHoursSpec, zones: tuple[str, ...], states: frozenset[str]) -> tuple[Window, ...]:
    windows = [Window(ReasonCode.QUIET_HOURS, "federal", spec.federal, zones)]
    for state in sorted(states):
        if state in spec.states:
            windows.append(Window(ReasonCode.STATE_RULE, state, spec.states[state], zones))
    return tuple(windows)


@lru_cache(maxsize=16)
def _holidays(year: int) -> holidays.HolidayBase | None:
    """The US federal holidays around ``year``; None for a year the calendar has no rules for."""
    calendar = holidays.country_holidays("US", years=range(year - 1, year + 2), observed=True)
    # Beyond its years (after 2100 today) the package answers with no holidays at all.
    return calendar if calendar.start_year <= year <= calendar.end_year else None


def _day_allowed(spec: WindowSpec, day: date) -> bool:
    if spec.no_sunday and day.weekday() == 6:
        return False
    if not spec.no_holidays:
        return True
    calendar = _holidays(day.year)
    # A year whose holidays are unknown has no day known to be safe: the window stays closed.
    return calendar is not None and day not in calendar


def _open_at(spec: WindowSpec, local: datetime) -> bool:
    return _day_allowed(spec, local.date()) and spec.start <= local.time().replace(tzinfo=None) < spec.end


_REST_OF_MINUTE = timedelta(seconds=59, microseconds=999_999)


@lru_cache(maxsize=1024)
def steady_minute(windows: tuple[Window, ...], minute: datetime) -> bool:
    """Whether each window stays open, or stays closed, through the minute that starts at ``minute``.

    It does when the windows' bounds are whole minutes and no zone changes its offset within the
    minute to one that is not a whole number of minutes: true of every zone since the 1970s, not
    of the local mean times many kept before (Amsterdam was 19 min 32 s ahead of UTC until 1937).
    """
    if any(w.spec.start.second or w.spec.start.microsecond or w.spec.end.second or w.spec.end.microsecond
           for w in windows):
        return False
    for zone in {zone for window in windows for zone in window.zones}:
        tz = ZoneInfo(zone)
        offset = minute.astimezone(tz).utcoffset()
        if offset is None or offset.seconds % 60 or offset.microseconds \
                or (minute + _REST_OF_MINUTE).astimezone(tz).utcoffset() != offset:
            return False
    return True


@lru_cache(maxsize=4096)
def windows_at(windows: tuple[Window, ...], at: datetime) -> tuple[tuple[Closed, ...], datetime | None]:
    """The windows closed at ``at``, and when all of them are next open (``at`` when none is
    closed). Cached: a batch asks this of many people placed alike, at one instant."""
    closed = closed_windows(windows, at)
    return tuple(closed), (next_open(windows, at) if closed else at)


def closed_windows(windows: tuple[Window, ...], at: datetime) -> list[Closed]:
    out = []
    for window in windows:
        for zone in window.zones:
            local = at.astimezone(ZoneInfo(zone))
            if not _open_at(window.spec, local):
                out.append(Closed(window, zone, local))
                break
    return out


def _next_opening(spec: WindowSpec, zone: str, at: datetime) -> datetime:
    """The first instant >= ``at`` at which this window is open in ``zone``."""
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    day = local.date()
    for _ in range(20):
        if _day_allowed(spec, day):
            start = datetime.combine(day, spec.start, tzinfo=tz)
            end = datetime.combine(day, spec.end, tzinfo=tz)
            if local < start:
                return start
            if local < end:
                return local   # open already: at ``at``, or from the start of this later day
        day += timedelta(days=1)
        local = datetime.combine(day, time(0), tzinfo=tz)
    return at + SEARCH_LIMIT


def next_open(windows: tuple[Window, ...], at: datetime) -> datetime | None:
    """The earliest instant >= ``at`` at which every window is open in every zone."""
    candidate = at
    while candidate - at <= SEARCH_LIMIT:
        closed = closed_windows(windows, candidate)
        if not closed:
            return candidate
        later = max(_next_opening(c.window.spec, z, candidate) for c in closed for z in c.window.zones
                    if not _open_at(c.window.spec, candidate.astimezone(ZoneInfo(z))))
        if later <= candidate:
            return None   # no way forward: no next instant rather than a search without end
        candidate = later
    return None
