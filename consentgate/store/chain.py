"""The tamper-evident chain over every ledger row.

Each ledger row gets a content hash: sha256 over its canonical non-personal columns plus
``pii_digest``, a salted digest of its personal values (address, raw text, IP, user agent). The
chain links content hashes in write order: ``entry_hash = sha256(prev_hash | table | row_id |
content_hash)``. An erasure blanks personal values and drops the salt but keeps ``pii_digest``,
so the chain still verifies; while a row is not erased, its personal values are checked against
``pii_digest`` too, so editing an address in place is caught as well.

Appends are serialised (a transaction-scoped advisory lock on PostgreSQL; SQLite writers are
already serialised by ``BEGIN IMMEDIATE``) so concurrent writers can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, SQLModel, select

from consentgate.store.models import (
    ChainEntry,
    ConsentEvent,
    ContactPoint,
    ErasureEvent,
    MergeEvent,
    Revocation,
    Suppression,
)

GENESIS = "0" * 64
_LOCK_KEY = 0x636F6E73656E74  # "consent": any constant shared by every writer

# Columns that hold personal values, per ledger table; the chain covers only their digest.
PERSONAL = {
    "consent_event": ("ip", "user_agent"),
    "revocation": ("raw_text",),
    "suppression": ("note",),
    "merge_event": (),
    "erasure_event": (),
}
# Columns never hashed: the digest machinery itself and erasure bookkeeping.
_SKIP = {"pii_salt", "pii_digest", "erased_at", "lifted_at", "lifted_by_message_id",
         "confirmation_sent_at", "attributed_touch_id"}
LEDGER_MODELS: dict[str, type[SQLModel]] = {
    "consent_event": ConsentEvent,
    "revocation": Revocation,
    "suppression": Suppression,
    "merge_event": MergeEvent,
    "erasure_event": ErasureEvent,
}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def pii_digest(salt: str, values: Mapping[str, Any]) -> str:
    """Salted digest of a row's personal values (the address included)."""
    payload = json.dumps({k: _canonical(v) for k, v in sorted(values.items())}, sort_keys=True)
    return hashlib.sha256(f"{salt}|{payload}".encode()).hexdigest()


def personal_values(table: str, row: Any, address: str | None) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in PERSONAL[table]}
    values["address"] = address
    return values


def seal(table: str, row: Any, address: str | None) -> None:
    """Give a ledger row its salt and personal digest before it is hashed."""
    if table not in PERSONAL or not hasattr(row, "pii_salt"):
        return
    row.pii_salt = secrets.token_hex(16)
    row.pii_digest = pii_digest(row.pii_salt, personal_values(table, row, address))


def content_hash(table: str, row: Any) -> str:
    """sha256 of a ledger row's canonical non-personal content plus its personal digest."""
    personal = set(PERSONAL[table])
    content = {
        column.name: _canonical(getattr(row, column.name))
        for column in row.__table__.columns
        if column.name not in _SKIP and column.name not in personal
    }
    content["pii_digest"] = getattr(row, "pii_digest", "")
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{table}|{payload}".encode()).hexdigest()


def link(prev_hash: str, table: str, row_id: int, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{table}|{row_id}|{digest}".encode()).hexdigest()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def _head(session: Session) -> tuple[int, str]:
    last = session.exec(select(ChainEntry).order_by(ChainEntry.seq.desc()).limit(1)).first()  # type: ignore[union-attr]
    return (last.seq, last.entry_hash) if last else (0, GENESIS)


def append(session: Session, table: str, rows: Iterable[Any], now: datetime) -> None:
    """Link flushed ledger rows (with ids) into the chain, in the caller's transaction."""
    rows = list(rows)
    if not rows:
        return
    _lock(session)
    seq, prev = _head(session)
    entries = []
    for row in rows:
        digest = content_hash(table, row)
        seq += 1
        prev = link(prev, table, row.id, digest)
        entries.append({"seq": seq, "table_name": table, "row_id": row.id, "content_hash": digest,
                        "prev_hash": "", "entry_hash": prev, "created_at": now})
    # prev_hash of each entry is the entry_hash of the one before it.
    previous = _head(session)[1]
    for entry in entries:
        entry["prev_hash"] = previous
        previous = entry["entry_hash"]
    session.execute(ChainEntry.__table__.insert(), entries)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken: dict[str, Any] | None


def verify(session: Session, batch: int = 2000) -> VerifyResult:
    """Recompute the whole chain and name the first broken link."""
    prev, checked = GENESIS, 0
    for entries in _batches(session, batch):
        rows = _load_rows(session, entries)
        addresses = _load_addresses(session, rows.values())
        for entry in entries:
            row = rows.get((entry.table_name, entry.row_id))
            problem = _problem(entry, row, prev, addresses)
            if problem:
                return VerifyResult(False, checked, {"seq": entry.seq, "table": entry.table_name,
                                                     "row_id": entry.row_id, "problem": problem})
            prev = entry.entry_hash
            checked += 1
        session.expunge_all()
    return VerifyResult(True, checked, None)


def _problem(entry: ChainEntry, row: Any, prev: str, addresses: dict[int, str | None]) -> str | None:
    if row is None:
        return "the ledger row is missing"
    if entry.prev_hash != prev:
        return "the link does not follow the previous entry"
    if content_hash(entry.table_name, row) != entry.content_hash:
        return "the row's content no longer matches its hash"
    if link(prev, entry.table_name, entry.row_id, entry.content_hash) != entry.entry_hash:
        return "the entry hash does not match"
    salt = getattr(row, "pii_salt", None)
    if salt and getattr(row, "erased_at", None) is None:
        address = addresses.get(getattr(row, "contact_point_id", None) or 0)
        if pii_digest(salt, personal_values(entry.table_name, row, address)) != row.pii_digest:
            return "the row's personal values no longer match their digest"
    return None


def _batches(session: Session, batch: int) -> Iterator[list[ChainEntry]]:
    last = 0
    while True:
        entries = list(session.exec(select(ChainEntry).where(ChainEntry.seq > last)
                                    .order_by(ChainEntry.seq).limit(batch)))  # type: ignore[arg-type]
        if not entries:
            return
        yield entries
        last = entries[-1].seq


def _load_rows(session: Session, entries: list[ChainEntry]) -> dict[tuple[str, int], Any]:
    wanted: dict[str, list[int]] = {}
    for entry in entries:
        wanted.setdefault(entry.table_name, []).append(entry.row_id)
    rows: dict[tuple[str, int], Any] = {}
    for table, ids in wanted.items():
        model = LEDGER_MODELS.get(table)
        if model is None:
            continue
        for row in session.exec(select(model).where(model.id.in_(ids))):  # type: ignore[attr-defined]
            rows[(table, row.id)] = row
    return rows


def _load_addresses(session: Session, rows: Iterable[Any]) -> dict[int, str | None]:
    ids = {cp for row in rows if (cp := getattr(row, "contact_point_id", None)) is not None}
    if not ids:
        return {}
    query = select(ContactPoint.id, ContactPoint.value).where(ContactPoint.id.in_(ids))  # type: ignore[union-attr]
    return {cp_id: value for cp_id, value in session.exec(query)}
