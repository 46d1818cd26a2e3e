"""Loading everything the gate knows about one person, as plain facts for ``decide()``.

``as_of`` loads the ledger as it stood at an instant (rows written later are left out, lifts
made later are undone), so a logged decision can be replayed against the data it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, or_
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


def group_ids(session: Session, identity_id: int) -> list[int]:
    absorbed = session.exec(select(Identity.id).where(Identity.merged_into_id == identity_id)).all()
    return [identity_id, *[i for i in absorbed if i is not None]]


# The gate's look-ups are built once and executed with parameters: building a statement costs
# more than running it on the hot path. Their rows are Core rows with named fields, which the
# fact builders (and the gate's callers) read like the ORM objects.
_ADDRESS = select(_t(ContactPoint)).where(ContactPoint.kind == bindparam("kind"),
                                          ContactPoint.value == bindparam("value")).limit(1)
_IDENTITY = select(_t(Identity)).where(Identity.id == bindparam("id"))
_CHANNEL_ADDRESS = (select(_t(ContactPoint))
                    .where(ContactPoint.identity_id == bindparam("id"), ContactPoint.kind == bindparam("kind"),
                           col(ContactPoint.value).is_not(None))
                    .order_by(ContactPoint.id).limit(1))


def read_identity(conn: Connection, identity_id: int) -> Any | None:
    """The identity an id stands for today (merged-away ids resolve to their survivor), as a row."""
    seen: set[int] = set()
    row = conn.execute(_IDENTITY, {"id": identity_id}).first()
    while row is not None and row.merged_into_id is not None and row.id not in seen:
        seen.add(row.id)
        row = conn.execute(_IDENTITY, {"id": row.merged_into_id}).first()
    return row


def read_address(conn: Connection, kind: str, value: str) -> tuple[Any, Any] | None:
    """(identity, contact point) rows for a normalised address; None when nobody has it."""
    cp = conn.execute(_ADDRESS, {"kind": kind, "value": value}).first()
    if cp is None:
        return None
    identity = read_identity(conn, cp.identity_id)
    return (identity, cp) if identity is not None else None


def read_channel_address(conn: Connection, identity_id: int, kind: str) -> Any | None:
    """The person's first address of a kind, as a row (a request that names only the identity)."""
    return conn.execute(_CHANNEL_ADDRESS, {"id": identity_id, "kind": kind}).first()


@dataclass(frozen=True)
class _SubjectQueries:
    contact_points: Any
    consents: Any
    revocations: Any
    tombstones: Any
    suppressions: Any
    dnc: Any
    touches: Any
    account_touches: Any


@lru_cache(maxsize=64)
def _subject_queries(target: bool, account: bool, as_of: bool, exclude: bool) -> _SubjectQueries:
    """The statements for one shape of question, with parameters ``id``, ``target``, ``domain``,
    ``since``, ``cutoff``, ``exclude``, ``hashes`` and ``phone``."""
    me = bindparam("id")
    # The person and everyone merged into them, as a subquery: no round trip of its own.
    ids = select(Identity.id).where(or_(Identity.id == me, Identity.merged_into_id == me))

    consents = select(_t(ConsentEvent)).where(col(ConsentEvent.identity_id).in_(ids))
    if target:
        consents = consents.where(ConsentEvent.contact_point_id == bindparam("target"))

    scope = col(Revocation.identity_id).in_(ids)
    if account:
        scope = or_(scope, (Revocation.scope == "account") & (Revocation.account_domain == bindparam("domain")))
    revocations = select(_t(Revocation)).where(scope)
    tombstones = select(_t(Tombstone)).where(col(Tombstone.address_hash).in_(bindparam("hashes", expanding=True)),
                                             col(Tombstone.lifted_at).is_(None))
    suppressions = select(_t(Suppression)).where(col(Suppression.identity_id).in_(ids))
    touches = select(_t(Touch)).where(col(Touch.identity_id).in_(ids), Touch.at >= bindparam("since"))
    account_touches = select(_t(Touch)).where(Touch.account_domain == bindparam("domain"),
                                              Touch.at >= bindparam("since"))
    if as_of:
        cutoff = bindparam("cutoff")
        consents = consents.where(ConsentEvent.recorded_at <= cutoff)
        revocations = revocations.where(Revocation.effective_at <= cutoff)
        tombstones = tombstones.where(Tombstone.erased_at <= cutoff)
        suppressions = suppressions.where(Suppression.created_at <= cutoff)
        touches = touches.where(Touch.created_at <= cutoff)
        account_touches = account_touches.where(Touch.created_at <= cutoff)
        if exclude:
            touches = touches.where(or_(col(Touch.decision_id).is_(None), Touch.decision_id != bindparam("exclude")))
    return _SubjectQueries(
        contact_points=select(_t(ContactPoint)).where(ContactPoint.identity_id == me),
        consents=consents, revocations=revocations, tombstones=tombstones, suppressions=suppressions,
        dnc=select(_t(DncNumber)).where(DncNumber.phone == bindparam("phone")),
        touches=touches, account_touches=account_touches)


