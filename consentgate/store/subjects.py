"""Loading everything the gate knows about one person, as plain facts for ``decide()``.

``as_of`` loads the ledger as it stood at an instant (rows written later are left out, lifts
made later are undone), so a logged decision can be replayed against the data it was made from.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import JSON, BindParameter, Connection, and_, bindparam, false, func, literal_column, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from consentgate.core.addresses import companies_of
from consentgate.core.facts import RevocationFact, Subject, SuppressionFact, TouchFact
from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import as_utc
from consentgate.core.tombstones import tombstone_hash
from consentgate.errors import Unavailable
from consentgate.store.bulk import among, among_named, bind, listed
from consentgate.store.driver import Driver, compiled, dialect
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
from consentgate.store.types import UTCDateTime, json_value

# DNC registry entries are not ledger rows; they get ids that cannot clash with suppressions.
_DNC_FACT_ID = 0


_LOOKBACK: dict[str, timedelta] = {}


def lookback(policy: LoadedPolicy) -> timedelta:
    """How far back touches can matter to any cap, cadence or re-permission rule (once per policy
    version: every check asks)."""
    if policy.version not in _LOOKBACK:
        _LOOKBACK[policy.version] = _lookback(policy)
    return _LOOKBACK[policy.version]


def _lookback(policy: LoadedPolicy) -> timedelta:
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


# The gate's look-ups are built once per dialect and executed with parameters: building a
# statement costs more than running it on the hot path. The person and the facts come back in
# two statements, or one by address (``read_named``), each table's rows aggregated to JSON by
# the database (one round trip for what used to take eight), then read back into rows with named
# fields, which the fact builders read like ORM objects.

# The columns each fact needs, per table.
_FACT_COLUMNS: dict[Any, tuple[str, ...]] = {
    ContactPoint: ("id", "identity_id", "kind", "value", "status"),
    ConsentEvent: ("id", "identity_id", "contact_point_id", "channel", "purpose", "consent_type", "captured_at",
                   "source", "recorded_at", "proof_uri", "brand", "expires_at"),
    Revocation: ("id", "identity_id", "scope", "channels", "purposes", "brands", "received_at", "effective_at",
                 "source", "account_domain", "contact_point_id", "lifted_at"),
    Suppression: ("id", "kind", "contact_point_id", "identity_id", "created_at", "since", "lifted_at"),
    Touch: ("id", "identity_id", "channel", "purpose", "at", "state", "contact_point_id", "program", "segment",
            "campaign", "brand", "expires_at", "sent_at", "reserved_at", "account_domain", "released_at"),
    Tombstone: ("id", "address_hash", "reason_kind", "channels", "purposes", "brands", "received_at", "erased_at"),
    DncNumber: ("phone", "added_at", "removed_at"),
}


# Each table's fact columns as a light row class: the fact builders read rows by attribute, and
# a batch makes tens of thousands of them.
_ROW_TYPES: dict[Any, Any] = {model: namedtuple(f"{model.__name__}Row", names)  # type: ignore[misc]
                              for model, names in _FACT_COLUMNS.items()}


def _json_rows(dialect: str, model: Any) -> Any:
    """An aggregate of the model's fact columns as a JSON array of arrays, one per row, the
    columns in ``_FACT_COLUMNS`` order (``[]`` for no rows). Arrays, not objects: the statements
    stay short enough for psycopg to cache their parsing (4 KB), and rows are read by position."""
    table = _t(model)
    columns: list[Any] = []
    for name in _FACT_COLUMNS[model]:
        column: Any = table.c[name]
        if dialect == "sqlite" and isinstance(column.type, JSON):
            column = func.json(column)   # SQLite keeps JSON as text: nest it, do not quote it
        columns.append(column)
    if dialect == "sqlite":
        return func.json_group_array(func.json_array(*columns))
    return func.coalesce(func.json_agg(func.json_build_array(*columns)), literal_column("'[]'::json"))


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(value))


_INSTANT_COLUMNS = {model: tuple(name for name in names if isinstance(_t(model).c[name].type, UTCDateTime))
                    for model, names in _FACT_COLUMNS.items()}
_INSTANT_POSITIONS = {model: tuple(names.index(name) for name in _INSTANT_COLUMNS[model])
                      for model, names in _FACT_COLUMNS.items()}


def _json_list(value: Any) -> list[Any]:
    """A JSON array aggregated by the database: text on SQLite, already parsed by psycopg."""
    return json_value(value) if isinstance(value, str) else (value or [])


def _decode(model: Any, value: Any) -> list[Any]:
    """Rows (``_ROW_TYPES``) from a ``_json_rows`` aggregate."""
    rows = _json_list(value)
    instants = _INSTANT_POSITIONS[model]
    make = _ROW_TYPES[model]._make
    out = []
    for row in rows:
        for index in instants:
            row[index] = _instant(row[index])
        out.append(make(row))
    return out


# The identity columns the gate reads (``IdentityRow`` names them in this order).
_IDENTITY_COLUMNS = ("id", "account_domain", "timezone", "state", "country", "is_test", "merged_into_id")


class IdentityRow(NamedTuple):
    """An identity as the gate reads it (``_IDENTITY_COLUMNS``)."""

    id: int
    account_domain: str | None
    timezone: str | None
    state: str | None
    country: str | None
    is_test: bool
    merged_into_id: int | None


def _identity(row: Any) -> IdentityRow:
    """The ``_IDENTITY_COLUMNS`` at the head of a row."""
    return IdentityRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])


class _Found(NamedTuple):
    """A ``_person_query`` row: the identity, its contact points and absorbed ids as JSON."""

    identity: IdentityRow
    contact_points: Any
    absorbed: Any

    @property
    def id(self) -> int:
        return self.identity.id

    @property
    def merged_into_id(self) -> int | None:
        return self.identity.merged_into_id


def _found(row: Any) -> _Found | None:
    return None if row is None else _Found(_identity(row), row[7], row[8])


def _person_query(dialect: str, by: str) -> Any:
    """The identity found by address (``kind``, ``value``), by ``id``, or (``"ids"``) with the
    caller's ``where``, plus its contact points and absorbed ids aggregated to JSON."""
    contact_points = (select(_json_rows(dialect, ContactPoint))
                      .where(ContactPoint.identity_id == Identity.id).scalar_subquery().label("contact_points"))
    absorbed = aliased(Identity)
    merged = (select(func.json_group_array(absorbed.id) if dialect == "sqlite" else func.json_agg(absorbed.id))
              .where(absorbed.merged_into_id == Identity.id).scalar_subquery().label("absorbed"))
    query = sa_select(*(_t(Identity).c[name] for name in _IDENTITY_COLUMNS), contact_points, merged)
    if by == "address":
        return query.where(col(Identity.id) == select(ContactPoint.identity_id).where(
            ContactPoint.kind == bindparam("kind"), ContactPoint.value == bindparam("value")).scalar_subquery())
    if by == "id":
        return query.where(col(Identity.id) == bindparam("id"))
    return query


