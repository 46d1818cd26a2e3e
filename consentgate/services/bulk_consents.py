"""The fast path of the consent import: a block of rows in a handful of set-based statements.

Rows are validated and normalised in Python with the same rules as the API (``plan_block``: pure,
its input and output cheap to send between processes, so large files are planned in worker
processes while this one writes). Then the block's addresses are looked up in a few queries, new
people and addresses are inserted in bulk, and the consent events are inserted in bulk and
chained (``write_plans``). Rows the fast path
cannot settle alone — ones naming an external id or identity attributes, or whose addresses
belong to two different people (a merge) — are handed back to the one-row-at-a-time path, which
does the same thing slower.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from pydantic import ValidationError
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from consentgate.core.addresses import (
    Address,
    company_domain_of,
    normalise_domain,
    normalise_email,
    normalise_phone,
)
from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import iso_z
from consentgate.errors import ConsentgateError, FieldError, ValidationFailed, pydantic_field_errors
from consentgate.services.batches import check_items
from consentgate.services.consents import (
    BatchResult,
    check_consent,
    consent_answer,
    failed,
    write_consent,
    wrong_address,
)
from consentgate.services.identities import find_contact_points, normalise_ref
from consentgate.services.keys import Actor
from consentgate.services.schemas import Attributes, ConsentIn, IdentityIn, utc
from consentgate.store import chain
from consentgate.store.bulk import among, bind, draw_ids, insert_rows, insert_with_ids
from consentgate.store.db import Store
from consentgate.store.models import ConsentEvent, ContactPoint, Identity

IDENTITY_ONLY = ("external_id", "company_domain", "timezone", "state", "country", "name")
# The identity columns that are the person's attributes (``Attributes``), in this order in ``Plan.person``.
_PERSON_ATTRIBUTES = ("timezone", "state", "country", "name")
# What a row states about the consent itself, in this order in ``Plan.event``.
EVENT_FIELDS = ("channel", "purpose", "consent_type", "captured_at", "source", "proof_uri", "proof_sha256",
                "brand", "consent_text", "ip", "user_agent", "expires_at", "api_key_id")
# The event columns only known once it is written.
_IDS = ("id", "identity_id", "contact_point_id")
# An event's hashed content, its ids left as slots for the writer.
_CONTENT = chain.content_shape("consent_event", _IDS)
# An event's personal values, digested in this order.
_PERSONAL = chain.personal_shape(("address", "ip", "user_agent"))
assert _PERSONAL.keys == ("address", "ip", "user_agent")


class Block(NamedTuple):
    """Whole CSV records as raw text, the first of them on file line ``first_line``."""

    first_line: int
    text: str


class Plan(NamedTuple):
    """A row that passed every check: its normalised addresses and the event it will write."""

    line: int
    # Addresses are (kind, value): Address, or a plain tuple once the plan has crossed from a worker.
    target: Address                   # the address the consent is on
    addresses: tuple[Address, ...]    # every address the row names
    event: tuple[Any, ...]            # EVENT_FIELDS values as the driver takes them (``bulk.bind``)
    pii_salt: str
    pii_digest: str
    content: bytes                    # the event's chain content (_CONTENT.template), its ids left open
    # What the row says of the person (identity columns): external id, time zone, state,
    # country, name, company domain; None when it says nothing.
    person: tuple[str | None, ...] | None = None


@dataclass
class BlockPlan:
    """What planning says of a block's rows: plans, refused rows and rows for the one-row path."""

    rows: int = 0
    # Plans as plain tuples, addresses too: they cross between processes three times faster than
    # NamedTuples (which pickle by class); ``Plan._make`` reads them back.
    plans: list[tuple[Any, ...]] = field(default_factory=list)
    refused: list[tuple[int, list[FieldError], dict[str, str]]] = field(default_factory=list)
    slow: list[tuple[int, dict[str, str]]] = field(default_factory=list)


@dataclass(frozen=True)
class BlockOutcome:
    imported: int
    # The index of the first plan that names two people (a merge, for the one-row path); the
    # plans before it are written, none after it.
    stopped_at: int | None
    # (consent event id, identity id) of each plan written, in order.
    written: list[tuple[int, int]] = field(default_factory=list)


# Set in a record whose cells do not line up with the header (``record``).
MISALIGNED = "\x00misaligned"