def load_subject(session: Session, policy: LoadedPolicy, secret: str, *, identity: Any | None,
                 target: Any | None, at: datetime, as_of: datetime | None = None,
                 exclude_decision: int | None = None, lock: bool = False) -> Subject:
    """The facts about ``identity`` (None: unknown) for a touch through ``target``.

    ``identity`` and ``target`` are ORM objects or rows (``read_address``). With ``lock`` the
    identity row is locked (PostgreSQL ``FOR UPDATE``) so that concurrent reservations for one
    person are serialised; SQLite writers are serialised already.
    """
    if identity is None or identity.id is None:
        return Subject(identity=None, target=contact_point_fact(target) if target else None)
    conn = session.connection()
    if lock and conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"id": identity.id})
    cutoff = as_of
    domain = identity.account_domain
    account_caps = bool(domain) and any(cap.per == "account" for cap in policy.policy.fatigue_caps)
    q = _subject_queries(target is not None, bool(domain), cutoff is not None, exclude_decision is not None)
    params = {"id": identity.id, "target": target.id if target is not None else None, "domain": domain,
              "since": at - lookback(policy), "cutoff": cutoff, "exclude": exclude_decision}

    cps = conn.execute(q.contact_points, params).all()
    consents = [consent_fact(row) for row in conn.execute(q.consents, params)]
    revocations = [_as_of(revocation_fact(row), cutoff) for row in conn.execute(q.revocations, params)]
    revocations += _tombstones(conn, q.tombstones, secret, identity.id, cps, cutoff)
    suppressions = [suppression_fact(row) for row in conn.execute(q.suppressions, params)]
    suppressions += _national_dnc(conn, q.dnc, identity.id, target, cutoff)
    touches = tuple(_touch_as_of(touch_fact(row), row, cutoff) for row in conn.execute(q.touches, params))
    account_touches: tuple[TouchFact, ...] = ()
    if account_caps:
        account_touches = tuple(touch_fact(row) for row in conn.execute(q.account_touches, params))

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


_LOCK = select(Identity.id).where(Identity.id == bindparam("id")).with_for_update()


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


def _tombstones(conn: Connection, query: Any, secret: str, identity_id: int, cps: list[Any],
                cutoff: datetime | None) -> list[RevocationFact]:
    """Opt-outs an erased person left behind, recognised by the keyed hash of an address."""
    by_hash = {tombstone_hash(secret, cp.kind, cp.value): cp for cp in cps if cp.value is not None}
    if not by_hash:
        return []
    facts = []
    for row in conn.execute(query, {"hashes": list(by_hash), "cutoff": cutoff}):
        cp = by_hash[row.address_hash]
        facts.append(RevocationFact(
            id=row.id or 0, identity_id=identity_id, scope="identity",
            channels=tuple(row.channels or ("*",)), purposes=tuple(row.purposes or ("*",)),
            brands=tuple(row.brands or ("*",)), received_at=row.received_at, effective_at=row.erased_at,
            source=row.reason_kind, contact_point_id=cp.id, tombstone=True,
        ))
    return facts


def _national_dnc(conn: Connection, query: Any, identity_id: int, target: Any | None,
                  cutoff: datetime | None) -> list[SuppressionFact]:
    if target is None or target.kind != "phone" or target.value is None:
        return []
    row = conn.execute(query, {"phone": target.value}).first()
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