@dataclass(frozen=True)
class Person:
    """An identity row (the survivor), every contact point it has, and the ids merged into it."""

    identity: IdentityRow
    contact_points: list[Any]
    group: tuple[int, ...]

    def address(self, kind: str, value: str | None = None) -> Any | None:
        """The contact point with this value, or the first of its kind that has one."""
        for cp in sorted(self.contact_points, key=lambda c: c.id):
            if cp.kind == kind and cp.value is not None and (value is None or cp.value == value):
                return cp
        return None


def read_person(driver: Driver, *, kind: str | None = None, value: str | None = None,
                identity_id: int | None = None) -> Person | None:
    """The person an address or an id stands for today (merged-away ids resolve to their survivor)."""
    by_id = compiled(_person_query, driver.dialect, "id")
    row = (driver.first(compiled(_person_query, driver.dialect, "address"), {"kind": kind, "value": value})
           if identity_id is None else driver.first(by_id, {"id": identity_id}))
    person = _survivor(_found(row), lambda merged_into: _found(driver.first(by_id, {"id": merged_into})))
    return None if person is None else _person(person)


def read_people(conn: Connection, ids: Iterable[int]) -> dict[int, Person]:
    """``read_person`` for many ids at once, in a statement per level of merging (one, nearly always)."""
    by_ids = _person_query(conn.dialect.name, "ids")
    wanted = set(ids)
    rows: dict[int, _Found] = {}
    pending = set(wanted)
    while pending:
        for row in conn.execute(by_ids.where(among(Identity.id, pending, conn.dialect))):
            found = _Found(_identity(row), row.contact_points, row.absorbed)
            rows[found.id] = found
        pending = {r.merged_into_id for r in rows.values() if r.merged_into_id is not None} - set(rows)

    people = {identity_id: _survivor(rows.get(identity_id), rows.get) for identity_id in wanted}
    return {identity_id: _person(row) for identity_id, row in people.items() if row is not None}


def _survivor(row: Any | None, row_of: Callable[[int], Any | None]) -> Any | None:
    """Follow ``merged_into_id`` from ``row`` to the identity that absorbed it (a cycle stops the walk)."""
    seen: set[int] = set()
    while row is not None and row.merged_into_id is not None and row.id not in seen:
        seen.add(row.id)
        row = row_of(row.merged_into_id)
    return row


def _person(found: _Found) -> Person:
    absorbed = _json_list(found.absorbed)
    return Person(found.identity, _decode(ContactPoint, found.contact_points), (found.id, *sorted(absorbed)))


