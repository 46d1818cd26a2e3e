"""Current consent, derived from the append-only events (never stored, never overwritten)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from consentgate.core.facts import ConsentFact
from consentgate.core.policy import label_key

ConsentKey = tuple[int | None, str, str, str | None]   # contact point (None: the person), channel, purpose, brand


def _order(event: ConsentFact) -> tuple[datetime, datetime, int]:
    # The person's latest statement wins; events recorded later break ties, then ids.
    return (event.captured_at, event.recorded_at, event.id)


def current_consents(events: Iterable[ConsentFact]) -> dict[ConsentKey, ConsentFact]:
    """The latest event per (contact point, channel, purpose, brand), expired or not."""
    latest: dict[ConsentKey, ConsentFact] = {}
    for event in events:
        key = (event.contact_point_id, event.channel, event.purpose, label_key(event.brand))
        held = latest.get(key)
        if held is None or _order(event) > _order(held):
            latest[key] = event
    return latest


def is_expired(event: ConsentFact, at: datetime) -> bool:
    return event.expires_at is not None and event.expires_at <= at
