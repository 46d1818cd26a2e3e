"""The identity directory: upsert by any key, read a person's current state and timeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consentgate.core.addresses import Address, companies_of, normalise_domain, normalise_email, normalise_phone
from consentgate.core.consent import current_consents, is_expired
from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import as_utc, iso_z
from consentgate.errors import NotFound, ValidationFailed
from consentgate.services.identities import ensure_contact_point, find_by_address, identity_group, survivor
from consentgate.services.keys import Actor
from consentgate.services.merge import merge_all
from consentgate.services.schemas import Attributes, IdentityIn, utc
from consentgate.store.facts import consent_fact
from consentgate.store.models import (
    ConsentEvent,
    ContactPoint,
    DecisionRecord,
    ErasureEvent,
    Identity,
    MergeEvent,
    Revocation,
    Suppression,
    Touch,
)


def _addresses(item: IdentityIn, policy: LoadedPolicy) -> list[Address]:
    spec = policy.policy.identity
    found = []
    if item.email is not None:
        found.append(Address("email", normalise_email(item.email, casefold_local=spec.casefold_email_local_part)))
    if item.phone is not None:
        found.append(Address("phone", normalise_phone(item.phone, default_region=spec.default_region)))
    return found


def upsert_identity(session: Session, item: IdentityIn, policy: LoadedPolicy, actor: Actor | None,
                    now: datetime, prefix: str = "") -> tuple[Identity, bool, list[int]]:
    """Find the person by any key, create them if new, merge when keys name several people.

    Returns the survivor, whether it was created, and the ids absorbed by this call.
    """
    addresses = _addresses(item, policy)
    domain = normalise_domain(item.company_domain) if item.company_domain else None
    if item.last_touch_channel is not None and item.last_touch_channel not in policy.channels:
        raise ValidationFailed.field(prefix + "last_touch_channel", f"unknown channel {item.last_touch_channel!r}")
    if not addresses and item.external_id is None:
        raise ValidationFailed.field(prefix + "email", "give at least one of email, phone or external_id")

    matched: list[Identity] = []
    for address in addresses:
        hit = find_by_address(session, address)
        if hit is not None:
            matched.append(hit[0])
    by_external = _by_external_id(session, item.external_id)
    if by_external is not None:
        matched.append(by_external)

    created = False
    absorbed: list[int] = []
    if matched:
        person, absorbed = merge_all(session, matched, "dedupe", actor, now)
    elif addresses:
        person, _, created = ensure_contact_point(session, addresses[0], policy, now)
    else:
        person, created = _create_with_external_id(session, item.external_id or "", now)

    for address in addresses:
        owner, _, _ = ensure_contact_point(session, address, policy, now, identity=person)
        if owner.id != person.id:
            # Someone created this address concurrently for another record: same person.
            person, more = merge_all(session, [person, owner], "dedupe", actor, now)
            absorbed += more
    if item.external_id is not None and person.external_id is None:
        person = _claim_external_id(session, person, item.external_id, actor, now, absorbed)
    _update_attributes(person, item, domain, now, created)
    session.add(person)
    session.flush()
    return person, created, absorbed


def _by_external_id(session: Session, external_id: str | None) -> Identity | None:
    if external_id is None:
        return None
    row = session.exec(select(Identity).where(Identity.external_id == external_id)).first()
    return survivor(session, row.id) if row is not None and row.id is not None else None


def _create_with_external_id(session: Session, external_id: str, now: datetime) -> tuple[Identity, bool]:
    try:
        with session.begin_nested():
            person = Identity(external_id=external_id, created_at=now, updated_at=now)
            session.add(person)
            session.flush()
        return person, True
    except IntegrityError:
        found = _by_external_id(session, external_id)
        if found is None:
            raise
        return found, False


def _claim_external_id(session: Session, person: Identity, external_id: str, actor: Actor | None,
                       now: datetime, absorbed: list[int]) -> Identity:
    try:
        with session.begin_nested():
            person.external_id = external_id
            session.add(person)
            session.flush()
        return person
    except IntegrityError:
        session.refresh(person)
        other = _by_external_id(session, external_id)
        if other is None:
            raise
        keep, more = merge_all(session, [person, other], "dedupe", actor, now)
        absorbed += more
        return keep


def describe_identity(session: Session, identity_id: int, attributes: Attributes | None, company_domain: str | None,
                      now: datetime) -> None:
    """What a row naming a person by id says of them (attributes, company), as ``upsert_identity``
    applies it to a person found by an address; an unknown id is a 404 naming ``identity_id``."""
    person = survivor(session, identity_id)
    if person is None:
        raise NotFound(f"no identity {identity_id}")
    domain = normalise_domain(company_domain) if company_domain else None
    _update_attributes(person, IdentityIn(attributes=attributes), domain, now)
    session.add(person)


def _update_attributes(person: Identity, item: IdentityIn, domain: str | None, now: datetime,
                       created: bool = False) -> None:
    if item.attributes is not None:
        for name, value in item.attributes.model_dump(exclude_none=True).items():
            setattr(person, name, value)
    if domain is not None:
        person.account_domain = domain
    for name in ("status_at_last_touch", "last_touch_channel"):
        value = getattr(item, name)
        if value is not None:
            setattr(person, name, value)
    if item.last_touch_at is not None:
        person.last_touch_at = utc(item.last_touch_at)
    if item.test_record is not None and item.test_record != person.is_test:
        # Reports leave test records out: a real person made one would vanish from every
        # auditor's export, their consents and opt-outs with them.
        if not created and not person.is_test:
            raise ValidationFailed.field("test_record", "a person already on record as real cannot become a "
                                         "test record")
        person.is_test = item.test_record
    person.updated_at = now


def require_identity(session: Session, identity_id: int) -> Identity:
    person = survivor(session, identity_id)
    if person is None:
        raise NotFound(f"no identity {identity_id}")
    return person


def identity_summary(session: Session, person: Identity) -> dict[str, Any]:
    assert person.id is not None
    cps = session.exec(select(ContactPoint).where(ContactPoint.identity_id == person.id)
                       .order_by(col(ContactPoint.id))).all()
    return {
        "identity_id": person.id,
        "contact_points": [{"kind": cp.kind, "value": cp.value} for cp in cps if cp.value is not None],
        "account_domain": person.account_domain,
        "merged_identity_ids": identity_group(session, person.id)[1:],
    }


def identity_view(session: Session, person: Identity, now: datetime,
                  free_mail: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Everything a writer or auditor needs to see of a person right now (``free_mail``: the
    policy's free-mail domains, which are nobody's company)."""
    assert person.id is not None
    group = identity_group(session, person.id)
    cps = session.exec(select(ContactPoint).where(ContactPoint.identity_id == person.id)
                       .order_by(col(ContactPoint.id))).all()
    by_cp = {cp.id: cp for cp in cps}
    events = session.exec(select(ConsentEvent).where(col(ConsentEvent.identity_id).in_(group))).all()
    current = current_consents(consent_fact(e) for e in events)
    revocations = session.exec(select(Revocation).where(
        col(Revocation.identity_id).in_(group), col(Revocation.lifted_at).is_(None))
        .order_by(col(Revocation.id))).all()
    account_revocations: Sequence[Revocation] = ()
    # Every company the person is at, as the gate sees it: their account's, and their work emails'.
    companies = companies_of(person.account_domain, cps, free_mail)
    if companies:
        account_revocations = session.exec(select(Revocation).where(
            Revocation.scope == "account", col(Revocation.account_domain).in_(companies),
            col(Revocation.lifted_at).is_(None), col(Revocation.identity_id).not_in(group))
            .order_by(col(Revocation.id))).all()
    suppressions = session.exec(select(Suppression).where(
        col(Suppression.identity_id).in_(group), col(Suppression.lifted_at).is_(None))
        .order_by(col(Suppression.id))).all()
    return {
        **identity_summary(session, person),
        "external_id": person.external_id,
        "attributes": {"timezone": person.timezone, "state": person.state, "country": person.country,
                       "name": person.name},
        "status_at_last_touch": person.status_at_last_touch,
        "last_touch_channel": person.last_touch_channel,
        "last_touch_at": iso_z(person.last_touch_at),
        "test_record": person.is_test,
        "erased": person.erased_at is not None,
        "erased_at": iso_z(person.erased_at),
        "created_at": iso_z(person.created_at),
        "contact_points": [{"id": cp.id, "kind": cp.kind, "value": cp.value, "status": cp.status,
                            "erased": cp.erased_at is not None} for cp in cps],
        "consents": [
            {"consent_id": c.id,
             "contact_point": _address(by_cp.get(c.contact_point_id)),
             "channel": c.channel, "purpose": c.purpose, "brand": c.brand, "consent_type": c.consent_type,
             "captured_at": iso_z(c.captured_at), "source": c.source, "proof_uri": c.proof_uri,
             "expires_at": iso_z(c.expires_at), "status": "expired" if is_expired(c, now) else "active"}
            for c in sorted(current.values(), key=lambda c: c.id)
        ],
        "revocations": [revocation_view(r, by_cp) for r in [*revocations, *account_revocations]],
        "suppressions": [
            {"suppression_id": s.id, "kind": s.kind, "contact_point": _address(by_cp.get(s.contact_point_id)),
             "since": iso_z(s.since), "created_at": iso_z(s.created_at)}
            for s in suppressions
        ],
    }