def _facts_query(dialect: str, target: bool, account: bool, as_of: bool, exclude: bool, ids: int,
                 hashes: int) -> Any:
    """One statement for every fact of one shape of question, with parameters ``ids_0``...,
    ``root``, ``target``, ``domain``, ``since``, ``cutoff``, ``exclude``, ``hashes_0``... and
    ``phone``; ``root_merged_into`` and ``absorbed`` tell whether the person is still as read."""
    # The person and everyone merged into them, as parameters the planner sees (a subquery made
    # PostgreSQL guess hundreds of ids and scan whole tables).
    group: list[BindParameter[Any]] = [bindparam(f"ids_{n}") for n in range(ids)]
    # An erased person has no address left to hash: SQL has no empty IN list, so nothing matches.
    hashed = col(Tombstone.address_hash).in_([bindparam(f"hashes_{n}") for n in range(hashes)]) if hashes else false()
    parts = _fact_parts(dialect, lambda column: col(column).in_(group),
                        target=bindparam("target") if target else None,
                        domain=bindparam("domain") if account else None, hashed=hashed, phone=bindparam("phone"))
    if as_of:
        cutoff: BindParameter[Any] = bindparam("cutoff")
        parts["consents"] = parts["consents"].where(ConsentEvent.recorded_at <= cutoff)
        parts["revocations"] = parts["revocations"].where(Revocation.effective_at <= cutoff)
        parts["tombstones"] = parts["tombstones"].where(Tombstone.erased_at <= cutoff)
        parts["suppressions"] = parts["suppressions"].where(Suppression.created_at <= cutoff)
        parts["touches"] = parts["touches"].where(Touch.created_at <= cutoff)
        parts["account_touches"] = parts["account_touches"].where(Touch.created_at <= cutoff)
        if exclude:
            # Replaying decision ``exclude``: its own reservation, and those of decisions logged
            # after it (later items of its batch, made at the same instant), did not exist yet.
            # Ids follow the order decisions were logged in, so a higher one was never visible.
            earlier = or_(col(Touch.decision_id).is_(None), col(Touch.decision_id) < bindparam("exclude"))
            parts["touches"] = parts["touches"].where(earlier)
            parts["account_touches"] = parts["account_touches"].where(earlier)
    absorbed = aliased(Identity)
    parts["root_merged_into"] = select(Identity.merged_into_id).where(Identity.id == bindparam("root"))
    parts["absorbed"] = select(func.json_group_array(absorbed.id) if dialect == "sqlite"
                               else func.json_agg(absorbed.id)).where(absorbed.merged_into_id == bindparam("root"))
    return select(*(q.scalar_subquery().label(name) for name, q in parts.items()))


def _fact_parts(dialect: str, in_group: Callable[[Any], Any], *, target: Any | None, domain: Any | None,
                hashed: Any, phone: Any) -> dict[str, Any]:
    """Each table's facts about one person as a JSON aggregate (``_json_rows``), in ``_Facts``
    order: ``in_group`` says whether an identity id column is the person's or a merged one's,
    ``target`` is the address's contact point id (None: every consent of the person), ``domain``
    their company (None: none), ``hashed`` matches the tombstones of their addresses and ``phone``
    the number looked up in the national registry."""
    def rows(model: Any, *where: Any) -> Any:
        return select(_json_rows(dialect, model)).where(*where)

    consents = rows(ConsentEvent, in_group(ConsentEvent.identity_id))
    if target is not None:
        consents = consents.where(ConsentEvent.contact_point_id == target)
    scope = in_group(Revocation.identity_id)
    if domain is not None:
        scope = or_(scope, (Revocation.scope == "account") & (Revocation.account_domain == domain))
    # The companies of the person's work emails too (a merge joins people from several; the
    # decision keeps those that are not free mail).
    mail = aliased(ContactPoint, name="mail")
    domains = select(_email_domain(dialect, mail.value)).where(
        in_group(mail.identity_id), mail.kind == "email").correlate_except(mail)
    scope = or_(scope, and_(col(Revocation.scope) == "account", col(Revocation.account_domain).in_(domains)))
    since: BindParameter[Any] = bindparam("since")
    return {
        "consents": consents,
        "revocations": rows(Revocation, scope),
        "tombstones": rows(Tombstone, hashed, col(Tombstone.lifted_at).is_(None)),
        "suppressions": rows(Suppression, in_group(Suppression.identity_id)),
        "dnc": rows(DncNumber, DncNumber.phone == phone),
        "touches": rows(Touch, in_group(Touch.identity_id), Touch.at >= since),
        "account_touches": rows(Touch, Touch.account_domain == (domain if domain is not None else bindparam("domain")),
                                Touch.at >= since),
    }


