"""Revocations (the person's "do not contact me") and suppressions (facts about an address).

A revocation is effective from the transaction that writes it: the gate reads the ledger, so
the next eligibility call after the commit denies. Its deadline is the legal outer bound for
downstream senders (N business days, policy), which the SLA report and the outbox track.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlmodel import Session, col, select

from consentgate.core.addresses import Address, company_domain_of
from consentgate.core.business_days import revocation_deadline
from consentgate.core.policy import WILDCARD, LoadedPolicy
from consentgate.core.timefmt import iso_z
from consentgate.errors import ValidationFailed
from consentgate.services.identities import ensure_addresses, resolve_for_write
from consentgate.services.keys import Actor
from consentgate.services.schemas import CLOCK_SKEW, RevocationIn, SuppressionIn, utc
from consentgate.store import chain
from consentgate.store.bulk import binder, draw_ids, insert_rows
from consentgate.store.models import (
    ContactPoint,
    Identity,
    OutboxMessage,
    Revocation,
    Subscription,
    Suppression,
    Touch,
)

# What a suppression says about the address itself (the contact point's status).
_STATUS_FOR_KIND = {"bounce": "bounced", "complaint": "complained", "reassigned": "reassigned"}
REVOCATION_EVENT = "revocation.created"


def deadline_for(policy: LoadedPolicy, channels: list[str], received_at: datetime) -> datetime:
    """The earliest deadline among the channels a revocation names (the strictest law wins)."""
    calendar = policy.policy.revocation.calendar
    named = list(policy.channels) if WILDCARD in channels else channels
    days = min(policy.deadline_business_days(c) for c in named)
    return revocation_deadline(received_at, days, country=calendar.country, timezone=calendar.timezone)


def _check_lists(item: RevocationIn, policy: LoadedPolicy, prefix: str) -> None:
    for name, known in (("channels", set(policy.channels)), ("purposes", set(policy.policy.purposes))):
        values: list[str] = getattr(item, name)
        unknown = [v for v in values if v != WILDCARD and v not in known]
        if unknown:
            raise ValidationFailed.field(prefix + name, f"unknown {name} {unknown}; the policy has {sorted(known)}")


def write_revocation(session: Session, item: RevocationIn, policy: LoadedPolicy, actor: Actor | None,
                     now: datetime, *, prefix: str = "", inbound_message_id: int | None = None,
                     contact_point: ContactPoint | None = None, identity: Identity | None = None,
                     ) -> Revocation:
    """Record a revocation in the caller's transaction, with its outbox rows and chain link."""
    _check_lists(item, policy, prefix)
    received_at = utc(item.received_at) or now
    if received_at > now + CLOCK_SKEW:
        raise ValidationFailed.field(prefix + "received_at", "is in the future")
    # A sender's clock a little ahead of ours must not cost the person their opt-out.
    received_at = min(received_at, now)
    if identity is None:
        identity, contact_point = resolve_for_write(session, item.ref(), policy, now, prefix)
    assert identity.id is not None
    account_domain = None
    if item.scope == "account":
        # "Nobody at my company" names the company of the address it came through: a person
        # merged with someone at another company is at both, and the survivor keeps one of them.
        named = (company_domain_of(contact_point.value, policy.free_mail_domains)
                 if contact_point is not None and contact_point.kind == "email" and contact_point.value else None)
        account_domain = named or identity.account_domain
        if account_domain is None:
            raise ValidationFailed.field(prefix + "scope", "an account-wide revocation needs an identity "
                                         "with a company domain (a work email or company_domain)")
    revocation = Revocation(
        identity_id=identity.id, contact_point_id=contact_point.id if contact_point else None,
        scope=item.scope, account_domain=account_domain, channels=sorted(set(item.channels)),
        purposes=sorted(set(item.purposes)), brands=sorted(set(item.brands)), source=item.source,
        reason=item.reason, raw_text=item.raw_text, inbound_message_id=inbound_message_id,
        received_at=received_at, effective_at=now,
        deadline_at=deadline_for(policy, item.channels, received_at),
        api_key_id=actor.key_id if actor else None,
        attributed_touch_id=_last_touch_before(session, identity.id, item.channels, item.source, received_at),
    )
    chain.seal("revocation", revocation, contact_point.value if contact_point else None)
    session.add(revocation)
    session.flush()
    chain.append(session, "revocation", [revocation], now)
    enqueue_propagation(session, revocation, contact_point, now)
    return revocation


