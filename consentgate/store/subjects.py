"""Loading everything the gate knows about one person, as plain facts for ``decide()``.

``as_of`` loads the ledger as it stood at an instant (rows written later are left out, lifts
made later are undone), so a logged decision can be replayed against the data it was made from.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from consentgate.core.facts import RevocationFact, Subject, SuppressionFact, TouchFact
from consentgate.core.policy import LoadedPolicy
from consentgate.core.tombstones import tombstone_hash
from consentgate.store.facts import (
    consent_fact,
    contact_point_fact,
    identity_fact,
    revocation_fact,
    suppression_fact,
    touch_fact,
)
from consentgate.store.models import (
    ConsentEvent,
    ContactPoint,
    DncNumber,
    Identity,
    Revocation,
    Suppression,
    Tombstone,
    Touch,
)

# DNC registry entries are not ledger rows; they get ids that cannot clash with suppressions.
_DNC_FACT_ID = 0


def lookback(policy: LoadedPolicy) -> timedelta:
    """How far back touches can matter to any cap, cadence or re-permission rule."""
    spans = [cap.window for cap in policy.policy.fatigue_caps]
    for cadence in policy.policy.segment_cadences.values():
        spans.append(sum((s.after + s.within for s in cadence.stages), timedelta(0)) + cadence.pause)
    spans.append(policy.policy.repermission.window)
    return max(spans, default=timedelta(days=1)) + timedelta(days=1)


def _t(model: Any) -> Any:
    return model.__table__


def _rows(session: Session, statement: Any) -> list[Any]:
    # Straight to the connection: Core statements need none of the ORM session's machinery.
    return list(session.connection().execute(statement))


def group_ids(session: Session, identity_id: int) -> list[int]:
    absorbed = session.exec(select(Identity.id).where(Identity.merged_into_id == identity_id)).all()
    return [identity_id, *[i for i in absorbed if i is not None]]


def load_subject(session: Session, policy: LoadedPolicy, secret: str, *, identity: Identity | None,
                 target: ContactPoint | None, at: datetime, as_of: datetime | None = None,
                 exclude_decision: int | None = None, lock: bool = False) -> Subject:
    """The facts about ``identity`` (None: unknown) for a touch through ``target``.

    With ``lock`` the identity row is locked (PostgreSQL ``FOR UPDATE``) so that concurrent
    reservations for one person are serialised; SQLite writers are serialised already.
    """
    if identity is None or identity.id is None:
        return Subject(identity=None, target=contact_point_fact(target) if target else None)
    if lock and session.get_bind().dialect.name == "postgresql":
        session.exec(select(Identity.id).where(Identity.id == identity.id).with_for_update())
    cutoff = as_of
    # The person and everyone merged into them, as a subquery: no round trip of its own. Rows are
    # read through Core (plain tuples with named fields), which the fact builders accept as they are.
    ids = select(Identity.id).where(or_(Identity.id == identity.id, Identity.merged_into_id == identity.id))
    cps = _rows(session, select(_t(ContactPoint)).where(ContactPoint.identity_id == identity.id))

    consent_q = select(_t(ConsentEvent)).where(col(ConsentEvent.identity_id).in_(ids))
    if target is not None:
        consent_q = consent_q.where(ConsentEvent.contact_point_id == target.id)
    if cutoff is not None:
        consent_q = consent_q.where(ConsentEvent.recorded_at <= cutoff)
    consents = [consent_fact(row) for row in _rows(session, consent_q)]

    scope = col(Revocation.identity_id).in_(ids)
    if identity.account_domain:
        scope = or_(scope, (Revocation.scope == "account") & (Revocation.account_domain == identity.account_domain))
    revocation_q = select(_t(Revocation)).where(scope)
    if cutoff is not None:
        revocation_q = revocation_q.where(Revocation.effective_at <= cutoff)
    revocations = [_as_of(revocation_fact(row), cutoff) for row in _rows(session, revocation_q)]
    revocations += _tombstones(session, secret, identity.id, cps, cutoff)

    suppression_q = select(_t(Suppression)).where(col(Suppression.identity_id).in_(ids))
    if cutoff is not None:
        suppression_q = suppression_q.where(Suppression.created_at <= cutoff)
    suppressions = [suppression_fact(row) for row in _rows(session, suppression_q)]
    suppressions += _national_dnc(session, identity.id, target, cutoff)

    since = at - lookback(policy)
    touch_q = select(_t(Touch)).where(col(Touch.identity_id).in_(ids), Touch.at >= since)
    if cutoff is not None:
        touch_q = touch_q.where(Touch.created_at <= cutoff)
        if exclude_decision is not None:
            touch_q = touch_q.where(or_(col(Touch.decision_id).is_(None), Touch.decision_id != exclude_decision))
    touches = tuple(_touch_as_of(touch_fact(row), row, cutoff) for row in _rows(session, touch_q))
    account_touches: tuple[TouchFact, ...] = ()
    if identity.account_domain and any(cap.per == "account" for cap in policy.policy.fatigue_caps):
        account_q = select(_t(Touch)).where(Touch.account_domain == identity.account_domain, Touch.at >= since)
        if cutoff is not None:
            account_q = account_q.where(Touch.created_at <= cutoff)
        account_touches = tuple(touch_fact(row) for row in _rows(session, account_q))

    return Subject(
        identity=identity_fact(identity),
        target=contact_point_fact(target) if target is not None else None,
        contact_points=tuple(contact_point_fact(cp) for cp in cps if cp.value is not None),
        consents=tuple(consents),
        revocations=tuple(revocations),
        suppressions=tuple(suppressions),
        touches=touches,
        account_touches=account_touches,
    )


def _touch_as_of(fact: TouchFact, row: Touch, cutoff: datetime | None) -> TouchFact:
    """A touch's state at ``cutoff``: a later send was still a reservation then.

    Releases carry no time of their own, so a reservation released or expired later is taken
    as still held at ``cutoff`` when its time to live had not run out: the reading that counts
    more touches, never fewer.
    """
    if cutoff is None:
        return fact
    if row.state == "sent" and row.sent_at is not None and row.sent_at > cutoff:
        return replace(fact, state="reserved", at=row.reserved_at or fact.at)
    if row.state in ("released", "expired") and row.expires_at is not None and row.expires_at > cutoff:
        return replace(fact, state="reserved")
    return fact


def _as_of(fact: RevocationFact, cutoff: datetime | None) -> RevocationFact:
    """A revocation lifted after ``cutoff`` was still in force at ``cutoff``."""
    if cutoff is None or fact.lifted_at is None or fact.lifted_at <= cutoff:
        return fact
    return replace(fact, lifted_at=None)


def _tombstones(session: Session, secret: str, identity_id: int, cps: list[ContactPoint],
                cutoff: datetime | None) -> list[RevocationFact]:
    """Opt-outs an erased person left behind, recognised by the keyed hash of an address."""
    by_hash = {tombstone_hash(secret, cp.kind, cp.value): cp for cp in cps if cp.value is not None}
    if not by_hash:
        return []
    query = select(_t(Tombstone)).where(col(Tombstone.address_hash).in_(list(by_hash)),
                                        col(Tombstone.lifted_at).is_(None))
    if cutoff is not None:
        query = query.where(Tombstone.erased_at <= cutoff)
    facts = []
    for row in _rows(session, query):
        cp = by_hash[row.address_hash]
        facts.append(RevocationFact(
            id=row.id or 0, identity_id=identity_id, scope="identity",
            channels=tuple(row.channels or ("*",)), purposes=tuple(row.purposes or ("*",)),
            brands=tuple(row.brands or ("*",)), received_at=row.received_at, effective_at=row.erased_at,
            source=row.reason_kind, contact_point_id=cp.id, tombstone=True,
        ))
    return facts


def _national_dnc(session: Session, identity_id: int, target: ContactPoint | None,
                  cutoff: datetime | None) -> list[SuppressionFact]:
    if target is None or target.kind != "phone" or target.value is None:
        return []
    found = _rows(session, select(_t(DncNumber)).where(DncNumber.phone == target.value))
    row = found[0] if found else None
    if row is None or (row.removed_at is not None and (cutoff is None or row.removed_at <= cutoff)):
        return []
    if cutoff is not None and row.added_at > cutoff:
        return []
    return [SuppressionFact(id=_DNC_FACT_ID, kind="dnc_national", contact_point_id=target.id,
                            identity_id=identity_id, created_at=row.added_at)]


def load_subjects(session: Session, policy: LoadedPolicy, secret: str,
                  wanted: list[tuple[Identity | None, ContactPoint | None]], at_by_index: list[datetime]
                  ) -> list[Subject]:
    """Subjects for many requests at once: a handful of set-based queries for the whole batch."""
    people = {i.id: i for i, _ in wanted if i is not None and i.id is not None}
    if not people:
        return [Subject(identity=None, target=contact_point_fact(t) if t else None) for _, t in wanted]
    groups: dict[int, list[int]] = {pid: [pid] for pid in people}
    for absorbed, survivor_id in session.execute(select(Identity.id, Identity.merged_into_id).where(
            col(Identity.merged_into_id).in_(list(people)))):
        groups[survivor_id].append(absorbed)
    owner = {member: pid for pid, members in groups.items() for member in members}
    all_ids = list(owner)
    cps: dict[int, list[ContactPoint]] = {}
    for cp in session.exec(select(ContactPoint).where(col(ContactPoint.identity_id).in_(list(people)))):
        cps.setdefault(cp.identity_id, []).append(cp)
    targets = [t.id for _, t in wanted if t is not None and t.id is not None]
    consents: dict[int, list[Any]] = {}
    for row in session.exec(select(ConsentEvent).where(col(ConsentEvent.contact_point_id).in_(targets))):
        consents.setdefault(row.contact_point_id, []).append(consent_fact(row))
    domains = {p.account_domain for p in people.values() if p.account_domain}
    revocations: dict[int, list[RevocationFact]] = {}
    by_domain: dict[str, list[RevocationFact]] = {}
    scope = col(Revocation.identity_id).in_(all_ids)
    if domains:
        scope = or_(scope, (Revocation.scope == "account") & col(Revocation.account_domain).in_(list(domains)))
    for row in session.exec(select(Revocation).where(scope)):
        fact = revocation_fact(row)
        if row.identity_id in owner:
            revocations.setdefault(owner[row.identity_id], []).append(fact)
        if row.scope == "account" and row.account_domain:
            by_domain.setdefault(row.account_domain, []).append(fact)
    hashes = {tombstone_hash(secret, cp.kind, cp.value): cp for cps_of in cps.values() for cp in cps_of
              if cp.value is not None}
    tombstones: dict[int, list[RevocationFact]] = {}
    if hashes:
        for row in session.exec(select(Tombstone).where(col(Tombstone.address_hash).in_(list(hashes)),
                                                        col(Tombstone.lifted_at).is_(None))):
            cp = hashes[row.address_hash]
            tombstones.setdefault(cp.identity_id, []).append(RevocationFact(
                id=row.id or 0, identity_id=cp.identity_id, scope="identity",
                channels=tuple(row.channels or ("*",)), purposes=tuple(row.purposes or ("*",)),
                brands=tuple(row.brands or ("*",)), received_at=row.received_at, effective_at=row.erased_at,
                source=row.reason_kind, contact_point_id=cp.id, tombstone=True))
    suppressions: dict[int, list[SuppressionFact]] = {}
    for row in session.exec(select(Suppression).where(col(Suppression.identity_id).in_(all_ids))):
        suppressions.setdefault(owner[row.identity_id], []).append(suppression_fact(row))
    phones = {t.value: t for _, t in wanted if t is not None and t.kind == "phone" and t.value}
    listed = {row.phone: row for row in session.exec(select(DncNumber).where(
        col(DncNumber.phone).in_(list(phones)), col(DncNumber.removed_at).is_(None)))} if phones else {}
    since = min(at_by_index) - lookback(policy)
    touches: dict[int, list[TouchFact]] = {}
    for row in session.exec(select(Touch).where(col(Touch.identity_id).in_(all_ids), Touch.at >= since)):
        touches.setdefault(owner[row.identity_id], []).append(touch_fact(row))
    account_touches: dict[str, list[TouchFact]] = {}
    if domains and any(cap.per == "account" for cap in policy.policy.fatigue_caps):
        for row in session.exec(select(Touch).where(col(Touch.account_domain).in_(list(domains)), Touch.at >= since)):
            account_touches.setdefault(row.account_domain or "", []).append(touch_fact(row))

    out = []
    for identity, target in wanted:
        if identity is None or identity.id is None:
            out.append(Subject(identity=None, target=contact_point_fact(target) if target else None))
            continue
        pid = identity.id
        own_revocations = list(revocations.get(pid, []))
        seen = {r.id for r in own_revocations}
        own_revocations += [r for r in by_domain.get(identity.account_domain or "", []) if r.id not in seen]
        own_suppressions = list(suppressions.get(pid, []))
        if target is not None and target.value in listed:
            own_suppressions.append(SuppressionFact(id=_DNC_FACT_ID, kind="dnc_national", contact_point_id=target.id,
                                                    identity_id=pid, created_at=listed[target.value].added_at))
        out.append(Subject(
            identity=identity_fact(identity),
            target=contact_point_fact(target) if target is not None else None,
            contact_points=tuple(contact_point_fact(cp) for cp in cps.get(pid, []) if cp.value is not None),
            consents=tuple(consents.get(target.id, [])) if target is not None and target.id is not None else (),
            revocations=tuple(own_revocations + tombstones.get(pid, [])),
            suppressions=tuple(own_suppressions),
            touches=tuple(touches.get(pid, [])),
            account_touches=tuple(account_touches.get(identity.account_domain or "", [])),
        ))
    return out