def _email_domain(dialect: str, value: Any) -> Any:
    """The part of an email address after its last "@", in SQL."""
    if dialect == "postgresql":
        return func.split_part(value, "@", -1)
    # SQLite has no reverse search: trimming every character but "@" off the end leaves the
    # address up to its last "@".
    return func.substr(value, func.length(func.rtrim(value, func.replace(value, "@", ""))) + 1)


class _Facts(NamedTuple):
    """A ``_facts_query`` row: each table's facts as JSON, and the person's merges as read."""

    consents: Any
    revocations: Any
    tombstones: Any
    suppressions: Any
    dnc: Any
    touches: Any
    account_touches: Any
    root_merged_into: int | None
    absorbed: Any


def _lock_query(dialect: str) -> Any:
    return select(Identity.id).where(Identity.id == bindparam("id")).with_for_update()


def _lock_many_query(dialect: str) -> Any:
    # In id order: two batches locking overlapping people take the locks in the same order.
    return (select(Identity.id).where(among_named(Identity.id, "ids", dialect)).order_by(col(Identity.id))
            .with_for_update())


# The first key of the advisory locks taken per account (the chain's lock uses the one-key form).
_ACCOUNT_LOCKS = 0x636701


def counts_accounts(policy: LoadedPolicy) -> bool:
    """Whether some fatigue cap counts the touches of everyone at an account."""
    return any(cap.per == "account" for cap in policy.policy.fatigue_caps)


def lock_accounts(driver: Driver, domains: Iterable[str]) -> None:
    """Serialise reservations per account until the transaction ends (PostgreSQL advisory locks;
    SQLite writers are serialised already). A person's row lock orders the reservations of one
    person; an account cap counts the touches of everyone at the company, so reservations for
    two colleagues must not both take its last slot."""
    if driver.dialect == "postgresql" and (wanted := sorted(set(domains))):
        # Sorted in a subquery, so the locks are taken in that order: no two reservations wait
        # on each other in a circle.
        driver.rows(compiled(_lock_accounts_query, driver.dialect),
                    {"ns": _ACCOUNT_LOCKS, "domains": listed(wanted, driver.dialect)})


def _lock_accounts_query(dialect: str) -> Any:
    return text("SELECT count(pg_advisory_xact_lock(CAST(:ns AS integer), hashtext(d))) FROM "
                "(SELECT d FROM unnest(CAST(:domains AS text[])) AS d ORDER BY d) AS ordered")


def lock_people(driver: Driver, ids: Iterable[int]) -> None:
    """Lock many people's identity rows until the transaction ends, as a reservation locks one
    (PostgreSQL ``FOR UPDATE``; SQLite writers are serialised already)."""
    if driver.dialect == "postgresql":
        driver.rows(compiled(_lock_many_query, driver.dialect), {"ids": listed(sorted(ids), driver.dialect)})


class PersonMoved(Unavailable):
    """The person was merged while being read: read again (a rare race, never a wrong answer)."""

    def __init__(self, identity_id: int) -> None:
        super().__init__(f"identity {identity_id} was merged while the gate read it: ask again")


def _numbered(name: str, values: Iterable[Any]) -> dict[str, Any]:
    return {f"{name}_{n}": value for n, value in enumerate(values)}


_TIME_PARAM = {name: bind(dialect(name), _t(Touch), "at") for name in ("sqlite", "postgresql")}


def load_subject(driver: Driver, policy: LoadedPolicy, secret: str, *, identity: Any | None,
                 target: Any | None, at: datetime, as_of: datetime | None = None,
                 exclude_decision: int | None = None, lock: bool = False, person: Person | None = None) -> Subject:
    """The facts about ``identity`` (None: unknown) for a touch through ``target``.

    ``identity`` and ``target`` are ORM objects or rows; ``person``, when the caller has it
    (``read_person``), saves reading the contact points and the merged ids again. With ``lock``
    the identity row is locked (PostgreSQL ``FOR UPDATE``) so that concurrent reservations for
    one person are serialised; SQLite writers are serialised already. Raises ``PersonMoved``
    when a merge changed the person after ``person`` was read.
    """
    if identity is None or identity.id is None:
        return Subject(identity=None, target=contact_point_fact(target) if target else None)
    name = driver.dialect
    if lock and name == "postgresql":
        driver.rows(compiled(_lock_query, name), {"id": identity.id})
        if identity.account_domain and counts_accounts(policy):
            lock_accounts(driver, [identity.account_domain])
        person = None   # read again under the lock: a merge may have finished meanwhile
    cutoff = as_of
    domain = identity.account_domain
    if person is None:
        person = read_person(driver, identity_id=identity.id)
    cps = person.contact_points if person is not None else []
    group = list(person.group) if person is not None else [identity.id]
    hashes = {tombstone_hash(secret, cp.kind, cp.value): cp for cp in cps if cp.value is not None}
    phone = target.value if target is not None and target.kind == "phone" else None
    query = compiled(_facts_query, name, target is not None, bool(domain), cutoff is not None,
                     exclude_decision is not None, len(group), len(hashes))
    to_time = _TIME_PARAM[name]
    found = _Facts(*driver.rows(query, {
        **_numbered("ids", group), **_numbered("hashes", hashes), "root": group[0],
        "target": target.id if target is not None else None, "domain": domain,
        "since": to_time(at - lookback(policy)), "cutoff": to_time(cutoff) if cutoff is not None else None,
        "exclude": exclude_decision, "phone": phone})[0])
    # A replay (``as_of``) may read someone as they stood before merges made since.
    if cutoff is None and (found.root_merged_into is not None or sorted(_json_list(found.absorbed)) != group[1:]):
        raise PersonMoved(identity.id)

    return _subject(found, identity, group, cps, target, _tombstones(_decode(Tombstone, found.tombstones), hashes,
                                                                   identity.id), cutoff, policy)


