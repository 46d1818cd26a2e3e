"""Right to erasure that never re-enables contact (GDPR Art. 17, CCPA/CPRA deletion).

Erasing a person blanks every personal value they left in any table, in one transaction. For
every address that had an active revocation or suppression it keeps a tombstone: a keyed hash
of the normalised address, the scope and the dates, kept for the policy's retention period
(47 CFR 64.1200(d)(6): do-not-call requests are honoured for 5 years). The eligibility path
checks tombstones, so re-importing the person does not make them contactable again. The hash
chain covers salted digests of personal values, so it still verifies; the erasure itself is a
chained ledger event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, update
from sqlmodel import Session, col, select

from consentgate.core.facts import IDENTITY_WIDE_SUPPRESSIONS
from consentgate.core.policy import LoadedPolicy, matches
from consentgate.core.tombstones import tombstone_hash
from consentgate.errors import NotFound, ValidationFailed
from consentgate.services.eligibility import PLACED
from consentgate.services.identities import AddressRef, find_by_address, normalise_ref, survivor
from consentgate.services.keys import Actor
from consentgate.services.revocations import REPERMISSION_CLOSED, erased_address, erased_payload
from consentgate.store import chain
from consentgate.store.db import Store
from consentgate.store.models import (
    ConsentEvent,
    ContactPoint,
    DecisionRecord,
    ErasureEvent,
    Identity,
    InboundMessage,
    OutboxMessage,
    Revocation,
    Suppression,
    Tombstone,
)

# Suppression kinds that mean "do not contact this address" and so survive an erasure.
_DNC_SUPPRESSIONS = {"complaint", "dnc_national", "legal_hold", "litigator"}


@dataclass(frozen=True)
class ErasureResult:
    erasure_id: int
    identity_id: int
    erased_identity_ids: list[int]
    contact_points: int
    tombstones: int
    erased_at: datetime


def erase_identity(store: Store, policy: LoadedPolicy, secret: str, target: AddressRef | int,
                   *, law: str, reason: str | None, actor: Actor, now: datetime) -> ErasureResult:
    """Erase a person (by identity id or address) in one transaction, leaving tombstones."""
    if not law.strip():
        raise ValidationFailed.field("law", "name the law the request is made under (e.g. GDPR Art. 17)")
    with store.transaction() as session:
        identity = _find(session, policy, target)
        if identity.erased_at is not None:
            raise NotFound(f"identity {identity.id} was already erased")
        assert identity.id is not None
        ids = [identity.id, *_absorbed(session, identity.id)]
        cps = list(session.exec(select(ContactPoint).where(ContactPoint.identity_id.in_(ids))))  # type: ignore[attr-defined]
        event = ErasureEvent(identity_id=identity.id, requested_by=actor.name, law=law.strip(),
                             reason=reason, erased_at=now, api_key_id=actor.key_id)
        tombstones = _tombstones(session, policy, secret, ids, cps, now)
        event.tombstones = len(tombstones)
        session.add(event)
        session.flush()
        for tombstone in tombstones:
            tombstone.erasure_event_id = event.id
        session.add_all(tombstones)
        session.flush()
        # Chained with the erasure, so that a tombstone removed or narrowed in the database
        # before it expires (the address contactable again) breaks verification.
        event.tombstones_digest = chain.tombstones_digest(tombstones)
        event.tombstones_expire_at = min((t.expires_at for t in tombstones), default=None)
        hashes = {tombstone_hash(secret, cp.kind, cp.value) for cp in cps if cp.value is not None}
        phones = [cp.value for cp in cps if cp.kind == "phone" and cp.value is not None]
        _blank(session, ids, [cp.id for cp in cps if cp.id is not None], phones, now)
        _blank_unknown_decisions(session, hashes)
        chain.seal("erasure_event", event, None)
        chain.append(session, "erasure_event", [event], now)
        return ErasureResult(event.id or 0, identity.id, ids, len(cps), len(tombstones), now)


def _find(session: Session, policy: LoadedPolicy, target: AddressRef | int) -> Identity:
    resolved = normalise_ref(target, policy) if isinstance(target, AddressRef) else target
    if isinstance(resolved, int):
        identity = survivor(session, resolved)
    else:
        found = find_by_address(session, resolved)
        identity = found[0] if found else None
    if identity is None:
        raise NotFound("no such identity")
    return identity


def _absorbed(session: Session, identity_id: int) -> list[int]:
    """Every identity merged (directly or not) into this one."""
    found: list[int] = []
    frontier = [identity_id]
    while frontier:
        rows = session.exec(select(Identity.id).where(col(Identity.merged_into_id).in_(frontier)))
        frontier = [r for r in rows if r is not None and r not in found]
        found.extend(frontier)
    return found


def _tombstones(session: Session, policy: LoadedPolicy, secret: str, ids: list[int],
                cps: list[ContactPoint], now: datetime) -> list[Tombstone]:
    """One tombstone per opted-out or suppressed address and per scope."""
    by_cp = {cp.id: cp for cp in cps if cp.value is not None}
    retention = timedelta(days=round(365.25 * policy.policy.retention.tombstone_years))
    out: list[Tombstone] = []
    revocations = list(session.exec(select(Revocation).where(
        Revocation.identity_id.in_(ids), Revocation.lifted_at.is_(None))))  # type: ignore[union-attr, attr-defined]
    suppressions = list(session.exec(select(Suppression).where(
        Suppression.identity_id.in_(ids), Suppression.lifted_at.is_(None))))  # type: ignore[union-attr, attr-defined]
    for revocation in revocations:
        # An identity-wide revocation covers every address of the person, as the gate applies it;
        # a tombstone is kept for each address a channel of the revocation reaches.
        # A channel without an address (postal) reaches the person: every address of theirs keeps it.
        kinds = {kind for name, spec in policy.channels.items() if matches(revocation.channels, name)
                 for kind in ((spec.kind,) if spec.kind else {cp.kind for cp in by_cp.values()})}
        for cp in (cp for cp in by_cp.values() if cp.kind in kinds):
            out.append(Tombstone(
                address_hash=tombstone_hash(secret, cp.kind, cp.value or ""), kind=cp.kind,
                reason_kind=revocation.source, channels=revocation.channels,
                purposes=revocation.purposes, brands=revocation.brands,
                received_at=revocation.received_at, erased_at=now,
                expires_at=max(revocation.received_at, now) + retention))
    for suppression in suppressions:
        if suppression.kind not in _DNC_SUPPRESSIONS | {"bounce"}:
            continue
        # Legal hold and litigator stop the whole person, however recorded: every address keeps one.
        if suppression.kind in IDENTITY_WIDE_SUPPRESSIONS:
            reached = list(by_cp.values())
        else:
            reached = [by_cp[suppression.contact_point_id]] if suppression.contact_point_id in by_cp else []
        rule = policy.policy.suppressions[suppression.kind]
        out.extend(Tombstone(
            address_hash=tombstone_hash(secret, cp.kind, cp.value or ""), kind=cp.kind,
            reason_kind=suppression.kind, channels=list(rule.channels), purposes=list(rule.purposes),
            brands=["*"], received_at=suppression.created_at, erased_at=now,
            expires_at=max(suppression.created_at, now) + retention) for cp in reached)
    return out


def _blank(session: Session, ids: list[int], cp_ids: list[int], phones: list[str], now: datetime) -> None:
    """Remove every personal value the person left behind, in every table."""
    session.execute(update(Identity).where(Identity.id.in_(ids)).values(  # type: ignore[union-attr]
        external_id=None, name=None, timezone=None, state=None, country=None, account_domain=None,
        status_at_last_touch=None, erased_at=now, updated_at=now))
    if cp_ids:
        session.execute(update(ContactPoint).where(ContactPoint.id.in_(cp_ids)).values(  # type: ignore[union-attr]
            value=None, erased_at=now))
    session.execute(update(ConsentEvent).where(ConsentEvent.identity_id.in_(ids)).values(  # type: ignore[attr-defined]
        ip=None, user_agent=None, pii_salt=None, erased_at=now))
    # Every SMS the person sent: those that opted them out or in, and any other from their numbers.
    message_ids = {m for m in session.exec(select(Revocation.inbound_message_id).where(
        Revocation.identity_id.in_(ids), Revocation.inbound_message_id.is_not(None)))}  # type: ignore[attr-defined, union-attr]
    message_ids |= {m for m in session.exec(select(ConsentEvent.inbound_message_id).where(
        ConsentEvent.identity_id.in_(ids), ConsentEvent.inbound_message_id.is_not(None)))}  # type: ignore[attr-defined, union-attr]
    if phones:
        message_ids |= set(session.exec(select(InboundMessage.id).where(
            InboundMessage.from_number.in_(phones))))  # type: ignore[union-attr]
    # A reason is personal from chain scheme 2 on (before, it is chained content and stays),
    # except the one the gate itself writes.
    personal_reason = (col(Revocation.chain_scheme) > 1) & (col(Revocation.reason) != REPERMISSION_CLOSED)
    session.execute(update(Revocation).where(col(Revocation.identity_id).in_(ids)).values(
        raw_text=None, pii_salt=None, erased_at=now,
        reason=case((personal_reason, None), else_=col(Revocation.reason))))
    session.execute(update(Suppression).where(col(Suppression.identity_id).in_(ids)).values(
        note=None, pii_salt=None, erased_at=now))
    # Opt-outs already delivered downstream (or cancelled: that sender unsubscribed) keep no
    # address; those still to deliver keep it until they are (the sender must still learn of the
    # opt-out), then lose it (``propagation``).
    revocation_ids = select(Revocation.id).where(Revocation.identity_id.in_(ids))  # type: ignore[union-attr]
    for message in session.exec(select(OutboxMessage).where(
            OutboxMessage.revocation_id.in_(revocation_ids),  # type: ignore[attr-defined]
            col(OutboxMessage.status).in_(("acknowledged", "cancelled")))):
        message.payload = erased_payload(message.payload)
        session.add(message)
    if message_ids:
        session.execute(update(InboundMessage).where(InboundMessage.id.in_(message_ids)).values(  # type: ignore[union-attr]
            from_number=None, to_number=None, text=None, raw=None, erased_at=now))
    # Decisions keep their outcome and reasons; the request loses the address it named.
    _blank_requests(session, session.exec(select(DecisionRecord).where(DecisionRecord.identity_id.in_(ids))))  # type: ignore[union-attr]


def _blank_unknown_decisions(session: Session, hashes: set[str]) -> None:
    """Decisions made about one of the person's addresses before anyone had it lose it too."""
    if hashes:
        _blank_requests(session, session.exec(select(DecisionRecord).where(
            DecisionRecord.address_hash.in_(hashes), DecisionRecord.identity_id.is_(None))))  # type: ignore[union-attr]


