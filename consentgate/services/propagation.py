"""Telling downstream senders about every revocation, until each one acknowledges.

The outbox row is written in the revocation's own transaction, so no revocation can be
acknowledged to the person and forgotten downstream. Delivery is an HMAC-signed POST; a 2xx
answer is the acknowledgement; anything else is retried with exponential backoff.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from sqlmodel import Session, col, select, update

from consentgate.core.business_days import business_days_between
from consentgate.core.policy import LoadedPolicy
from consentgate.core.signatures import sign_outbound
from consentgate.errors import NotFound
from consentgate.services.revocations import erased_payload
from consentgate.services.schemas import Request
from consentgate.store.db import Store
from consentgate.store.models import OutboxMessage, Revocation, Subscription

SIGNATURE_HEADER = "X-Consentgate-Signature"
MAX_BACKOFF = timedelta(hours=6)
FIRST_RETRY = timedelta(seconds=30)


class SubscriptionIn(Request):
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(max_length=2000)
    secret: str | None = Field(None, min_length=16, max_length=200)
    event_types: list[str] = Field(default_factory=lambda: ["revocation.created"])

    @field_validator("url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http or https URL")
        return value


def create_subscription(session: Session, item: SubscriptionIn, now: datetime) -> Subscription:
    sub = Subscription(name=item.name, url=item.url, secret=item.secret or secrets.token_urlsafe(32),
                       event_types=item.event_types, active=True, created_at=now)
    session.add(sub)
    session.flush()
    return sub


def deactivate_subscription(session: Session, subscription_id: int, now: datetime) -> None:
    """Stop telling this sender of opt-outs. What it had still to hear is cancelled: it no longer
    sends on anyone's behalf, retrying it would go on for ever, and a revocation's SLA is then
    met by the senders still subscribed, unless its deadline had passed before (it was missed,
    and stays so). A cancelled message keeps when it was cancelled as its ``next_attempt_at`` (no
    attempt follows), and of an erased person no address."""
    sub = session.get(Subscription, subscription_id)
    if sub is None:
        raise NotFound(f"no subscription {subscription_id}")
    sub.active = False
    session.add(sub)
    for message in session.exec(select(OutboxMessage).where(
            OutboxMessage.subscription_id == subscription_id, OutboxMessage.status == "pending")):
        message.status, message.next_attempt_at = "cancelled", now
        message.last_error = "cancelled: the sender unsubscribed"
        _settled(session, message)


def _settled(session: Session, message: OutboxMessage) -> None:
    """A message no longer waiting to be delivered: an erased person's address was kept only so
    that the opt-out reached the sender, and goes now."""
    revocation = session.get(Revocation, message.revocation_id)
    if revocation is not None and revocation.erased_at is not None:
        message.payload = erased_payload(message.payload)
    session.add(message)


class Poster(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def http_poster(timeout: float = 10.0) -> Poster:
    import httpx

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        return httpx.post(url, content=body, headers=headers, timeout=timeout).status_code

    return post


@dataclass(frozen=True)
class DeliveryRun:
    attempted: int
    acknowledged: int
    failed: int


CLAIM = timedelta(minutes=2)


def _claim(store: Store, message_id: int, now: datetime) -> tuple[str, str, bytes] | None:
    """Take one due message for this run by pushing its next attempt out (a conditional update)."""
    with store.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending",  # type: ignore[arg-type]
                   col(OutboxMessage.next_attempt_at) <= now)
            .values(next_attempt_at=now + CLAIM))
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        message = session.get(OutboxMessage, message_id)
        sub = session.get(Subscription, message.subscription_id) if message else None
        if message is None or sub is None:
            return None
        body = json.dumps(message.payload, sort_keys=True, separators=(",", ":")).encode()
        return sub.url, sub.secret, body


def backoff(attempts: int) -> timedelta:
    # The exponent is capped first: after a week of failures 2**attempts seconds no longer fit a
    # timedelta, and the delivery loop would fail at that message from then on.
    return min(FIRST_RETRY * (2 ** min(max(attempts - 1, 0), _MAX_DOUBLINGS)), MAX_BACKOFF)


_MAX_DOUBLINGS = 20
# A run stops taking messages after this long, well inside the job's lease (5 minutes): another
# instance takes an expired lease, and must not find messages this run is still sending.
RUN_BUDGET = timedelta(minutes=2)


def deliver_due(store: Store, now: datetime, post: Poster, limit: int = 200,
                clock: Callable[[], datetime] | None = None) -> DeliveryRun:
    """Post every due outbox message once; each outcome is committed on its own.

    ``clock`` tells the time as the run goes (default: ``now`` throughout): each message is
    claimed, signed and acknowledged at its own moment, since a run of slow receivers lasts
    minutes, and the run stops taking messages after ``RUN_BUDGET``."""
    clock = clock or (lambda: now)
    with store.transaction(write=False) as session:
        due = [m.id for m in session.exec(select(OutboxMessage).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(col(OutboxMessage.next_attempt_at)).limit(limit)) if m.id is not None]
    counts: Counter[str] = Counter()
    for message_id in due:
        moment = clock()
        if moment - now >= RUN_BUDGET:
            break       # the rest are still due: the next run takes them
        claimed = _claim(store, message_id, moment)
        if claimed is None:
            continue    # another scheduler instance took it: it is delivered once, not twice
        url, secret, body = claimed
        headers = {"Content-Type": "application/json", "User-Agent": "consentgate",
                   SIGNATURE_HEADER: sign_outbound(secret, int(moment.timestamp()), body),
                   "X-Consentgate-Delivery": str(message_id)}
        try:
            status, error = post(url, body, headers), None
        except Exception as exc:  # any network failure is a failed attempt, retried later
            status, error = 0, f"{type(exc).__name__}: {exc}"
        ok = 200 <= status < 300
        now_done = clock()
        with store.transaction() as session:
            message = session.get(OutboxMessage, message_id)
            if message is None or message.status != "pending":
                continue
            message.attempts += 1
            if ok:
                message.status, message.acknowledged_at, message.last_error = "acknowledged", now_done, None
                _settled(session, message)
            else:
                message.last_error = error or f"HTTP {status}"
                message.next_attempt_at = now_done + backoff(message.attempts)
            session.add(message)
        counts["acknowledged" if ok else "failed"] += 1
    return DeliveryRun(sum(counts.values()), counts["acknowledged"], counts["failed"])


def sla_status(revocation: Revocation, messages: list[OutboxMessage], policy: LoadedPolicy,
               now: datetime) -> tuple[str, datetime | None]:
    """met | pending | at_risk | missed, and when the last downstream acknowledged."""
    # Senders unsubscribed meanwhile no longer count, unless they left after the deadline had
    # passed without their acknowledgement: the deadline was missed, whatever happened since.
    left_late = any(m.status == "cancelled" and m.next_attempt_at > revocation.deadline_at for m in messages)
    messages = [m for m in messages if m.status != "cancelled"]
    acked = [m.acknowledged_at for m in messages if m.acknowledged_at is not None]
    done = len(acked) == len(messages)
    if left_late:
        return "missed", (max(acked) if done and acked else None)
    propagated = max(acked) if done and acked else (revocation.effective_at if done else None)
    if done and propagated is not None:
        return ("met" if propagated <= revocation.deadline_at else "missed"), propagated
    if now > revocation.deadline_at:
        return "missed", None
    calendar = policy.policy.revocation.calendar
    left = business_days_between(now, revocation.deadline_at, country=calendar.country, timezone=calendar.timezone)
    return ("at_risk" if left <= policy.policy.revocation.at_risk_business_days else "pending"), None


def sla_summary(store: Store, policy: LoadedPolicy, now: datetime) -> dict[str, Any]:
    """Counts per SLA status over revocations still waiting or recently due (for alerts and metrics)."""
    counts: Counter[str] = Counter()
    with store.transaction(write=False) as session:
        pending_ids = set(session.exec(select(OutboxMessage.revocation_id).where(
            OutboxMessage.status == "pending")).all())
        for revocation in session.exec(select(Revocation).where(col(Revocation.id).in_(pending_ids))):
            messages = list(session.exec(select(OutboxMessage).where(
                OutboxMessage.revocation_id == revocation.id)))
            counts[sla_status(revocation, messages, policy, now)[0]] += 1
    return {status: counts.get(status, 0) for status in ("pending", "at_risk", "missed")}