# The reason the re-permission job gives when it closes an unanswered request. The gate wrote
# it, not a person: it is not personal (an erasure keeps it), and the revocation is no opt-out
# (the attribution report leaves it out).
REPERMISSION_CLOSED = "no answer to the re-permission request within the policy's window"
# The channel an opt-out came in on, where its source says: a STOP answers a text, whatever
# channels it stops, and an unsubscribe link an email.
_CAME_BY = {"sms_keyword": "sms", "sms_free_text": "sms", "email_one_click": "email", "email_link": "email"}


def _last_touch_before(session: Session, identity_id: int, channels: list[str], source: str,
                       before: datetime) -> int | None:
    """The touch an opt-out is attributed to: the person's last one on that channel before it
    (the channel it came in on, else any channel it names). A reservation still held counts: the
    sender may be sending it and confirm the send after the reply; one that lapsed never went out."""
    from consentgate.services.identities import identity_group

    # As ``core.caps`` counts a reservation: held until it expires.
    held = (col(Touch.state) == "reserved") & (col(Touch.expires_at).is_(None) | (col(Touch.expires_at) > before))
    query = (select(Touch.id).where(col(Touch.identity_id).in_(identity_group(session, identity_id)),
                                    Touch.at <= before, (col(Touch.state) == "sent") | held)
             .order_by(col(Touch.at).desc(), col(Touch.id).desc()).limit(1))
    if source in _CAME_BY:
        query = query.where(Touch.channel == _CAME_BY[source])
    elif WILDCARD not in channels:
        query = query.where(col(Touch.channel).in_(channels))
    return session.exec(query).first()


def revocation_payload(revocation: Revocation, contact_point: ContactPoint | None) -> dict[str, Any]:
    """What downstream senders are told: enough to suppress the address on their side."""
    return {
        "event": REVOCATION_EVENT,
        "revocation_id": revocation.id,
        "identity_id": revocation.identity_id,
        "address": ({"kind": contact_point.kind, "value": contact_point.value} if contact_point else None),
        "scope": revocation.scope,
        "account_domain": revocation.account_domain,
        "channels": revocation.channels,
        "purposes": revocation.purposes,
        "brands": revocation.brands,
        "source": revocation.source,
        "received_at": iso_z(revocation.received_at),
        "effective_at": iso_z(revocation.effective_at),
        "deadline_at": iso_z(revocation.deadline_at),
    }


def erased_address(address: dict[str, Any]) -> dict[str, Any]:
    """An address as a record keeps it once its person was erased: the value is gone, its kind stays."""
    return {"kind": address.get("kind"), "value": None, "erased": True}


def erased_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``revocation_payload`` once its person was erased."""
    address = payload.get("address")
    return {**payload, "address": erased_address(address)} if isinstance(address, dict) else payload


def enqueue_propagation(session: Session, revocation: Revocation, contact_point: ContactPoint | None,
                        now: datetime) -> int:
    """One outbox row per active downstream subscription, in the revocation's transaction."""
    subscriptions = session.exec(select(Subscription).where(Subscription.active == True)).all()  # noqa: E712
    payload = revocation_payload(revocation, contact_point)
    count = 0
    for sub in subscriptions:
        if sub.event_types and REVOCATION_EVENT not in sub.event_types and WILDCARD not in sub.event_types:
            continue
        assert revocation.id is not None and sub.id is not None
        session.add(OutboxMessage(revocation_id=revocation.id, subscription_id=sub.id,
                                  event_type=REVOCATION_EVENT, payload=payload, status="pending",
                                  next_attempt_at=now, created_at=now))
        count += 1
    return count