def _subject(found: _Facts, identity: Any, group: list[int], cps: list[Any], target: Any | None,
             tombstones: list[RevocationFact], cutoff: datetime | None, policy: LoadedPolicy) -> Subject:
    # In id order, as the batch gives them (the order of the reasons they give).
    revocations = sorted((_as_of(revocation_fact(row), cutoff) for row in _decode(Revocation, found.revocations)),
                         key=lambda r: r.id)
    revocations += tombstones
    suppressions = [suppression_fact(row) for row in _decode(Suppression, found.suppressions)]
    suppressions += _national_dnc(_decode(DncNumber, found.dnc), identity.id, target, cutoff)
    account_caps = bool(identity.account_domain) and counts_accounts(policy)
    return Subject(
        identity=identity_fact(identity, group),
        target=contact_point_fact(target) if target is not None else None,
        contact_points=tuple(contact_point_fact(cp) for cp in cps if cp.value is not None),
        consents=tuple(consent_fact(row) for row in _decode(ConsentEvent, found.consents)),
        revocations=tuple(revocations),
        suppressions=tuple(suppressions),
        touches=_touches_as_of(found.touches, cutoff),
        account_touches=_touches_as_of(found.account_touches, cutoff) if account_caps else (),
    )


def _named_query(dialect: str) -> Any:
    """``_person_query`` by address and ``_facts_query`` on what it finds, in one statement, for
    the usual person: one nobody was merged into (``absorbed`` says), read live. The tombstones
    are those of the address asked about (``hash``); the caller looks up any other address's."""
    named = aliased(ContactPoint, name="named")
    parts = _fact_parts(dialect, lambda column: column == Identity.id, target=named.id,
                        domain=Identity.account_domain, hashed=Tombstone.address_hash == bindparam("hash"),
                        phone=named.value)
    parts["dnc"] = parts["dnc"].where(named.kind == "phone")
    return (_person_query(dialect, "ids")
            .add_columns(named.id, *(q.scalar_subquery().label(name) for name, q in parts.items()))
            .join_from(Identity, named, named.identity_id == Identity.id)
            .where(named.kind == bindparam("kind"), named.value == bindparam("value")))


def read_named(driver: Driver, policy: LoadedPolicy, secret: str, kind: str, value: str,
               at: datetime) -> tuple[Person | None, Any | None, Subject] | None:
    """``read_person`` by address and ``load_subject`` for a touch through that address, in one
    statement (one snapshot: no merge can land in between) rather than two.

    Nobody holding the address gives (None, None, an unknown person's subject). None when this
    way cannot say: the holder was merged into someone or absorbed someone (the caller reads
    the two-statement way, which knows merges). A person with addresses other than this one has
    their tombstones read in a second statement: only this address's keyed hash is known before
    the person is read.
    """
    address_hash = tombstone_hash(secret, kind, value)
    since = _TIME_PARAM[driver.dialect](at - lookback(policy))
    row = driver.first(compiled(_named_query, driver.dialect),
                       {"kind": kind, "value": value, "hash": address_hash, "since": since})
    if row is None:
        return None, None, Subject(identity=None, target=None)
    found = _Found(_identity(row), row[7], row[8])
    if found.merged_into_id is not None or _json_list(found.absorbed):
        return None
    person = _person(found)
    target = next(cp for cp in person.contact_points if cp.id == row[9])
    facts = _Facts._make((*row[10:17], None, None))   # no merges to report: checked above
    hashes = {address_hash: target}
    others = {tombstone_hash(secret, cp.kind, cp.value): cp for cp in person.contact_points
              if cp.value is not None and cp is not target}
    tombstone_rows = _decode(Tombstone, facts.tombstones)
    if others:
        hashes.update(others)
        tombstone_rows += _fetch(driver, Tombstone, "tombstones", hashes=listed(others, driver.dialect))
    tombstones = _tombstones(tombstone_rows, hashes, person.identity.id)
    return person, target, _subject(facts, person.identity, list(person.group), person.contact_points, target,
                                    tombstones, None, policy)


