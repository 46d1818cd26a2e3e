"""The fast path of the consent import: a chunk of rows in a handful of set-based statements.

Rows are validated and normalised in Python (the same rules as the API), then the chunk's
addresses are looked up in two queries, new people and addresses are inserted in bulk, and the
consent events are inserted in bulk and chained. Rows the fast path cannot settle alone — ones
naming an external id or identity attributes, or whose addresses belong to two different people
(a merge) — are handed back to the one-row-at-a-time path, which does the same thing slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, text
from sqlmodel import Session

from consentgate.core.addresses import Address, company_domain_of, normalise_email, normalise_phone
from consentgate.core.policy import LoadedPolicy
from consentgate.errors import ConsentgateError, FieldError, ValidationFailed, pydantic_field_errors
from consentgate.services.consents import check_consent
from consentgate.services.identities import find_contact_points
from consentgate.services.schemas import ConsentIn, utc
from consentgate.store import chain
from consentgate.store.models import ConsentEvent, ContactPoint, Identity

IDENTITY_ONLY = ("external_id", "company_domain", "timezone", "state", "country", "name")


@dataclass
class Planned:
    line: int
    row: dict[str, str]
    item: ConsentIn
    target: Address                   # the address the consent is on
    addresses: list[Address]          # every address the row names


@dataclass(frozen=True)
class ChunkOutcome:
    imported: int
    rejected: list[tuple[int, list[FieldError], dict[str, str]]]
    slow: list[tuple[int, dict[str, str]]]


def plan_row(line: int, row: dict[str, str], policy: LoadedPolicy, now: datetime) -> Planned | None:
    """Validate and normalise one row; None when it needs the one-row path."""
    if any(row.get(c) for c in IDENTITY_ONLY) or row.get("identity_id"):
        return None
    consent = {k: v for k, v in row.items() if v and k not in IDENTITY_ONLY}
    spec = policy.policy.identity
    addresses = []
    if consent.get("email"):
        addresses.append(Address("email", normalise_email(consent["email"],
                                                          casefold_local=spec.casefold_email_local_part)))
    if consent.get("phone"):
        addresses.append(Address("phone", normalise_phone(consent["phone"], default_region=spec.default_region)))
    channel = policy.channels.get(consent.get("channel", ""))
    if channel is not None and len(addresses) == 2:
        consent.pop("phone" if channel.address == "email" else "email")
    item = ConsentIn.model_validate(consent)
    check_consent(item, policy, now)
    kind = policy.channels[item.channel].address
    target = next((a for a in addresses if a.kind == kind), None)
    if target is None:
        raise ValidationFailed.field(kind, f"a {item.channel} consent needs a {kind} address")
    return Planned(line, row, item, target, addresses)


class _EventRow(SimpleNamespace):
    """A consent_event row as plain attributes: what the chain hashes, without ORM bookkeeping."""

    __table__ = ConsentEvent.__table__  # type: ignore[attr-defined]


def _insert_returning(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows through Core (no ORM bookkeeping) and return their ids in input order.

    On PostgreSQL the ids are drawn from the table's sequence first and the rows go in with COPY,
    several times faster than multi-row INSERT ... RETURNING.
    """
    if not rows:
        return []
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [row[0] for row in connection.execute(statement, rows)]
    ids = list(connection.execute(
        text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)"),
        {"n": len(rows)}).scalars())
    quoted = ", ".join(f'"{name}"' for name in ["id", *rows[0]])
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row_id, row in zip(ids, rows, strict=True):
            copy.write_row([row_id, *row.values()])
    return ids


def import_chunk(session: Session, rows: Sequence[tuple[int, dict[str, str]]], policy: LoadedPolicy,
                 now: datetime) -> ChunkOutcome:
    planned: list[Planned] = []
    rejected: list[tuple[int, list[FieldError], dict[str, str]]] = []
    slow: list[tuple[int, dict[str, str]]] = []
    for line, row in rows:
        try:
            plan = plan_row(line, row, policy, now)
        except ValidationError as exc:
            rejected.append((line, pydantic_field_errors(exc), row))
            continue
        except ValidationFailed as exc:
            rejected.append((line, exc.errors, row))
            continue
        except ConsentgateError as exc:
            rejected.append((line, [FieldError("", exc.detail)], row))
            continue
        if plan is None:
            slow.append((line, row))
        else:
            planned.append(plan)
    if not planned:
        return ChunkOutcome(0, rejected, slow)

    wanted = {a for p in planned for a in p.addresses}
    known: dict[Address, tuple[int, int]] = {
        address: (cp.id or 0, cp.identity_id) for address, cp in find_contact_points(session, wanted).items()}

    # Who each row is: an existing identity id, or a new person ("new", n) shared by rows naming the same address.
    owner: dict[Address, Any] = {a: ("old", known[a][1]) for a in wanted if a in known}
    new_people: list[Address] = []
    kept: list[Planned] = []
    for plan in planned:
        owners = {owner[a] for a in plan.addresses if a in owner}
        if len(owners) > 1:
            slow.append((plan.line, plan.row))    # two people: a merge, done by the one-row path
            continue
        person = owners.pop() if owners else ("new", len(new_people))
        if person[0] == "new" and person[1] == len(new_people):
            new_people.append(plan.addresses[0])
        for address in plan.addresses:
            owner[address] = person
        kept.append(plan)

    free_mail = frozenset(policy.policy.identity.free_mail_domains)
    new_ids: list[int] = []
    if new_people:
        accounts = {}
        for address, person in owner.items():
            if person[0] == "new" and address.kind == "email":
                accounts.setdefault(person[1], company_domain_of(address.value, free_mail))
        result = _insert_returning(session, Identity, [
            {"created_at": now, "updated_at": now, "account_domain": accounts.get(i), "is_test": False}
            for i in range(len(new_people))])
        new_ids = list(result)

    def identity_of(address: Address) -> int:
        person = owner[address]
        return person[1] if person[0] == "old" else new_ids[person[1]]

    new_addresses = sorted(a for a in owner if a not in known)
    if new_addresses:
        result = _insert_returning(session, ContactPoint, [
            {"identity_id": identity_of(a), "kind": a.kind, "value": a.value, "status": "active", "created_at": now}
            for a in new_addresses])
        for address, cp_id in zip(new_addresses, result, strict=True):
            known[address] = (cp_id, identity_of(address))

    columns = [c.name for c in ConsentEvent.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
    events = []
    for plan in kept:
        item = plan.item
        cp_id, identity_id = known[plan.target]
        event = _EventRow(**dict.fromkeys(columns), id=None)
        event.__dict__.update(
            identity_id=identity_id, contact_point_id=cp_id, channel=item.channel, purpose=item.purpose,
            consent_type=item.consent_type, captured_at=utc(item.captured_at), recorded_at=now, source=item.source,
            proof_uri=item.proof_uri, proof_sha256=item.proof_sha256.lower() if item.proof_sha256 else None,
            brand=item.brand, consent_text=item.consent_text, ip=item.ip, user_agent=item.user_agent,
            expires_at=utc(item.expires_at), pii_digest="")
        chain.seal("consent_event", event, plan.target.value)
        events.append(event)
    ids = _insert_returning(session, ConsentEvent, [{name: getattr(e, name) for name in columns} for e in events])
    for event, event_id in zip(events, ids, strict=True):
        event.id = event_id
    chain.append(session, "consent_event", events, now)
    return ChunkOutcome(len(events), rejected, slow)