def check_suppression_address(kind: str, address_kind: str | None, prefix: str = "") -> None:
    """A suppression of ``kind`` on an address of ``address_kind`` (None: a whole person)."""
    if address_kind is None and kind not in ("legal_hold", "litigator"):
        raise ValidationFailed.field(prefix + "identity_id",
                                     f"a {kind} suppression names an address: give email or phone")
    if address_kind is not None and kind in ("bounce", "complaint") and address_kind != "email":
        raise ValidationFailed.field(prefix + "phone", f"a {kind} suppression is for an email address")
    if address_kind is not None and kind in ("dnc_national", "reassigned") and address_kind != "phone":
        raise ValidationFailed.field(prefix + "email", f"a {kind} suppression is for a phone number")


def write_suppressions(conn: Connection, items: Sequence[tuple[SuppressionIn, Address]], policy: LoadedPolicy,
                       now: datetime, *, source: str) -> None:
    """``write_suppression`` for many checked suppressions of addresses, in a few statements: the
    people behind new addresses created in bulk, the suppressions inserted and chained, each
    address's status set as the last of its suppressions leaves it."""
    places = ensure_addresses(conn, (address for _, address in items), policy, now)
    table = Suppression.__table__  # type: ignore[attr-defined]
    ids = draw_ids(conn, table, len(items))
    names = [column.name for column in table.columns]
    rows, hashed = [], []
    status: dict[int, str] = {}
    for row_id, (item, address) in zip(ids, items, strict=True):
        cp_id, identity_id = places[address]
        # The row as the ORM would hold it, so that it seals and hashes as one written alone does.
        row = SimpleNamespace(**{**dict.fromkeys(names), "id": row_id, "identity_id": identity_id,
                                 "contact_point_id": cp_id, "kind": item.kind, "since": _since(item, now),
                                 "note": item.note, "source": source, "created_at": now, "pii_digest": ""})
        chain.seal("suppression", row, address.value)
        rows.append(row)
        hashed.append((row_id, chain.content_hash("suppression", row)))
        if item.kind in _STATUS_FOR_KIND:
            status[cp_id] = _STATUS_FOR_KIND[item.kind]
    convert = [binder(conn.dialect, table, name) for name in names]
    insert_rows(conn, table, names, [tuple(f(value) if f and value is not None else value
                                           for f, value in zip(convert, (getattr(r, n) for n in names), strict=True))
                                     for r in rows])
    if status:
        cps = ContactPoint.__table__  # type: ignore[attr-defined]
        conn.execute(update(cps).where(cps.c.id == bindparam("cp")).values(status=bindparam("new_status")),
                     [{"cp": cp_id, "new_status": value} for cp_id, value in status.items()])
    chain.append_hashes(conn, "suppression", hashed, now)


def _since(item: SuppressionIn, now: datetime) -> datetime | None:
    """A reassigned number without a date was reassigned when we learnt of it."""
    since = utc(item.since)
    return now if item.kind == "reassigned" and since is None else since


def write_suppression(session: Session, item: SuppressionIn, policy: LoadedPolicy, actor: Actor | None,
                      now: datetime, *, prefix: str = "", source: str = "api") -> Suppression:
    since = _since(item, now)
    identity, cp = resolve_for_write(session, item.ref(), policy, now, prefix)
    assert identity.id is not None
    check_suppression_address(item.kind, cp.kind if cp is not None else None, prefix)
    suppression = Suppression(identity_id=identity.id, contact_point_id=cp.id if cp else None,
                              kind=item.kind, since=since, note=item.note, source=source, created_at=now,
                              api_key_id=actor.key_id if actor else None)
    chain.seal("suppression", suppression, cp.value if cp else None)
    session.add(suppression)
    if cp is not None and item.kind in _STATUS_FOR_KIND:
        cp.status = _STATUS_FOR_KIND[item.kind]
        session.add(cp)
    session.flush()
    chain.append(session, "suppression", [suppression], now)
    return suppression


def revocation_answer(revocation: Revocation) -> dict[str, Any]:
    return {"revocation_id": revocation.id, "identity_id": revocation.identity_id,
            "effective_at": iso_z(revocation.effective_at), "deadline_at": iso_z(revocation.deadline_at),
            "received_at": iso_z(revocation.received_at)}


def suppression_answer(suppression: Suppression) -> dict[str, Any]:
    return {"suppression_id": suppression.id, "identity_id": suppression.identity_id,
            "kind": suppression.kind, "since": iso_z(suppression.since),
            "created_at": iso_z(suppression.created_at)}
