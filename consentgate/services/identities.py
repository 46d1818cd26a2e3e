"""Finding and creating people by their addresses, race-safe on SQLite and PostgreSQL.

Every write path (consents, revocations, suppressions, imports, webhooks) resolves its address
through ``ensure_contact_point`` so that one normalised address always means one person.
Creation relies on the unique constraint on (kind, value), never on read-then-write: two
requests racing to create the same person end with one identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consentgate.core.addresses import Address, AddressKind, company_domain_of, normalise_email, normalise_phone
from consentgate.core.policy import LoadedPolicy
from consentgate.errors import NotFound, ValidationFailed
from consentgate.store.bulk import bind, insert_with_ids
from consentgate.store.driver import Driver
from consentgate.store.models import ContactPoint, Identity
from consentgate.store.subjects import group_ids, read_contact_points


@dataclass(frozen=True)
class AddressRef:
    """How a request names a person: exactly one of an email, a phone or an identity id."""

    email: str | None = None
    phone: str | None = None
    identity_id: int | None = None


def normalise_ref(ref: AddressRef, policy: LoadedPolicy, prefix: str = "") -> Address | int:
    """The normalised address, or the identity id, a request names (422 naming the field)."""
    given = [name for name in ("email", "phone", "identity_id") if getattr(ref, name) is not None]
    if len(given) != 1:
        raise ValidationFailed.field(
            prefix + (given[1] if len(given) > 1 else "email"),
            "give exactly one of email, phone or identity_id",
        )
    spec = policy.policy.identity
    if ref.email is not None:
        value = normalise_email(ref.email, casefold_local=spec.casefold_email_local_part,
                                field=prefix + "email")
        return Address("email", value)
    if ref.phone is not None:
        return Address("phone", normalise_phone(ref.phone, default_region=spec.default_region,
                                                field=prefix + "phone"))
    assert ref.identity_id is not None
    return ref.identity_id


def survivor(session: Session, identity_id: int) -> Identity | None:
    """The identity an id stands for today: merged-away ids resolve to their survivor."""
    identity = session.get(Identity, identity_id)
    seen = set()
    while identity is not None and identity.merged_into_id is not None and identity.id not in seen:
        seen.add(identity.id)
        identity = session.get(Identity, identity.merged_into_id)
    return identity


def find_contact_point(session: Session, address: Address) -> ContactPoint | None:
    return session.exec(
        select(ContactPoint).where(ContactPoint.kind == address.kind, ContactPoint.value == address.value)
    ).first()


def find_by_address(session: Session, address: Address) -> tuple[Identity, ContactPoint] | None:
    cp = find_contact_point(session, address)
    if cp is None:
        return None
    identity = survivor(session, cp.identity_id)
    if identity is None:
        return None
    return identity, cp


def ensure_contact_point(
    session: Session, address: Address, policy: LoadedPolicy, now: datetime,
    *, identity: Identity | None = None,
) -> tuple[Identity, ContactPoint, bool]:
    """The person and contact point behind an address, created when new.

    With ``identity`` given, a new address is attached to that person; an address that already
    belongs to someone else is returned as it is (merging is the caller's decision).
    """
    found = find_by_address(session, address)
    if found is not None:
        return found[0], found[1], False
    try:
        with session.begin_nested():
            if identity is None:
                identity = Identity(created_at=now, updated_at=now,
                                    account_domain=_account_of(address, policy))
                session.add(identity)
                session.flush()
            elif identity.account_domain is None:
                identity.account_domain = _account_of(address, policy)
            assert identity.id is not None
            cp = ContactPoint(identity_id=identity.id, kind=address.kind, value=address.value,
                              created_at=now)
            session.add(cp)
            session.flush()
    except IntegrityError:
        # Someone else created this address between our look-up and our insert: use theirs.
        found = find_by_address(session, address)
        if found is None:
            raise
        return found[0], found[1], False
    return identity, cp, True


def _account_of(address: Address, policy: LoadedPolicy) -> str | None:
    if address.kind != "email":
        return None
    return company_domain_of(address.value, frozenset(policy.policy.identity.free_mail_domains))


def resolve_for_write(
    session: Session, ref: AddressRef, policy: LoadedPolicy, now: datetime, prefix: str = "",
) -> tuple[Identity, ContactPoint | None]:
    """The person a write names: an address is created if new, an identity id must exist."""
    target = normalise_ref(ref, policy, prefix)
    if isinstance(target, int):
        identity = survivor(session, target)
        if identity is None:
            raise NotFound(f"no identity {target}")
        return identity, None
    identity, cp, _ = ensure_contact_point(session, target, policy, now)
    return identity, cp


def contact_point_for_channel(
    session: Session, identity: Identity, channel_address_kind: str, as_of: datetime | None = None,
) -> ContactPoint | None:
    """The person's first active address of a kind (used when a request names only the identity);
    ``as_of``: among the addresses the person had then."""
    query = (select(ContactPoint)
             .where(ContactPoint.identity_id == identity.id, ContactPoint.kind == channel_address_kind,
                    col(ContactPoint.value).is_not(None))
             .order_by(col(ContactPoint.id)))
    if as_of is not None:
        query = query.where(ContactPoint.created_at <= as_of)
    return session.exec(query).first()



def identity_group(session: Session, survivor_id: int) -> list[int]:
    """The survivor's id and every id merged into it (merges are kept one level deep)."""
    return group_ids(session, survivor_id)


def find_contact_points(conn: Connection, addresses: Iterable[Address]) -> dict[Address, Any]:
    """The contact points of many addresses as read-only rows, by kind and a list of values (the
    unique index serves it)."""
    by_kind: dict[AddressKind, list[str]] = {}
    for kind, value in set(addresses):
        by_kind.setdefault(kind, []).append(value)
    driver = Driver.of(conn)
    return {Address(kind, cp.value or ""): cp for kind, values in by_kind.items()
            for cp in read_contact_points(driver, kind, values)}


def ensure_addresses(conn: Connection, addresses: Iterable[Address], policy: LoadedPolicy,
                     now: datetime) -> dict[Address, tuple[int, int]]:
    """(contact point id, identity id) of many addresses, each new one given a new person, in
    bulk: what ``ensure_contact_point`` does one address at a time (people are created in the
    order their addresses come, a work email's domain as their company). The unique index on
    addresses still decides a race: a concurrent writer of one of them raises IntegrityError."""
    wanted = list(dict.fromkeys(addresses))
    found = {address: (cp.id, cp.identity_id) for address, cp in find_contact_points(conn, wanted).items()}
    new = [address for address in wanted if address not in found]
    if not new:
        return found
    identity, contact_point = Identity.__table__, ContactPoint.__table__  # type: ignore[attr-defined]
    stamp = bind(conn.dialect, identity, "created_at")(now)
    people = insert_with_ids(conn, identity, ("created_at", "updated_at", "account_domain", "is_test"),
                             [(stamp, stamp, _account_of(address, policy), False) for address in new])
    stamp = bind(conn.dialect, contact_point, "created_at")(now)
    cps = insert_with_ids(conn, contact_point, ("identity_id", "kind", "value", "status", "created_at"),
                          [(person, *address, "active", stamp) for person, address in zip(people, new, strict=True)])
    found.update({address: (cp, person) for address, cp, person in zip(new, cps, people, strict=True)})
    return found