def _address(cp: ContactPoint | None) -> dict[str, Any] | None:
    if cp is None:
        return None
    return {"kind": cp.kind, "value": cp.value}


def revocation_view(r: Revocation, by_cp: dict[int | None, ContactPoint]) -> dict[str, Any]:
    return {"revocation_id": r.id, "scope": r.scope, "account_domain": r.account_domain,
            "channels": r.channels, "purposes": r.purposes, "brands": r.brands, "source": r.source,
            "contact_point": _address(by_cp.get(r.contact_point_id)),
            "received_at": iso_z(r.received_at), "effective_at": iso_z(r.effective_at),
            "deadline_at": iso_z(r.deadline_at)}


def timeline(session: Session, person: Identity, limit: int | None = None,
             after: TimelineCursor | None = None) -> tuple[list[dict[str, Any]], TimelineCursor | None]:
    """Every event of a person and everyone merged into them, oldest first; or, with ``limit``,
    at most that many after ``after``, and the cursor the next page starts from (None: no more).

    Each kind of event is read with its own query, dated by its own column; a page loads at most
    ``limit`` + 1 rows of each kind past the cursor (the database sorts them), so a person with
    years of decisions is loaded a page at a time rather than whole.
    """
    assert person.id is not None
    group = identity_group(session, person.id)
    found: list[tuple[datetime, str, int, dict[str, Any]]] = []
    for kind, model, dated, owner, show in _TIMELINE:
        query = select(model).where(col(owner).in_(group))
        if after is not None:
            query = query.where(_past(after, kind, col(dated), col(model.id)))
        if limit is not None:
            query = query.order_by(col(dated), col(model.id)).limit(limit + 1)
        for row in session.exec(query):
            found.append((getattr(row, dated.key), kind, row.id, {"type": kind, **show(row)}))
    found.sort(key=lambda event: event[:3])
    page = found if limit is None else found[:limit]
    events = [{"at": at, **event} for at, _, _, event in page]
    more = limit is not None and len(found) > limit
    return events, (TimelineCursor(*page[-1][:3]) if more else None)


