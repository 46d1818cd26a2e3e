"""The gate: load the facts, let the core decide, log the decision, reserve the slot.

One write transaction per decision: the decision log row, and the reservation when asked, are
written together with the read they depend on. On PostgreSQL the person's identity row is
locked first, so two senders racing for the last fatigue slot are serialised and only one
gets it; on SQLite ``BEGIN IMMEDIATE`` serialises writers already.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import Field
from sqlalchemy import Connection, bindparam, insert
from sqlmodel import Session, col, update

from consentgate.core.addresses import Address
from consentgate.core.eligibility import decide
from consentgate.core.facts import Decision, EligibilityRequest, Subject, TouchFact
from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import iso_z
from consentgate.core.tombstones import tombstone_hash
from consentgate.errors import (
    Conflict,
    ConsentgateError,
    NotFound,
    ValidationFailed,
    problem_fields,
)
from consentgate.services.batches import check_items
from consentgate.services.fanout import can_fork, forked_map
from consentgate.services.identities import find_contact_points, normalise_ref, resolve_for_write
from consentgate.services.keys import Actor
from consentgate.services.policies import remember_policy
from consentgate.services.schemas import CLOCK_SKEW, AddressIn, Instant, RowId, utc
from consentgate.store.bulk import binder, draw_ids, insert_rows, insert_with_ids
from consentgate.store.db import Store
from consentgate.store.driver import Driver, compiled, dialect, plan_for_any_keys
from consentgate.store.models import DecisionRecord, Identity, Touch
from consentgate.store.subjects import (
    IdentityRow,
    Person,
    PersonMoved,
    counts_accounts,
    load_subject,
    load_subjects,
    lock_accounts,
    lock_people,
    read_identities,
    read_named,
    read_people,
    read_person,
)


class EligibilityIn(AddressIn):
    channel: str = Field(min_length=1, max_length=32)
    purpose: str = Field(min_length=1, max_length=32)
    program: str | None = Field(None, max_length=100)
    segment: str | None = Field(None, max_length=100)
    campaign: str | None = Field(None, max_length=200)
    brand: str | None = Field(None, min_length=1, max_length=100)
    at: Instant | None = Field(None, description="when the send will happen: now when left out; a later "
                               "instant is decided for then; an earlier one than now (beyond 5 minutes of "
                               "clock skew) is refused")
    reserve: bool = False


class TouchIn(AddressIn):
    reservation_id: RowId | None = None
    channel: str | None = Field(None, max_length=32)
    purpose: str | None = Field(None, max_length=32)
    program: str | None = Field(None, max_length=100)
    segment: str | None = Field(None, max_length=100)
    campaign: str | None = Field(None, max_length=200)
    brand: str | None = Field(None, min_length=1, max_length=100)
    sent_at: Instant | None = None


def _check_channel(item: EligibilityIn | TouchIn, policy: LoadedPolicy, prefix: str) -> None:
    if item.channel not in policy.channels:
        raise ValidationFailed.field(prefix + "channel", f"unknown channel {item.channel!r}; the policy has "
                                     f"{sorted(policy.channels)}")
    if item.purpose not in policy.policy.purposes:
        raise ValidationFailed.field(prefix + "purpose", f"unknown purpose {item.purpose!r}; the policy has "
                                     f"{policy.policy.purposes}")


def _check_at(item: EligibilityIn, now: datetime, prefix: str) -> None:
    # Decided for an instant in the past, a send would be weighed as if the opt-outs received
    # since had not arrived. A sender's clock running a little behind ours is not refused.
    at = utc(item.at)
    if at is not None and at < now - CLOCK_SKEW:
        raise ValidationFailed.field(prefix + "at", "is in the past: the gate decides sends from now on "
                                     "(leave it out for now, or give a later instant)")


def _send_instant(item: EligibilityIn, now: datetime) -> datetime:
    """The instant a send is decided for: ``at`` when later than now, else now (``_check_at``)."""
    at = utc(item.at)
    return at if at is not None and at > now else now


def _target(driver: Driver, ref: Address | int, wanted_kind: str | None
            ) -> tuple[Person | None, Any | None, dict[str, Any]]:
    """The person and the address a request names (``ref``, normalised and checked), as rows;
    unknown addresses give (None, None).

    A channel that reaches the person (``address: none``) has no address to send to: any
    address the request names only finds the person."""
    if isinstance(ref, Address):
        person = read_person(driver, kind=ref.kind, value=ref.value)
        named: dict[str, Any] = {"address": {"kind": ref.kind, "value": ref.value}}
        return (person, _address(person, wanted_kind, ref), named) if person else (None, None, named)
    person = read_person(driver, identity_id=ref)
    named = {"identity_id": ref}
    if person is None:
        return None, None, named
    return person, _address(person, wanted_kind), named


def _check_kind(target: Address, channel: str, wanted_kind: str | None, prefix: str) -> None:
    if wanted_kind is not None and target.kind != wanted_kind:
        raise ValidationFailed.field(prefix + target.kind, f"{channel} goes to a {wanted_kind} address")


def _address(person: Person, kind: str | None, named: Address | None = None) -> Any | None:
    """The contact point a send of ``kind`` goes to: the one named, else the person's first of the
    kind; None for a channel that reaches the person."""
    if kind is None:
        return None
    return person.address(kind, named.value if named is not None else None)


# A merge landing between reading the person and reading their facts sends the gate back to
# read both again; this many times in a row, and it answers 503 (a "no") instead.
_READS = 3
T = TypeVar("T")


def _until_unmoved(read: Callable[[], T]) -> T:
    """``read()``, again while a merge lands in the middle of it (``PersonMoved``), ``_READS`` times at most."""
    for _ in range(_READS - 1):
        try:
            return read()
        except PersonMoved:
            continue
    return read()


def _read(driver: Driver, item: EligibilityIn, policy: LoadedPolicy, secret: str, at: datetime, prefix: str,
          lock: bool = False) -> tuple[IdentityRow | None, Any | None, dict[str, Any], Subject]:
    """The person a request names, the address, the request's own naming of it, and the facts."""
    wanted_kind = policy.channels[item.channel].kind
    ref = normalise_ref(item.ref(), policy, prefix)
    if isinstance(ref, Address):
        _check_kind(ref, item.channel, wanted_kind, prefix)
        if not lock and wanted_kind is not None:
            # By address, one statement reads the usual person whole; the way below knows the rest.
            one = read_named(driver, policy, secret, ref.kind, ref.value, at)
            if one is not None:
                person, target, subject = one
                named = {"address": {"kind": ref.kind, "value": ref.value}}
                return (person.identity if person else None), target, named, subject

    def read() -> tuple[IdentityRow | None, Any | None, dict[str, Any], Subject]:
        person, target, named = _target(driver, ref, wanted_kind)
        identity = person.identity if person else None
        subject = load_subject(driver, policy, secret, identity=identity, target=target, at=at, lock=lock,
                               person=person)
        return identity, target, named, subject

    return _until_unmoved(read)