def record(header: list[str], values: list[str]) -> dict[str, str]:
    """{column: cell} for one record. One with more or fewer cells than the header has its values
    under the wrong columns (an unquoted comma in a cell shifts every cell after it): it carries
    ``MISALIGNED`` and is rejected (``aligned``), never read as it falls."""
    row = dict(zip(header, values, strict=False))
    if len(values) != len(header):
        row[MISALIGNED] = (f"{len(values)} cells where the header has {len(header)} columns (an unquoted comma "
                           "or quote?): the row was not read")
    return row


def aligned(row: dict[str, str]) -> dict[str, str]:
    """``row``, refused with a reason if its cells do not line up with the header."""
    if MISALIGNED in row:
        raise ValidationFailed.field("", row[MISALIGNED])
    return row


def block_rows(block: Block, header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: cell}) for each record (``record``), blank lines skipped."""
    reader = csv.reader(io.StringIO(block.text, newline=""))
    first = block.first_line
    line = first
    for values in reader:
        if values:
            yield line, record(header, values)
        line = first + reader.line_num


class _Planning(NamedTuple):
    """What every row of a block is planned with."""

    policy: LoadedPolicy
    now: datetime
    recorded_at: str                   # ``now`` as the chain's content has it
    to_db: Callable[[Any], Any]        # a time as the driver takes it (``bulk.bind``)
    salts: Iterator[str]


def plan_block(block: Block, header: list[str], policy: LoadedPolicy, now: datetime, dialect: Dialect) -> BlockPlan:
    planned = BlockPlan()
    planning = planning_for(policy, now, dialect)
    for line, row in block_rows(block, header):
        planned.rows += 1
        try:
            plan = plan_row(line, row, planning)
        except ValidationError as exc:
            planned.refused.append((line, pydantic_field_errors(exc), row))
        except ValidationFailed as exc:
            planned.refused.append((line, exc.errors, row))
        except ConsentgateError as exc:
            planned.refused.append((line, [FieldError("", exc.detail)], row))
        else:
            if plan is None:
                planned.slow.append((line, row))
            else:
                planned.plans.append((plan.line, tuple(plan.target), tuple(map(tuple, plan.addresses)),
                                      *plan[3:]))
    return planned


def plan_row(line: int, row: dict[str, str], planning: _Planning) -> Plan | None:
    """Validate and normalise one row; None when it needs the one-row path."""
    policy, now = planning.policy, planning.now
    aligned(row)
    if row.get("identity_id") or _reaches_person(policy, row.get("channel")):
        return None
    # Blank cells are absent, as on the one-row path (``imports._cells``).
    consent = {k: text for k, v in row.items() if v and (text := v.strip()) and k not in IDENTITY_ONLY}
    # What the row says of the person is checked first, as POST /v1/identities would check it.
    cells = {c: row[c].strip() for c in IDENTITY_ONLY if row.get(c) and row[c].strip()}
    email, phone = (consent.get("email") or "").strip() or None, (consent.get("phone") or "").strip() or None
    if cells and email is None and phone is None:
        return None    # a person named by external id alone: the one-row path
    attributes = None
    if cells:
        given = {k: cells[k] for k in _PERSON_ATTRIBUTES if k in cells}
        attributes = Attributes(**given) if given else None
        IdentityIn(email=email, phone=phone, external_id=cells.get("external_id"),
                   company_domain=cells.get("company_domain"), attributes=attributes)
    spec = policy.policy.identity
    addresses = []
    if consent.get("email"):
        addresses.append(Address("email", normalise_email(consent["email"],
                                                          casefold_local=spec.casefold_email_local_part)))
    if consent.get("phone"):
        addresses.append(Address("phone", normalise_phone(consent["phone"], default_region=spec.default_region)))
    person = None
    if cells:
        domain = normalise_domain(cells["company_domain"]) if "company_domain" in cells else None
        person = (cells.get("external_id"), *(getattr(attributes, k) if attributes else None
                                              for k in _PERSON_ATTRIBUTES), domain)
    channel = policy.channels.get(consent.get("channel", ""))
    if channel is not None and len(addresses) == 2:
        consent.pop("phone" if channel.kind == "email" else "email")
    item = ConsentIn.model_validate(consent)
    check_consent(item, policy, now)
    kind = policy.channels[item.channel].kind
    target = None
    for address in addresses:
        if address.kind == kind:
            target = address
            break
    if kind is None or target is None:
        raise ValidationFailed.field(kind or "channel", f"a {item.channel} consent needs a {kind} address")
    return plan_consent(line, item, target, tuple(addresses), planning, person=person)


def _reaches_person(policy: LoadedPolicy, channel: str | None) -> bool:
    """A channel without an address (``address: none``): its consents name no contact point, and
    go the one-at-a-time way (``write_consent``), which knows that."""
    return bool(channel) and channel.strip() in policy.person_channels  # type: ignore[union-attr]


def plan_consent(line: int, item: ConsentIn, target: Address, addresses: tuple[Address, ...], planning: _Planning,
                 api_key_id: int | None = None, person: tuple[str | None, ...] | None = None) -> Plan:
    """The plan of a checked consent on ``target`` (``addresses``: every address its row names)."""
    to_db = planning.to_db
    captured_at, expires_at = utc(item.captured_at), utc(item.expires_at)
    proof_sha256 = item.proof_sha256.lower() if item.proof_sha256 else None
    salt = next(planning.salts)
    digest = chain.pii_digest_of(_PERSONAL, salt, (target.value, item.ip, item.user_agent))
    content = _CONTENT.template({
        "channel": item.channel, "purpose": item.purpose, "consent_type": item.consent_type,
        "captured_at": captured_at.isoformat(), "recorded_at": planning.recorded_at, "source": item.source,
        "proof_uri": item.proof_uri, "proof_sha256": proof_sha256, "brand": item.brand,
        "consent_text": item.consent_text, "expires_at": expires_at.isoformat() if expires_at else None,
        "api_key_id": api_key_id, "inbound_message_id": None, "pii_digest": digest})
    event = (item.channel, item.purpose, item.consent_type, to_db(captured_at), item.source, item.proof_uri,
             proof_sha256, item.brand, item.consent_text, item.ip, item.user_agent,
             to_db(expires_at) if expires_at else None, api_key_id)
    return Plan(line, target, addresses, event, salt, digest, content, person)


def planning_for(policy: LoadedPolicy, now: datetime, dialect: Dialect) -> _Planning:
    return _Planning(policy, now, now.isoformat(), bind(dialect, _EVENT, "captured_at"), chain.salts())


_IDENTITY = Identity.__table__  # type: ignore[attr-defined]
_CONTACT_POINT = ContactPoint.__table__  # type: ignore[attr-defined]
_EVENT = ConsentEvent.__table__  # type: ignore[attr-defined]
# An existing person seen with a first work email takes its domain as their company.
_SET_ACCOUNT = (update(_IDENTITY).where(_IDENTITY.c.id == bindparam("person"), _IDENTITY.c.account_domain.is_(None))
                .values(account_domain=bindparam("domain")))
# What rows said of a person already in the store: the attributes and company they gave replace
# what was there, an external id is taken only by someone who had none (as ``upsert_identity``).
_SAY_OF_KNOWN = (update(_IDENTITY).where(_IDENTITY.c.id == bindparam("person")).values(
    external_id=func.coalesce(_IDENTITY.c.external_id, bindparam("ext")),
    account_domain=func.coalesce(bindparam("company"), _IDENTITY.c.account_domain),
    updated_at=bindparam("stamp"),
    **{name: func.coalesce(bindparam(f"new_{name}"), _IDENTITY.c[name]) for name in _PERSON_ATTRIBUTES}))
_EVENT_COLUMNS = ("identity_id", "contact_point_id", *EVENT_FIELDS, "recorded_at", "pii_salt", "pii_digest")


def write_plans(connection: Connection, plans: Iterable[Plan], policy: LoadedPolicy, now: datetime) -> BlockOutcome:
    """Write planned rows in the connection's transaction, up to the first that would merge two people."""
    plans = list(plans)
    wanted = {a for p in plans for a in p.addresses}
    known: dict[Address, tuple[int, int]] = {
        address: (cp.id, cp.identity_id) for address, cp in find_contact_points(connection, wanted).items()}

    # Who each row is: an existing identity id, or a new person ("new", n) shared by rows naming the same address.
    owner: dict[Address, tuple[str, int]] = {a: ("old", known[a][1]) for a in wanted if a in known}
    # External ids are keys to a person too, and a person keeps the first one they were given.
    taken = _external_owners(connection, {p.person[0] for p in plans if p.person and p.person[0]})
    has_external = _external_ids_of(connection, {known[a][1] for p in plans if p.person for a in p.addresses
                                                 if a in known} | set(taken.values()))
    claimed: dict[str, tuple[str, int]] = {}
    traits: dict[tuple[str, int], dict[str, Any]] = {}     # what rows said of each person, the last word kept
    new_people = 0
    kept: list[Plan] = []
    stopped_at = None
    for index, plan in enumerate(plans):
        if plan.person is None and len(plan.addresses) == 1:
            # Most rows: one address and nothing about the person; a person at most, never a merge.
            address = plan.addresses[0]
            if address not in owner:
                owner[address] = ("new", new_people)
                new_people += 1
            kept.append(plan)
            continue
        external_id = plan.person[0] if plan.person else None
        owners = {owner[a] for a in plan.addresses if a in owner}
        if external_id is not None and external_id in claimed:
            owners.add(claimed[external_id])
        elif external_id is not None and external_id in taken:
            owners.add(("old", taken[external_id]))
        if len(owners) > 1:
            stopped_at = index    # two people: a merge, which the rows after it must see done
            break
        found = owners.pop() if owners else None
        if found is None:
            found = ("new", new_people)
            new_people += 1
        for address in plan.addresses:
            owner[address] = found
        if plan.person is not None:
            said = traits.setdefault(found, {})
            already = said.get("external_id") or (has_external.get(found[1]) if found[0] == "old" else None)
            if external_id is not None and not already:
                said["external_id"] = external_id
                claimed[external_id] = found
            said.update({name: value for name, value in zip(_PERSON_ATTRIBUTES, plan.person[1:5], strict=True)
                         if value is not None})
            if plan.person[5] is not None:
                said["company"] = plan.person[5]
        kept.append(plan)

    # A person's company is the domain of the first work email they are seen with, as when the
    # addresses arrive one by one (``ensure_contact_point``); owner lists new addresses in row order.
    free_mail = frozenset(policy.policy.identity.free_mail_domains)
    accounts: dict[tuple[str, int], str] = {}
    for (kind, value), person in owner.items():
        if kind == "email" and (kind, value) not in known and (domain := company_domain_of(value, free_mail)):
            accounts.setdefault(person, domain)
    found_company = [{"person": number, "domain": domain} for (state, number), domain in accounts.items()
                     if state == "old"]
    if found_company:
        connection.execute(_SET_ACCOUNT, found_company)
    known_said = [{"person": number, "ext": said.get("external_id"), "company": said.get("company"), "stamp": now,
                   **{f"new_{name}": said.get(name) for name in _PERSON_ATTRIBUTES}}
                  for (state, number), said in traits.items() if state == "old"]
    if known_said:
        connection.execute(_SAY_OF_KNOWN, known_said)
    new_ids: list[int] = []
    if new_people:
        stamp = bind(connection.dialect, _IDENTITY, "created_at")(now)
        unsaid = (None,) * (1 + len(_PERSON_ATTRIBUTES))
        people = []
        for i in range(new_people):
            told = traits.get(("new", i)) if traits else None
            if told is None:
                people.append((stamp, stamp, accounts.get(("new", i)), False, *unsaid))
            else:
                people.append((stamp, stamp, told.get("company") or accounts.get(("new", i)), False,
                               told.get("external_id"), *(told.get(name) for name in _PERSON_ATTRIBUTES)))
        new_ids = insert_with_ids(connection, _IDENTITY, ("created_at", "updated_at", "account_domain", "is_test",
                                                          "external_id", *_PERSON_ATTRIBUTES), people)

    def identity_of(address: Address) -> int:
        state, number = owner[address]
        return number if state == "old" else new_ids[number]

    # Ids in row order, as one row at a time would give them (a person's first address is the one
    # a check by identity id reaches), rows inserted in address order (the unique index's).
    new_addresses = [a for a in owner if a not in known]
    if new_addresses:
        stamp = bind(connection.dialect, _CONTACT_POINT, "created_at")(now)
        for address, cp_id in zip(new_addresses, draw_ids(connection, _CONTACT_POINT, len(new_addresses)),
                                  strict=True):
            known[address] = (cp_id, identity_of(address))
        insert_rows(connection, _CONTACT_POINT, ("id", "identity_id", "kind", "value", "status", "created_at"),
                    [(known[a][0], known[a][1], *a, "active", stamp) for a in sorted(new_addresses)])

    recorded = bind(connection.dialect, _EVENT, "recorded_at")(now)
    rows = []
    hashed = []
    for plan, event_id in zip(kept, draw_ids(connection, _EVENT, len(kept)), strict=True):
        cp_id, identity_id = known[plan.target]
        rows.append((event_id, identity_id, cp_id, *plan.event, recorded, plan.pii_salt, plan.pii_digest))
        # The slots in the template's (sorted) order: contact_point_id, id, identity_id.
        hashed.append((event_id, chain.hash_filled("consent_event", plan.content, (cp_id, event_id, identity_id))))
    insert_rows(connection, _EVENT, ("id", *_EVENT_COLUMNS), rows)
    chain.append_hashes(connection, "consent_event", hashed, now)
    return BlockOutcome(len(kept), stopped_at, [(row[0], row[1]) for row in rows])