class TimelineCursor(NamedTuple):
    """Where a page of a timeline ended: the last event's date, kind and row id."""

    at: datetime
    kind: str
    row_id: int

    def encode(self) -> str:
        return f"{iso_z(self.at)}|{self.kind}|{self.row_id}"

    @classmethod
    def decode(cls, text: str) -> TimelineCursor:
        try:
            at, kind, row_id = text.split("|")
            return cls(as_utc(datetime.fromisoformat(at.replace("Z", "+00:00"))), kind, int(row_id))
        except (ValueError, TypeError):
            raise ValidationFailed.field("after", "not a cursor this timeline gave (its 'next')") from None


def _past(cursor: TimelineCursor, kind: str, dated: Any, row_id: Any) -> Any:
    """Events of ``kind`` that sort after ``cursor`` (by date, then kind, then row id)."""
    if kind > cursor.kind:
        return dated >= cursor.at
    if kind < cursor.kind:
        return dated > cursor.at
    return or_(dated > cursor.at, and_(dated == cursor.at, row_id > cursor.row_id))


_TIMELINE: tuple[tuple[str, Any, Any, Any, Callable[[Any], dict[str, Any]]], ...] = (
    ("identity_created", Identity, Identity.created_at, Identity.id, lambda i: {"identity_id": i.id}),
    ("contact_point_added", ContactPoint, ContactPoint.created_at, ContactPoint.identity_id,
     lambda cp: {"contact_point_id": cp.id, "kind": cp.kind, "value": cp.value}),
    ("consent", ConsentEvent, ConsentEvent.recorded_at, ConsentEvent.identity_id,
     lambda c: {"consent_id": c.id, "channel": c.channel, "purpose": c.purpose, "consent_type": c.consent_type,
                "captured_at": c.captured_at, "source": c.source, "proof_uri": c.proof_uri, "brand": c.brand}),
    ("revocation", Revocation, Revocation.received_at, Revocation.identity_id,
     lambda r: {"revocation_id": r.id, "channels": r.channels, "purposes": r.purposes, "brands": r.brands,
                "scope": r.scope, "source": r.source, "raw_text": r.raw_text, "effective_at": r.effective_at,
                "deadline_at": r.deadline_at, "lifted_at": r.lifted_at}),
    ("suppression", Suppression, Suppression.created_at, Suppression.identity_id,
     lambda s: {"suppression_id": s.id, "kind": s.kind, "since": s.since}),
    ("merge", MergeEvent, MergeEvent.created_at, MergeEvent.survivor_id,
     lambda m: {"merge_id": m.id, "survivor_id": m.survivor_id, "absorbed_id": m.absorbed_id, "reason": m.reason}),
    ("touch", Touch, Touch.at, Touch.identity_id,
     lambda t: {"touch_id": t.id, "channel": t.channel, "purpose": t.purpose, "program": t.program,
                "segment": t.segment, "campaign": t.campaign, "state": t.state}),
    ("decision", DecisionRecord, DecisionRecord.decided_at, DecisionRecord.identity_id,
     lambda d: {"decision_id": d.id, "channel": d.channel, "purpose": d.purpose, "allowed": d.allowed,
                "codes": d.codes.split(",") if d.codes else []}),
    ("erasure", ErasureEvent, ErasureEvent.erased_at, ErasureEvent.identity_id,
     lambda e: {"erasure_id": e.id, "law": e.law, "requested_by": e.requested_by}),
)