def decision_answer(record: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The API's answer for a logged decision (``record``: the decision log row's values)."""
    consent = decision.consent
    return {
        "allowed": record["allowed"],
        "decision_id": record["id"],
        "identity_id": record["identity_id"],
        "reasons": record["reasons"],
        "next_allowed_at": iso_z(record["next_allowed_at"]),
        "consent": None if consent is None else {
            "consent_id": consent.id, "consent_type": consent.consent_type,
            "captured_at": iso_z(consent.captured_at), "source": consent.source, "proof_uri": consent.proof_uri,
        },
        "reservation_id": record["reservation_id"],
        "policy_version": record["policy_version"],
    }


def reasons_json(decision: Decision) -> list[dict[str, Any]]:
    return [{"code": str(r.code), "message": r.message,
             **{k: (iso_z(v) if isinstance(v, datetime) else v) for k, v in r.data.items()}}
            for r in decision.reasons]


def check(store: Store, item: EligibilityIn, policy: LoadedPolicy, secret: str, actor: Actor | None,
          now: datetime) -> tuple[dict[str, Any], Decision]:
    """One eligibility question, as the API asks it: the decision log row's values and the decision.

    A reservation is decided and written in one locking transaction. A plain check reads without
    a lock (one statement by address, ``read_named``; otherwise two, checked against a merge in
    between) and then logs the decision in a single insert, all on one driver connection, so
    concurrent checks barely wait for each other. Either way the decision is committed before the
    answer leaves (whether a plain check's commit waits for the disk is the store's
    ``synced_decisions``: see ``store.db.Store``).
    """
    if item.reserve:
        with store.transaction() as session:
            record, decision = decide_one(session, item, policy, secret, actor, now)
            return record.model_dump(), decision
    _check_channel(item, policy, "")
    _check_at(item, now, "")
    at = _send_instant(item, now)
    if policy.version not in store.stored_policy_versions:
        with store.transaction() as session:
            remember_policy(session.connection(), policy, now, store)
    with store.driver() as driver:
        identity, _, named, subject = _read(driver, item, policy, secret, at, "")
        decision = decide(subject, _request(item, at, now), policy)
        row = _record_row(item, identity, named, at, decision, policy, actor, now, secret)
        values = _log_values(_log_binders(driver.dialect), row, {})
        with store.decision_log_turn():
            found = driver.first(compiled(_log_statement, driver.dialect),
                                 dict(zip(_LOG_COLUMNS, values, strict=True)))
    assert found is not None
    row["id"] = found[0]
    return row, decision


def _log_statement(dialect: str) -> Any:
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    return insert(table).values({name: bindparam(name) for name in _LOG_COLUMNS}).returning(table.c.id)


@lru_cache(maxsize=2)
def _log_binders(dialect_name: str) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """Each decision log column with its conversion to what the driver takes (None: as it is)."""
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    return tuple((name, binder(dialect(dialect_name), table, name)) for name in _LOG_COLUMNS)


def _log_values(binders: tuple[tuple[str, Callable[[Any], Any] | None], ...], row: dict[str, Any],
                shared: dict[str, Any]) -> tuple[Any, ...]:
    """A decision log row, driver-ready; ``shared``: columns already converted for every row."""
    return tuple([shared[name] if name in shared else row[name] if convert is None else convert(row[name])
                  for name, convert in binders])


def _request(item: EligibilityIn, at: datetime, now: datetime) -> EligibilityRequest:
    return EligibilityRequest(channel=item.channel, purpose=item.purpose, at=at, program=item.program,
                              segment=item.segment, campaign=item.campaign, brand=item.brand, asked_at=now)


def _held_until(at: datetime, policy: LoadedPolicy) -> datetime:
    """When a reservation for a send at ``at`` runs out unless confirmed: the policy's time to live
    after the send's instant, so that a send reserved for later is held until it can be made."""
    return at + policy.policy.reservations.ttl