def _external_owners(connection: Connection, external_ids: set[str | None]) -> dict[str, int]:
    """Who holds each of these external ids today (a merged-away holder's survivor)."""
    wanted = [e for e in external_ids if e]
    if not wanted:
        return {}
    query = select(_IDENTITY.c.external_id, _IDENTITY.c.id, _IDENTITY.c.merged_into_id).where(
        among(_IDENTITY.c.external_id, wanted, connection.dialect))
    return {external_id: merged_into or person for external_id, person, merged_into in connection.execute(query)}


def _external_ids_of(connection: Connection, people: set[int]) -> dict[int, str | None]:
    if not people:
        return {}
    query = select(_IDENTITY.c.id, _IDENTITY.c.external_id).where(among(_IDENTITY.c.id, people, connection.dialect))
    return {person: external_id for person, external_id in connection.execute(query)}


def write_in_order(items: list[Plan | int], write_run: Callable[[list[Plan]], BlockOutcome | None],
                   write_one: Callable[[int], None]) -> None:
    """Write plans and one-row items (named by their line or index) in their order: each run of
    plans in bulk (``write_run``), the others one at a time (``write_one``) in their place, so
    that who is the oldest in a merge, and so what a merge keeps, is what writing them one by one
    gives. A run stopped by a merge goes on with that plan on the one-row path; a run that
    ``write_run`` could not write (None: someone wrote one of its addresses meanwhile) is written
    one row at a time."""
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, int):
            write_one(item)
            i += 1
            continue
        j = i
        while j < len(items) and isinstance(items[j], Plan):
            j += 1
        run = cast(list[Plan], items[i:j])
        outcome = write_run(run)
        if outcome is None:
            items[i:j] = [plan.line for plan in run]
        elif outcome.stopped_at is None:
            i = j
        else:
            i += outcome.stopped_at
            items[i] = run[outcome.stopped_at].line