def _blank_requests(session: Session, decisions: Iterable[DecisionRecord]) -> None:
    for decision in decisions:
        request = dict(decision.request or {})
        if isinstance(request.get("address"), dict):
            request["address"] = erased_address(request["address"])
        # Where the person was is theirs too: in the request, and in the reasons' details (the
        # recipient's zone and local time, a state's window, their company).
        request.pop(PLACED, None)
        decision.request = request
        decision.reasons = [_erased_reason(reason) for reason in decision.reasons or []]
        decision.address_hash = None
        session.add(decision)


# Details of a decision's reasons that say nothing of where or who the person is.
_IMPERSONAL = frozenset({"code", "revocation_id", "consent_id", "received_at", "source", "channels", "purposes",
                         "cap", "max", "counted", "per", "required", "touches", "touches_counted", "segment",
                         "consent_type", "suppression_id", "kind"})


def _erased_reason(reason: Any) -> Any:
    if not isinstance(reason, dict):
        return reason
    kept = {k: v for k, v in reason.items() if k in _IMPERSONAL}
    if reason.get("window") == "federal":
        kept["window"] = "federal"
    kept["message"] = f"{reason.get('code', 'denied')} (details erased with the person)"
    return kept


def hash_unknown_decisions(store: Store, secret: str, chunk: int = 5_000) -> int:
    """Give the decisions logged before migration 0006 about an address nobody had the keyed hash
    newer ones carry, so that erasing whoever has that address later finds them too. A one-off
    after upgrading (``consentgate db hash-decisions``), in small transactions; returns how many."""
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    todo = (select(table.c.id, table.c.request)
            .where(table.c.identity_id.is_(None), table.c.address_hash.is_(None), table.c.id > bindparam("after"))
            .order_by(table.c.id).limit(chunk))
    give = update(table).where(table.c.id == bindparam("decision")).values(address_hash=bindparam("hashed"))
    after, hashed = 0, 0
    while True:
        with store.transaction() as session:
            rows = session.execute(todo, {"after": after}).all()
            if not rows:
                return hashed
            found = [{"decision": row.id, "hashed": tombstone_hash(secret, address["kind"], address["value"])}
                     for row in rows if isinstance(address := (row.request or {}).get("address"), dict)
                     and address.get("kind") and address.get("value")]
            if found:
                session.execute(give, found)
            hashed, after = hashed + len(found), rows[-1].id


def purge_expired_tombstones(store: Store, now: datetime) -> int:
    """Delete tombstones past their retention period; returns how many."""
    with store.transaction() as session:
        result = session.execute(delete(Tombstone).where(col(Tombstone.expires_at) <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
