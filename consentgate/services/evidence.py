"""The identity evidence bundle: everything behind a person's decisions, with its chain links.

Counsel gets one document per person: the identity, every contact point, consent event (with
its proof reference), revocation (with the raw inbound message), suppression, merge, touch and
decision, and the hash-chain entries that cover the ledger rows, so the bundle can be checked
against ``/v1/audit/verify`` months later. Erased values appear as null with ``erased: true``.

Touches and decisions, one per send or check and so by far the most numerous (a person checked
daily for years), can be limited to a window around what is disputed; the ledger rows, which
decide what every decision could rely on, are always whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from consentgate.core.addresses import companies_of
from consentgate.core.timefmt import iso_z
from consentgate.core.tombstones import tombstone_hash
from consentgate.services.directory import identity_view
from consentgate.services.identities import identity_group
from consentgate.store.chain import LIFT
from consentgate.store.models import (
    ChainEntry,
    ConsentEvent,
    ContactPoint,
    DecisionRecord,
    DncNumber,
    ErasureEvent,
    Identity,
    InboundMessage,
    MergeEvent,
    Revocation,
    Suppression,
    Tombstone,
    Touch,
)

BUNDLE_VERSION = "consentgate-evidence/1"
# What the bundle shows of another person's opt-out for the whole company.
_ACCOUNT_FIELDS = ("id", "scope", "account_domain", "channels", "purposes", "brands", "source", "received_at",
                   "effective_at", "deadline_at", "lifted_at", "erased")


def _window(query: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def _row(obj: Any, drop: tuple[str, ...] = ("pii_salt",)) -> dict[str, Any]:
    out = {}
    for column in obj.__table__.columns:
        if column.name in drop:
            continue
        value = getattr(obj, column.name)
        out[column.name] = iso_z(value) if hasattr(value, "tzinfo") and hasattr(value, "hour") else value
    if "erased_at" in out:
        out["erased"] = out["erased_at"] is not None
    return out


def identity_evidence(session: Session, person: Identity, now: Any, secret: str, since: datetime | None = None,
                      until: datetime | None = None, free_mail: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``since``/``until``: only the touches (by ``at``) and decisions (by ``decided_at``) in
    ``[since, until)``; ``secret`` finds the tombstones of the person's addresses."""
    assert person.id is not None
    ids = identity_group(session, person.id)
    identities = list(session.exec(select(Identity).where(col(Identity.id).in_(ids))))
    cps = list(session.exec(select(ContactPoint).where(col(ContactPoint.identity_id).in_(ids))))
    consents = list(session.exec(select(ConsentEvent).where(col(ConsentEvent.identity_id).in_(ids))
                                 .order_by(col(ConsentEvent.id))))
    revocations = list(session.exec(select(Revocation).where(col(Revocation.identity_id).in_(ids))
                                    .order_by(col(Revocation.id))))
    suppressions = list(session.exec(select(Suppression).where(col(Suppression.identity_id).in_(ids))
                                     .order_by(col(Suppression.id))))
    merges = list(session.exec(select(MergeEvent).where(
        col(MergeEvent.survivor_id).in_(ids) | col(MergeEvent.absorbed_id).in_(ids)).order_by(col(MergeEvent.id))))
    erasures = list(session.exec(select(ErasureEvent).where(col(ErasureEvent.identity_id).in_(ids))))
    touches = list(session.exec(_window(select(Touch).where(col(Touch.identity_id).in_(ids)), Touch.at, since, until)
                                .order_by(col(Touch.id))))
    decisions = list(session.exec(_window(select(DecisionRecord).where(col(DecisionRecord.identity_id).in_(ids)),
                                          DecisionRecord.decided_at, since, until).order_by(col(DecisionRecord.id))))
    # What else a decision about them may cite: everyone's opt-outs for their company (another
    # person's rows, so without that person's words or addresses), opt-outs an erased earlier
    # owner of one of their addresses left behind, and the National DNC Registry's entries.
    # The companies the gate places them at: their accounts' and their work emails' (``decide``).
    domains = frozenset().union(*(companies_of(i.account_domain, cps, free_mail) for i in identities))
    company = list(session.exec(select(Revocation).where(
        Revocation.scope == "account", col(Revocation.account_domain).in_(domains),
        or_(col(Revocation.identity_id).is_(None), col(Revocation.identity_id).not_in(ids)))
        .order_by(col(Revocation.id)))) if domains else []
    hashes = [tombstone_hash(secret, cp.kind, cp.value) for cp in cps if cp.value is not None]
    # ... and, for an erased person, the tombstones their own erasure left.
    tombstones = list(session.exec(select(Tombstone).where(or_(
        col(Tombstone.address_hash).in_(hashes), col(Tombstone.erasure_event_id).in_([e.id for e in erasures])))
        .order_by(col(Tombstone.id))))
    phones = [cp.value for cp in cps if cp.kind == "phone" and cp.value is not None]
    registry = list(session.exec(select(DncNumber).where(col(DncNumber.phone).in_(phones)))) if phones else []
    message_ids = {r.inbound_message_id for r in revocations if r.inbound_message_id} | {
        c.inbound_message_id for c in consents if c.inbound_message_id}
    messages = {m.id: m for m in session.exec(select(InboundMessage).where(col(InboundMessage.id).in_(message_ids)))}

    ledger = {"consent_event": [c.id for c in consents], "revocation": [r.id for r in (*revocations, *company)],
              LIFT: [r.id for r in (*revocations, *company) if r.lifted_at is not None],
              "suppression": [s.id for s in suppressions], "merge_event": [m.id for m in merges],
              "erasure_event": [e.id for e in erasures]}
    chain: list[dict[str, Any]] = []
    for table, row_ids in ledger.items():
        if not row_ids:
            continue
        for entry in session.exec(select(ChainEntry).where(ChainEntry.table_name == table,
                                                           col(ChainEntry.row_id).in_(row_ids))):
            chain.append({"seq": entry.seq, "table": entry.table_name, "row_id": entry.row_id,
                          "content_hash": entry.content_hash, "prev_hash": entry.prev_hash,
                          "entry_hash": entry.entry_hash})
    chain.sort(key=lambda e: e["seq"])

    def with_message(row: Any) -> dict[str, Any]:
        out = _row(row)
        message = messages.get(row.inbound_message_id) if row.inbound_message_id else None
        out["inbound_message"] = _row(message) if message is not None else None
        return out

    return {
        "bundle": BUNDLE_VERSION,
        "generated_at": iso_z(now),
        "window": {"since": iso_z(since), "until": iso_z(until)},
        "identity": identity_view(session, person, now, free_mail),
        "identities": [_row(i) for i in identities],
        "contact_points": [_row(cp) for cp in cps],
        "consent_events": [with_message(c) for c in consents],
        "revocations": [with_message(r) for r in revocations],
        "account_revocations": [{name: value for name, value in _row(r).items() if name in _ACCOUNT_FIELDS}
                                for r in company],
        "tombstones": [_row(t) for t in tombstones],
        "dnc_registry": [_row(n) for n in registry],
        "suppressions": [_row(s) for s in suppressions],
        "merges": [_row(m) for m in merges],
        "erasures": [_row(e) for e in erasures],
        "touches": [_row(t) for t in touches],
        "decisions": [_row(d) for d in decisions],
        "chain": chain,
    }