def decide_one(session: Session, item: EligibilityIn, policy: LoadedPolicy, secret: str, actor: Actor | None,
               now: datetime, prefix: str = "") -> tuple[DecisionRecord, Decision]:
    """Decide, log and (when asked and allowed) reserve, in the caller's transaction."""
    _check_channel(item, policy, prefix)
    _check_at(item, now, prefix)
    at = _send_instant(item, now)
    session.flush()   # the driver reads below see what this transaction wrote
    conn = session.connection()
    identity, target, named, subject = _read(Driver.of(conn), item, policy, secret, at, prefix, lock=item.reserve)
    decision = decide(subject, _request(item, at, now), policy)
    remember_policy(conn, policy, now)
    record = DecisionRecord(**_record_row(item, identity, named, at, decision, policy, actor, now, secret))
    session.add(record)
    session.flush()
    if item.reserve and decision.allowed and identity is not None and identity.id is not None:
        touch = Touch(identity_id=identity.id, contact_point_id=target.id if target else None,
                      account_domain=identity.account_domain, channel=item.channel, purpose=item.purpose,
                      program=item.program, segment=item.segment, campaign=item.campaign, brand=item.brand,
                      state="reserved", at=at, reserved_at=now, expires_at=_held_until(at, policy),
                      decision_id=record.id, api_key_id=actor.key_id if actor else None, created_at=now)
        session.add(touch)
        session.flush()
        record.reservation_id = touch.id
        session.add(record)
    return record, decision