def _touches_as_of(aggregate: Any, cutoff: datetime | None) -> tuple[TouchFact, ...]:
    return tuple(_touch_as_of(touch_fact(row), row, cutoff) for row in _decode(Touch, aggregate))


def _touch_as_of(fact: TouchFact, row: Touch, cutoff: datetime | None) -> TouchFact:
    """A touch's state at ``cutoff``: a later send was still a reservation then, and so was a
    reservation released later.

    A reservation that expired later, or was released before releases kept their time, is taken
    as still held at ``cutoff`` when its time to live had not run out: the reading that counts
    more touches, never fewer.
    """
    if cutoff is None:
        return fact
    if row.state == "sent" and row.sent_at is not None and row.sent_at > cutoff:
        return replace(fact, state="reserved", at=row.reserved_at or fact.at)
    if row.state == "released" and row.released_at is not None:
        return fact if row.released_at <= cutoff else replace(fact, state="reserved")
    if row.state in ("released", "expired") and row.expires_at is not None and row.expires_at > cutoff:
        return replace(fact, state="reserved")
    return fact


def _as_of(fact: RevocationFact, cutoff: datetime | None) -> RevocationFact:
    """A revocation lifted after ``cutoff`` was still in force at ``cutoff``."""
    if cutoff is None or fact.lifted_at is None or fact.lifted_at <= cutoff:
        return fact
    return replace(fact, lifted_at=None)


def _tombstones(rows: list[Any], by_hash: dict[str, Any], identity_id: int) -> list[RevocationFact]:
    """Opt-outs an erased person left behind, recognised by the keyed hash of an address."""
    facts = []
    for row in rows:
        cp = by_hash[row.address_hash]
        facts.append(RevocationFact(
            id=row.id or 0, identity_id=identity_id, scope="identity",
            channels=tuple(row.channels or ("*",)), purposes=tuple(row.purposes or ("*",)),
            brands=tuple(row.brands or ("*",)), received_at=row.received_at, effective_at=row.erased_at,
            source=row.reason_kind, contact_point_id=cp.id, tombstone=True,
        ))
    return facts


def _national_dnc(rows: list[Any], identity_id: int, target: Any | None,
                  cutoff: datetime | None) -> list[SuppressionFact]:
    row = rows[0] if rows else None
    if target is None or row is None or (row.removed_at is not None and (cutoff is None or row.removed_at <= cutoff)):
        return []
    if cutoff is not None and row.added_at > cutoff:
        return []
    return [SuppressionFact(id=_DNC_FACT_ID, kind="dnc_national", contact_point_id=target.id,
                            identity_id=identity_id, created_at=row.added_at)]


def _merges(driver: Driver, people: Iterable[int], shape: str) -> set[tuple[int, int]]:
    """(id, merged_into_id) of every identity merged into one of the people (``absorbed``), and
    (``merges``) of any of the people merged into someone else since they were read."""
    return {(row[0], row[1]) for row in driver.rows(compiled(_batch_query, driver.dialect, shape),
                                                    {"ids": listed(people, driver.dialect)})}


def _batch_query(dialect: str, shape: str) -> Any:
    """The batch's look-ups, each by one list parameter (``listed``): ``ids``, ``domains``..."""
    def rows(model: Any, *where: Any) -> Any:
        return select(*(_t(model).c[name] for name in _FACT_COLUMNS[model])).where(*where)

    def among(column: Any, name: str) -> Any:
        return among_named(column, name, dialect)

    if shape in ("absorbed", "merges"):
        absorbed = select(Identity.id, Identity.merged_into_id).where(among(Identity.merged_into_id, "ids"))
        if shape == "absorbed":
            return absorbed
        # The people themselves are probed in the small index of merged-away identities
        # (``ix_identity_merged``): reading each of their rows again cost most of the check.
        moved = select(Identity.id, Identity.merged_into_id).where(
            col(Identity.merged_into_id).is_not(None), among(Identity.id, "ids"))
        return absorbed.union_all(moved)
    if shape == "people":
        return select(*(_t(Identity).c[name] for name in _IDENTITY_COLUMNS)).where(among(Identity.id, "ids"))
    if shape == "contact_points":
        return rows(ContactPoint, among(ContactPoint.identity_id, "ids"))
    if shape == "addresses":
        return rows(ContactPoint, ContactPoint.kind == bindparam("kind"), among(ContactPoint.value, "values"))
    if shape == "consents":
        return rows(ConsentEvent, among(ConsentEvent.contact_point_id, "targets"))
    if shape == "person_consents":
        return rows(ConsentEvent, among(ConsentEvent.identity_id, "ids"), col(ConsentEvent.contact_point_id).is_(None))
    if shape in ("revocations", "account_revocations"):
        scope = among(Revocation.identity_id, "ids")
        if shape == "account_revocations":
            scope = or_(scope, (Revocation.scope == "account") & among(Revocation.account_domain, "domains"))
        return rows(Revocation, scope)
    if shape == "tombstones":
        return rows(Tombstone, among(Tombstone.address_hash, "hashes"), col(Tombstone.lifted_at).is_(None))
    if shape == "suppressions":
        return rows(Suppression, among(Suppression.identity_id, "ids"))
    if shape == "dnc":
        return rows(DncNumber, among(DncNumber.phone, "phones"), col(DncNumber.removed_at).is_(None))
    if shape == "touches":
        return rows(Touch, among(Touch.identity_id, "ids"), Touch.at >= bindparam("since"))
    if shape == "account_touches":
        return rows(Touch, among(Touch.account_domain, "domains"), Touch.at >= bindparam("since"))
    raise ValueError(shape)


