"""Fatigue caps and segment cadences on rolling windows over a person's touches.

A touch counts when it was sent, or is reserved and its reservation had not run out when the
question was asked (``EligibilityRequest.asked``): two senders holding reservations are both
counted, so the last slot cannot be taken twice. Whether a reservation is still held is judged
then, never at the instant a send is judged for: a reservation held now may be confirmed before
it runs out, so it counts at later instants too (a send asked about for tomorrow, or the search
for the next allowed instant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from consentgate.core.facts import EligibilityRequest, TouchFact
from consentgate.core.policy import FatigueCap, LoadedPolicy, SegmentCadence, label_in, label_key, matches
from consentgate.core.reasons import ReasonCode


@dataclass(frozen=True)
class Limit:
    code: ReasonCode
    message: str
    next_allowed_at: datetime | None
    data: Mapping[str, Any] = field(default_factory=dict)


def counts(touch: TouchFact, asked: datetime) -> bool:
    if touch.state == "sent":
        return True
    return touch.state == "reserved" and (touch.expires_at is None or touch.expires_at > asked)


def _cap_applies(cap: FatigueCap, request: EligibilityRequest, states: frozenset[str]) -> bool:
    if cap.states is not None and not states & set(cap.states):
        return False
    return (matches(cap.channels, request.channel) and matches(cap.purposes, request.purpose)
            and label_in(cap.programs, request.program or "") and label_in(cap.segments, request.segment or ""))


def _cap_counts(cap: FatigueCap, touch: TouchFact) -> bool:
    return (matches(cap.channels, touch.channel) and matches(cap.purposes, touch.purpose)
            and label_in(cap.programs, touch.program or "") and label_in(cap.segments, touch.segment or ""))


def cap_limits(policy: LoadedPolicy, request: EligibilityRequest, at: datetime, touches: Iterable[TouchFact],
               account_touches: Iterable[TouchFact], states: frozenset[str]) -> list[Limit]:
    """The caps ``request`` would exceed if sent at ``at`` (``request.at``, or a later instant
    when looking for the next allowed one)."""
    own, account = list(touches), list(account_touches)
    asked = request.asked
    out = []
    for cap in policy.policy.fatigue_caps:
        if not _cap_applies(cap, request, states):
            continue
        # Per account: everyone's at the company, and always the person's own (someone with no
        # company, or whose earlier touches were made at another one, is still one of them).
        pool = own if cap.per != "account" else list({t.id: t for t in (*account, *own)}.values())
        times = sorted(t.at for t in pool
                       if counts(t, asked) and _cap_counts(cap, t) and t.at > at - cap.window)
        if len(times) < cap.max:
            continue
        # The slot frees when enough of the oldest counted touches have left the window.
        frees = times[len(times) - cap.max] + cap.window
        out.append(Limit(cap.reason, f"{cap.name}: {len(times)} of at most {cap.max} touches in "
                         f"{_span(cap.window)}" + (f" ({cap.description})" if cap.description else ""),
                         frees, {"cap": cap.name, "max": cap.max, "window": _span(cap.window),
                                 "counted": len(times), "per": cap.per,
                                 **({"source": cap.source} if cap.source else {})}))
    return out


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cadence_windows(cadence: SegmentCadence) -> list[tuple[int, timedelta]]:
    """A cadence as rolling limits: (at most N touches, within a window).

    Stage k allows the touches of stages 1..k before stage k+1 opens (its ``after``); the whole
    playbook, then its pause, bounds the last one. Rolling limits are what make the cadence safe:
    one more touch can only ever delay the next, never bring it forward.
    """
    limits = []
    total = 0
    for index, stage in enumerate(cadence.stages):
        total += stage.touches
        following = cadence.stages[index + 1] if index + 1 < len(cadence.stages) else None
        if following is not None:
            limits.append((total, following.after))
        else:
            span = max(s.after + s.within for s in cadence.stages)
            limits.append((total, span + cadence.pause))
    return limits


def cadence_limit(policy: LoadedPolicy, request: EligibilityRequest, at: datetime,
                  touches: Iterable[TouchFact]) -> Limit | None:
    """The segment's playbook (e.g. no-show: 2 touches in 72 h, one more at day 7, then a pause),
    judged at ``at``."""
    found = policy.cadence(request.segment)
    if found is None:
        return None
    name, cadence = found
    wanted = label_key(request.segment)
    times = sorted(t.at for t in touches if label_key(t.segment) == wanted and counts(t, request.asked))
    frees: datetime | None = None
    for most, window in cadence_windows(cadence):
        inside = [t for t in times if t > at - window]
        if len(inside) >= most:
            leaves = inside[len(inside) - most] + window
            frees = leaves if frees is None else max(frees, leaves)
    if frees is None:
        return None
    return Limit(ReasonCode.SEGMENT_CADENCE, f"segment {name}: the cadence allows no touch now", frees,
                 {"segment": name, "touches_counted": len(times)})


def repermission_touches(policy: LoadedPolicy, touches: Iterable[TouchFact], asked: datetime) -> int:
    purpose = policy.policy.repermission.purpose
    return sum(1 for t in touches if t.purpose == purpose and counts(t, asked))