def decide_batch(store: Store, items: Sequence[Any], policy: LoadedPolicy, secret: str,
                 actor: Actor | None, now: datetime, processes: int = 1) -> list[dict[str, Any]]:
    """Decisions in input order; an invalid item answers with its problem, not a decision.

    The facts for the whole batch are loaded with a handful of set-based queries and the decision
    log is written in one statement. A batch that reserves is one writing transaction which locks
    its people (``_decide_bulk``). A batch of plain checks reads in a reading transaction and logs
    its decisions in a short writing one afterwards, as a single check does: on SQLite a writing
    transaction holds the database's one write lock, and a batch that read under it (about a
    second for 10,000 items) held up every other writer for as long, single checks logging their
    decisions and opt-outs alike.

    ``processes``: a large batch of plain checks is cut into that many parts, each decided and
    logged in a process of its own (``fanout``), as if each part were a batch of its own. Parts
    are independent only because plain checks change nothing a check reads; a batch that may
    reserve is always decided whole, in input order. Only a process running one thread forks
    (``fanout.can_fork``): a threaded server decides every batch itself.
    """
    if (processes > 1 and len(items) >= MIN_PER_PROCESS * 2 and store.seen_by_other_processes
            and not any(map(_may_reserve, items)) and can_fork()):
        parts = min(processes, len(items) // MIN_PER_PROCESS)
        bounds = [len(items) * part // parts for part in range(parts + 1)]
        answers = forked_map(lambda span: _decide_items(store, items[span[0]:span[1]], span[0], policy, secret,
                                                        actor, now),
                             list(itertools.pairwise(bounds)))
        return [answer for part in answers for answer in part]
    return _decide_items(store, items, 0, policy, secret, actor, now)


# Below this many items a part costs more in forking than it saves.
MIN_PER_PROCESS = 1000


def _may_reserve(raw: Any) -> bool:
    # Read before validation, so anything that might validate as true counts.
    return isinstance(raw, dict) and raw.get("reserve") not in (None, False)


def _decide_items(store: Store, items: Sequence[Any], first: int, policy: LoadedPolicy, secret: str,
                  actor: Actor | None, now: datetime) -> list[dict[str, Any]]:
    """``decide_batch`` in this process, for ``items`` whose first is the batch's item ``first``."""
    def check_one(index: int, prefix: str, item: EligibilityIn) -> tuple[EligibilityIn, Any]:
        _check_channel(item, policy, prefix)
        _check_at(item, now, prefix)
        target = normalise_ref(item.ref(), policy, prefix)
        if isinstance(target, Address):
            _check_kind(target, item.channel, policy.channels[item.channel].kind, prefix)
        return item, target

    good, bad = check_items(items, EligibilityIn, check_one, first)
    out: list[dict[str, Any] | None] = [None] * len(items)
    for index, exc in bad.items():
        out[index - first] = _problem(index, exc)
    bulk = [(index, item, target) for index, (item, target) in good]
    if any(item.reserve for _, item, _ in bulk):
        with store.transaction() as session:
            decided, reserved = _decide_bulk(session, bulk, policy, secret, actor, now, reserving=True)
            _log_bulk(session.connection(), decided, policy, now, out, first, reserved)
    elif bulk:
        with store.transaction(write=False) as session:
            decided, _ = _decide_bulk(session, bulk, policy, secret, actor, now)
        with store.transaction(only_decisions=True) as session:
            _log_bulk(session.connection(), decided, policy, now, out, first)
    return [answer for answer in out if answer is not None]


Decided = list[tuple[int, dict[str, Any], Decision]]


def _decide_bulk(session: Session, bulk: list[tuple[int, EligibilityIn, Any]], policy: LoadedPolicy, secret: str,
                 actor: Actor | None, now: datetime, *, reserving: bool = False
                 ) -> tuple[Decided, dict[int, dict[str, Any]]]:
    """Each item's index, decision log row (``_record_row``) and decision, from facts read in bulk,
    decided in input order; and, by item index, the touches reserved.

    ``reserving``: the batch's people are locked (as a single reservation locks its person) and
    read again under the lock, and each item sees the slots reserved by the items before it.
    """
    ats = [_send_instant(item, now) for _, item, _ in bulk]
    if reserving:
        wanted, named, subjects = _read_locked(session, bulk, policy, secret, ats)
    else:
        wanted, named, subjects = _until_unmoved(lambda: _bulk_facts(session, bulk, policy, secret, ats))
    own: dict[int, list[TouchFact]] = {}
    by_account: dict[str, list[TouchFact]] = {}
    decided: Decided = []
    reserved: dict[int, dict[str, Any]] = {}
    for (index, item, _), (identity, target), subject, at, request_named in zip(bulk, wanted, subjects, ats, named,
                                                                                strict=True):
        if identity is not None and (identity.id in own or identity.account_domain in by_account):
            subject = replace(subject, touches=subject.touches + tuple(own.get(identity.id, ())),
                              account_touches=subject.account_touches
                              + tuple(by_account.get(identity.account_domain or "", ())))
        decision = decide(subject, _request(item, at, now), policy)
        decided.append((index, _record_row(item, identity, request_named, at, decision, policy, actor, now, secret),
                        decision))
        if not (item.reserve and decision.allowed and identity is not None):
            continue
        touch = {"identity_id": identity.id, "contact_point_id": target.id if target else None,
                 "account_domain": identity.account_domain, "channel": item.channel, "purpose": item.purpose,
                 "program": item.program, "segment": item.segment, "campaign": item.campaign, "brand": item.brand,
                 "state": "reserved", "at": at, "reserved_at": now, "expires_at": _held_until(at, policy),
                 "api_key_id": actor.key_id if actor else None, "created_at": now}
        reserved[index] = touch
        fact = TouchFact(id=-len(reserved), identity_id=identity.id, channel=item.channel, purpose=item.purpose,
                         at=at, state="reserved", contact_point_id=touch["contact_point_id"], program=item.program,
                         segment=item.segment, campaign=item.campaign, brand=item.brand,
                         expires_at=touch["expires_at"])
        own.setdefault(identity.id, []).append(fact)
        if identity.account_domain:
            by_account.setdefault(identity.account_domain, []).append(fact)
    return decided, reserved


def _read_locked(session: Session, bulk: list[tuple[int, EligibilityIn, Any]], policy: LoadedPolicy, secret: str,
                 ats: list[datetime]) -> tuple[list[tuple[Any, Any]], list[dict[str, Any]], list[Subject]]:
    """``_bulk_facts`` read under the locks of everyone it names (and their companies, when a cap
    counts per company). Read before the lock, a reservation committed meanwhile would be missed:
    lock, read again (and again if a merge meanwhile named someone not yet locked)."""
    driver = Driver.of(session.connection())
    per_account = counts_accounts(policy)
    locked: set[int] = set()
    locked_accounts: set[str] = set()
    for _ in range(_READS):
        wanted, named, subjects = _until_unmoved(lambda: _bulk_facts(session, bulk, policy, secret, ats))
        people = {identity.id for identity, _ in wanted if identity is not None}
        accounts = {identity.account_domain for identity, _ in wanted
                    if per_account and identity is not None and identity.account_domain}
        if driver.dialect == "sqlite" or (people <= locked and accounts <= locked_accounts):
            return wanted, named, subjects
        lock_people(driver, people - locked)
        lock_accounts(driver, accounts - locked_accounts)
        locked, locked_accounts = locked | people, locked_accounts | accounts
    raise PersonMoved(next(iter(people - locked), 0))


_TOUCH_COLUMNS = ("identity_id", "contact_point_id", "account_domain", "channel", "purpose", "program", "segment",
                  "campaign", "brand", "state", "at", "reserved_at", "expires_at", "decision_id", "api_key_id",
                  "created_at")


def _log_bulk(conn: Connection, decided: Decided, policy: LoadedPolicy, now: datetime,
              out: list[dict[str, Any] | None], first: int = 0,
              reserved: Mapping[int, dict[str, Any]] | None = None) -> None:
    """Log the decisions in one statement (and the reservations they made in another) and put
    their answers in place (item ``index`` at ``out[index - first]``)."""
    if not decided:
        return
    remember_policy(conn, policy, now)
    touch_ids: dict[int, int] = {}
    if reserved:
        table = Touch.__table__  # type: ignore[attr-defined]
        touch_ids = dict(zip(reserved, draw_ids(conn, table, len(reserved)), strict=True))
        for index, row, _ in decided:
            if index in touch_ids:
                row["reservation_id"] = touch_ids[index]
    ids = log_decisions(conn, [row for _, row, _ in decided])
    if reserved:
        decision_of = {index: decision_id for (index, _, _), decision_id in zip(decided, ids, strict=True)}
        converters = [binder(conn.dialect, table, name) for name in ("id", *_TOUCH_COLUMNS)]
        rows = [tuple(convert(value) if convert else value for convert, value in zip(
            converters, (touch_ids[index], *(decision_of[index] if name == "decision_id" else touch[name]
                                             for name in _TOUCH_COLUMNS)), strict=True))
                for index, touch in reserved.items()]
        insert_rows(conn, table, ("id", *_TOUCH_COLUMNS), rows)
    for (index, row, decision), decision_id in zip(decided, ids, strict=True):
        out[index - first] = decision_answer({**row, "id": decision_id}, decision)


def _bulk_facts(session: Session, bulk: list[tuple[int, EligibilityIn, Any]], policy: LoadedPolicy, secret: str,
                ats: list[datetime]) -> tuple[list[tuple[Any, Any]], list[dict[str, Any]], list[Subject]]:
    """Each item's person and address, its own naming of them, and the facts, read in bulk."""
    conn = session.connection()
    plan_for_any_keys(conn)
    found = find_contact_points(conn, (t for _, _, t in bulk if isinstance(t, Address)))
    people = read_identities(Driver.of(conn), {cp.identity_id for cp in found.values()})
    by_id = read_people(conn, (t for _, _, t in bulk if not isinstance(t, Address)))
    wanted: list[tuple[Any, Any]] = []
    named: list[dict[str, Any]] = []
    for _, item, target in bulk:
        kind = policy.channels[item.channel].kind
        if isinstance(target, Address):
            cp = found.get(target)
            wanted.append((people.get(cp.identity_id), cp if kind is not None else None) if cp is not None
                          else (None, None))
            named.append({"address": {"kind": target.kind, "value": target.value}})
        else:
            person = by_id.get(target)
            wanted.append((person.identity, _address(person, kind)) if person else (None, None))
            named.append({"identity_id": target})
    return wanted, named, load_subjects(session, policy, secret, wanted, ats)


# The decision log request's key for the person's company and place (``placement``); erasure removes it.
PLACED = "placed"
_LOG_COLUMNS = ("identity_id", "address_hash", "channel", "purpose", "request", "allowed", "reasons", "codes",
                "next_allowed_at", "consent_id", "reservation_id", "policy_version", "decided_at", "api_key_id",
                "is_test")


def log_decisions(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Write many decision log rows (``_record_row``) in one statement; their ids, in order."""
    if not rows:
        return []
    binders = _log_binders(conn.dialect.name)
    # Every row of one batch shares these: converted once.
    shared = {name: convert(rows[0][name]) if convert else rows[0][name] for name, convert in binders
              if name in ("decided_at", "policy_version", "api_key_id")}
    return insert_with_ids(conn, DecisionRecord.__table__, _LOG_COLUMNS,  # type: ignore[attr-defined]
                           [_log_values(binders, row, shared) for row in rows])


def _record_row(item: EligibilityIn, identity: Any | None, named: dict[str, Any], at: datetime,
                decision: Decision, policy: LoadedPolicy, actor: Actor | None, now: datetime,
                secret: str) -> dict[str, Any]:
    address = named.get("address") if identity is None else None
    return {
        "identity_id": identity.id if identity else None, "channel": item.channel, "purpose": item.purpose,
        "address_hash": tombstone_hash(secret, address["kind"], address["value"]) if address else None,
        "request": {**named, "channel": item.channel, "purpose": item.purpose, "program": item.program,
                    "segment": item.segment, "campaign": item.campaign, "brand": item.brand, "at": iso_z(at),
                    "reserve": item.reserve, **_placed(identity)},
        "allowed": decision.allowed, "reasons": reasons_json(decision),
        "codes": ",".join(sorted({str(r.code) for r in decision.reasons})),
        "next_allowed_at": decision.next_allowed_at,
        "consent_id": decision.consent.id if decision.consent else None, "reservation_id": None,
        "policy_version": policy.version, "decided_at": now, "api_key_id": actor.key_id if actor else None,
        "is_test": bool(identity and identity.is_test),
    }


def placement(identity: Any) -> dict[str, Any]:
    """Where the person is and which company they are at, as a decision sees it: logged with the
    decision (``PLACED``) because the identity keeps no history of them, and a replay needs them."""
    return {"account_domain": identity.account_domain, "timezone": identity.timezone,
            "state": identity.state, "country": identity.country}


def _placed(identity: Any | None) -> dict[str, Any]:
    return {} if identity is None else {PLACED: placement(identity)}


def _problem(index: int, exc: ConsentgateError) -> dict[str, Any]:
    return {"index": index, "allowed": False, **problem_fields(exc)}


def record_touch(session: Session, item: TouchIn, policy: LoadedPolicy, actor: Actor | None,
                 now: datetime) -> Touch:
    """A touch made: a reservation turned into a send, or a send the gate was not asked about."""
    sent_at = utc(item.sent_at) or now
    if item.reservation_id is not None:
        touch = session.get(Touch, item.reservation_id)
        if touch is None:
            raise NotFound(f"no reservation {item.reservation_id}")
        if touch.state != "reserved" or (touch.expires_at is not None and touch.expires_at <= now):
            raise Conflict(f"reservation {item.reservation_id} is {_state(touch, now)}: ask the gate again")
        touch.state, touch.sent_at, touch.at = "sent", sent_at, sent_at
    else:
        if item.channel is None or item.purpose is None:
            raise ValidationFailed.field("channel" if item.channel is None else "purpose",
                                         "give reservation_id, or an address with channel and purpose")
        _check_channel(item, policy, "")
        identity, cp = resolve_for_write(session, item.ref(), policy, now)
        assert identity.id is not None
        if policy.channels[item.channel].kind is None:
            cp = None   # a channel that reaches the person: the address only found them
        touch = Touch(identity_id=identity.id, contact_point_id=cp.id if cp else None,
                      account_domain=identity.account_domain, channel=item.channel, purpose=item.purpose,
                      program=item.program, segment=item.segment, campaign=item.campaign, brand=item.brand,
                      state="sent", at=sent_at, sent_at=sent_at, api_key_id=actor.key_id if actor else None,
                      created_at=now)
    session.add(touch)
    person = session.get(Identity, touch.identity_id)
    if person is not None and (person.last_touch_at is None or person.last_touch_at <= sent_at):
        person.last_touch_at, person.last_touch_channel, person.updated_at = sent_at, touch.channel, now
        session.add(person)
    session.flush()
    return touch


def _state(touch: Touch, now: datetime) -> str:
    if touch.state == "reserved":
        return "expired"
    return touch.state


def release_reservation(session: Session, reservation_id: int, now: datetime) -> None:
    touch = session.get(Touch, reservation_id)
    if touch is None:
        raise NotFound(f"no reservation {reservation_id}")
    if touch.state == "sent":
        raise Conflict(f"reservation {reservation_id} was already used for a send")
    if touch.state == "reserved":
        touch.state = "released"
        touch.released_at = now
        session.add(touch)


def expire_reservations(session: Session, now: datetime) -> int:
    """Reservations never used give their slot back when their time to live ends."""
    result = session.execute(
        update(Touch).where(Touch.state == "reserved", col(Touch.expires_at) <= now)  # type: ignore[arg-type]
        .values(state="expired")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