def _fetch(driver: Driver, model: Any, shape: str, **params: Any) -> list[Any]:
    """A batch look-up's rows (``_ROW_TYPES``), times as aware UTC datetimes, JSON parsed."""
    names = _FACT_COLUMNS[model]
    instants = [names.index(name) for name in _INSTANT_COLUMNS[model]]
    documents = [names.index(name) for name in _JSON_COLUMNS[model]] if driver.dialect == "sqlite" else []
    make = _ROW_TYPES[model]._make
    found = driver.rows(compiled(_batch_query, driver.dialect, shape), params)
    if not instants and not documents:
        return [make(values) for values in found]
    out = []
    for found_row in found:
        values = list(found_row)
        for index in instants:
            values[index] = _instant_of(values[index])
        for index in documents:
            if values[index] is not None:
                values[index] = json_value(values[index])
        out.append(make(values))
    return out


def read_contact_points(driver: Driver, kind: str, values: Iterable[str]) -> list[Any]:
    """The contact points of many addresses of one kind (read-only rows), in one statement."""
    return _fetch(driver, ContactPoint, "addresses", kind=kind, values=listed(values, driver.dialect))


def read_identities(driver: Driver, ids: Iterable[int]) -> dict[int, IdentityRow]:
    """Many identities by id, as the gate reads them, in one statement."""
    rows = driver.rows(compiled(_batch_query, driver.dialect, "people"), {"ids": listed(ids, driver.dialect)})
    return {row[0]: _identity(row) for row in rows}


def _instant_of(value: Any) -> datetime | None:
    """A time as the driver gives it (SQLite: naive UTC text; psycopg: an aware datetime) in UTC."""
    if value is None or isinstance(value, str):
        return _instant(value)
    return as_utc(value)


_JSON_COLUMNS = {model: tuple(name for name in names if isinstance(_t(model).c[name].type, JSON))
                 for model, names in _FACT_COLUMNS.items()}