def write_consent_batch(store: Store, items: Sequence[Any], policy: LoadedPolicy, actor: Actor | None,
                        now: datetime) -> list[BatchResult]:
    """Validate every item, then write the good ones in one transaction; bad ones fail alone.

    Items naming an address are written as an import writes its rows, a handful of set-based
    statements for all of them (``write_plans``); items naming an identity id go one at a time
    (``write_consent``), in their place. Written one at a time, 10,000 items took 20-60 s, all
    of it holding SQLite's write lock (every check waiting to log its decision waited as long).
    """
    planning = planning_for(policy, now, store.engine.dialect)
    api_key_id = actor.key_id if actor else None

    def check_one(index: int, prefix: str, item: ConsentIn) -> tuple[ConsentIn, Plan | int]:
        check_consent(item, policy, now, prefix)
        target = normalise_ref(item.ref(), policy, prefix)
        if not isinstance(target, Address) or _reaches_person(policy, item.channel):
            return item, index
        if target.kind != policy.channels[item.channel].kind:
            raise wrong_address(prefix, target.kind, item.channel)
        return item, plan_consent(index, item, target, (target,), planning, api_key_id)

    good, bad = check_items(items, ConsentIn, check_one)
    results: list[BatchResult | None] = [None] * len(items)
    for index, exc in bad.items():
        results[index] = failed(index, exc)
    checked = {index: item for index, (item, _) in good}
    queue = [planned for _, (_, planned) in good]

    with store.transaction() as session:
        def write_run(run: list[Plan]) -> BlockOutcome | None:
            try:
                with session.begin_nested():
                    outcome = write_plans(session.connection(), run, policy, now)
            except IntegrityError:
                return None   # an address written meanwhile (PostgreSQL): one at a time, in its savepoint
            recorded_at = iso_z(now)
            for plan, (event_id, identity_id) in zip(run[:outcome.imported], outcome.written, strict=True):
                results[plan.line] = BatchResult(plan.line, 201, {"consent_id": event_id, "identity_id": identity_id,
                                                                  "recorded_at": recorded_at})
            return outcome

        def write_one(index: int) -> None:
            try:
                with session.begin_nested():
                    event = write_consent(session, checked[index], policy, actor, now, prefix=f"items[{index}].")
                results[index] = BatchResult(index, 201, consent_answer(event))
            except ConsentgateError as exc:
                results[index] = failed(index, exc)

        write_in_order(queue, write_run, write_one)
    return [r for r in results if r is not None]