def load_subjects(session: Session, policy: LoadedPolicy, secret: str,
                  wanted: list[tuple[Any | None, Any | None]], at_by_index: list[datetime]
                  ) -> list[Subject]:
    """Subjects for many requests at once: a handful of set-based queries for the whole batch,
    run on the driver (rows with only the columns the facts need, no per-row type processing).

    ``wanted``: each request's person (an ``IdentityRow``, whose ``merged_into_id`` says whether
    they had been merged away when read) and address. A merge that lands while the facts are
    read raises ``PersonMoved``.
    """
    people = {i.id: i for i, _ in wanted if i is not None and i.id is not None}
    if not people:
        return [Subject(identity=None, target=contact_point_fact(t) if t else None) for _, t in wanted]
    session.flush()
    driver = Driver.of(session.connection())
    name = driver.dialect
    groups: dict[int, list[int]] = {pid: [pid] for pid in people}
    moved = next((pid for pid, person in people.items() if person.merged_into_id is not None), None)
    if moved is not None:
        raise PersonMoved(moved)
    merges = _merges(driver, people, "absorbed")
    for absorbed, survivor_id in merges:
        if absorbed in people:
            raise PersonMoved(absorbed)   # merged since it was read
        groups[survivor_id].append(absorbed)
    owner = {member: pid for pid, members in groups.items() for member in members}
    all_ids = listed(owner, name)
    cps: dict[int, list[Any]] = {}
    for cp in _fetch(driver, ContactPoint, "contact_points", ids=listed(people, name)):
        cps.setdefault(cp.identity_id, []).append(cp)
    targets = [t.id for _, t in wanted if t is not None and t.id is not None]
    consents: dict[int, list[Any]] = {}
    for row in _fetch(driver, ConsentEvent, "consents", targets=listed(targets, name)):
        consents.setdefault(row.contact_point_id, []).append(consent_fact(row))
    # Consents to channels that reach the person (no address), for the requests that have no target.
    person_consents: dict[int, list[Any]] = {}
    if any(i is not None and t is None for i, t in wanted):
        for row in _fetch(driver, ConsentEvent, "person_consents", ids=all_ids):
            person_consents.setdefault(owner[row.identity_id], []).append(consent_fact(row))
    domains = {p.account_domain for p in people.values() if p.account_domain}
    companies = {pid: companies_of(person.account_domain, cps.get(pid, []), policy.free_mail_domains)
                 for pid, person in people.items()}
    every_company = frozenset().union(*companies.values())
    revocations: dict[int, list[RevocationFact]] = {}
    by_domain: dict[str, list[RevocationFact]] = {}
    found_revocations = (_fetch(driver, Revocation, "account_revocations", ids=all_ids,
                                domains=listed(every_company, name))
                         if every_company else _fetch(driver, Revocation, "revocations", ids=all_ids))
    for row in found_revocations:
        fact = revocation_fact(row)
        if row.identity_id in owner:
            revocations.setdefault(owner[row.identity_id], []).append(fact)
        if row.scope == "account" and row.account_domain:
            by_domain.setdefault(row.account_domain, []).append(fact)
    hashes = {tombstone_hash(secret, cp.kind, cp.value): cp for cps_of in cps.values() for cp in cps_of
              if cp.value is not None}
    tombstones: dict[int, list[RevocationFact]] = {}
    if hashes:
        for row in _fetch(driver, Tombstone, "tombstones", hashes=listed(hashes, name)):
            owner_id = hashes[row.address_hash].identity_id
            tombstones.setdefault(owner_id, []).extend(_tombstones([row], hashes, owner_id))
    suppressions: dict[int, list[SuppressionFact]] = {}
    for row in _fetch(driver, Suppression, "suppressions", ids=all_ids):
        suppressions.setdefault(owner[row.identity_id], []).append(suppression_fact(row))
    phones = {t.value: t for _, t in wanted if t is not None and t.kind == "phone" and t.value}
    listed_numbers = {row.phone: row for row in _fetch(driver, DncNumber, "dnc", phones=listed(phones, name))
                      } if phones else {}
    since = _TIME_PARAM[name](min(at_by_index) - lookback(policy))
    touches: dict[int, list[TouchFact]] = {}
    for row in _fetch(driver, Touch, "touches", ids=all_ids, since=since):
        touches.setdefault(owner[row.identity_id], []).append(touch_fact(row))
    account_touches: dict[str, list[TouchFact]] = {}
    if domains and counts_accounts(policy):
        for row in _fetch(driver, Touch, "account_touches", domains=listed(domains, name), since=since):
            account_touches.setdefault(row.account_domain or "", []).append(touch_fact(row))

    # Read again, the merges must be as they were: PostgreSQL reads each statement afresh, and a
    # merge in between would have moved touches and contact points away from what was read.
    if _merges(driver, people, "merges") != merges:
        raise PersonMoved(next(iter(people)))
    out = []
    back = lookback(policy)
    for (identity, target), at in zip(wanted, at_by_index, strict=True):
        if identity is None or identity.id is None:
            out.append(Subject(identity=None, target=contact_point_fact(target) if target else None))
            continue
        pid = identity.id
        own_revocations = list(revocations.get(pid, []))
        seen = {r.id for r in own_revocations}
        for company in companies.get(pid, ()):
            for r in by_domain.get(company, []):
                if r.id not in seen:
                    own_revocations.append(r)
                    seen.add(r.id)
        own_suppressions = list(suppressions.get(pid, []))
        if target is not None and target.value in listed_numbers:
            own_suppressions.append(SuppressionFact(id=_DNC_FACT_ID, kind="dnc_national", contact_point_id=target.id,
                                                    identity_id=pid, created_at=listed_numbers[target.value].added_at))
        out.append(Subject(
            identity=identity_fact(identity, groups.get(pid, ())),
            target=contact_point_fact(target) if target is not None else None,
            contact_points=tuple(contact_point_fact(cp) for cp in cps.get(pid, []) if cp.value is not None),
            consents=tuple(consents.get(target.id, []) if target is not None else person_consents.get(pid, [])),
            revocations=tuple(sorted(own_revocations, key=lambda r: r.id) + tombstones.get(pid, [])),
            suppressions=tuple(own_suppressions),
            # Read from the batch's earliest instant: each item sees what a check of its own
            # (``load_subject``) would, from its own instant back.
            touches=tuple(t for t in touches.get(pid, []) if t.at >= at - back),
            account_touches=tuple(t for t in account_touches.get(identity.account_domain or "", [])
                                  if t.at >= at - back),
        ))
    return out
