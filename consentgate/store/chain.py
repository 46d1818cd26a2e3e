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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from json.encoder import encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import Connection, func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, select

from consentgate.store.bulk import among, bind, insert_rows
from consentgate.store.models import (
    ChainEntry,
    ConsentEvent,
    ContactPoint,
    ErasureEvent,
    Identity,
    MergeEvent,
    Revocation,
    Suppression,
    Tombstone,
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
# A row's ``chain_scheme`` (1 where its table has no such column) says how it was chained. Scheme
# 1 is how every row was chained at first. From scheme 2 a revocation's free-text reason is
# personal too, covered by the digest rather than the content, so an erasure can blank it; the
# scheme itself is then part of the content, so changing it breaks the row's hash.
_PERSONAL_FROM = {2: {"revocation": ("reason",)}}   # the last is models.CHAIN_SCHEME, what rows are written with
# Columns that joined a table's content with a scheme: from scheme 2 an erasure covers its
# tombstones (their digest, and when they expire; ``tombstones_digest``).
_CONTENT_FROM = {2: {"erasure_event": ("tombstones_digest", "tombstones_expire_at")}}
# Columns never hashed: the digest machinery itself and erasure bookkeeping.
_SKIP = {"pii_salt", "pii_digest", "erased_at", "lifted_at", "lifted_by_message_id",
         "confirmation_sent_at", "attributed_touch_id", "chain_scheme"}
LEDGER_MODELS: dict[str, type[SQLModel]] = {
    "consent_event": ConsentEvent,
    "revocation": Revocation,
    "suppression": Suppression,
    "merge_event": MergeEvent,
    "erasure_event": ErasureEvent,
}
# Later changes the gate makes to a ledger row that change what it allows, each chained as an
# entry of its own (kind, the row's id) over the columns it changed: a START lifting an opt-out.
# A row changed so without its entry is named by ``verify``, as is a suppression lifted at all
# (the gate never lifts one).
LIFT = "revocation_lift"
AMENDMENTS = {LIFT: ("revocation", ("lifted_at", "lifted_by_message_id"))}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def pii_digest(salt: str, values: Mapping[str, Any]) -> str:
    """Salted digest of a row's personal values (the address included)."""
    return _salted_digest(salt, _personal_shape(tuple(values)).encode({k: _canonical(v) for k, v in values.items()}))


def personal_shape(keys: Iterable[str]) -> Shape:
    """The ``Shape`` of these personal values, for ``pii_digest_of`` (its ``keys`` in order)."""
    return _personal_shape(tuple(sorted(keys)))


def pii_digest_of(shape: Shape, salt: str, values: Sequence[str | None]) -> str:
    """``pii_digest`` of text values given in ``shape.keys`` order: an importer digests every row
    with the same keys, and building a mapping per row to have it sorted again cost a third."""
    return _salted_digest(salt, shape.encode_values(values))


def _salted_digest(salt: str, payload: str) -> str:
    return hashlib.sha256(f"{salt}|{payload}".encode()).hexdigest()


# json.dumps(..., sort_keys=True) as written when the chain began; built once, not per row.
_PERSONAL = json.JSONEncoder(sort_keys=True)


@cache
def _personal_shape(keys: tuple[str, ...]) -> Shape:
    return Shape(_PERSONAL, keys)


@cache
def personal_columns(table: str, scheme: int = 1) -> tuple[str, ...]:
    """The columns of a ledger table whose values its rows of ``scheme`` cover by their digest."""
    return PERSONAL[table] + tuple(name for since, added in sorted(_PERSONAL_FROM.items()) if since <= scheme
                                   for name in added.get(table, ()))


def scheme_of(row: Any) -> int:
    """The chain scheme of a ledger row, as an object or as a mapping of its columns."""
    scheme = row.get("chain_scheme") if isinstance(row, Mapping) else getattr(row, "chain_scheme", None)
    return scheme or 1


def personal_values(table: str, row: Any, address: str | None) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in personal_columns(table, scheme_of(row))}
    values["address"] = address
    return values


def personal_values_of(table: str, row: Mapping[str, Any], address: str | None) -> dict[str, Any]:
    """``personal_values`` of a row read as a mapping of its columns."""
    values = {name: row[name] for name in personal_columns(table, scheme_of(row))}
    values["address"] = address
    return values


SALT_BYTES = 16


def new_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def salts(batch: int = 1000) -> Iterator[str]:
    """``new_salt()`` values without end, drawn from the system's generator ``batch`` at a time
    (an importer salts every row)."""
    width = 2 * SALT_BYTES
    while True:
        drawn = secrets.token_hex(SALT_BYTES * batch)
        for start in range(0, len(drawn), width):
            yield drawn[start:start + width]


def seal(table: str, row: Any, address: str | None) -> None:
    """Give a ledger row its salt and personal digest before it is hashed."""
    if table not in PERSONAL or not hasattr(row, "pii_salt"):
        return
    row.pii_salt = new_salt()
    row.pii_digest = pii_digest(row.pii_salt, personal_values(table, row, address))


@cache
def hashed_columns(table: str, scheme: int = 1) -> tuple[str, ...]:
    """The columns a ledger table's content hash covers, for its rows of ``scheme``: all but
    personal values and bookkeeping, and the scheme itself from scheme 2 on."""
    personal = set(personal_columns(table, scheme))
    later = {name for since, added in _CONTENT_FROM.items() if since > scheme for name in added.get(table, ())}
    columns = LEDGER_MODELS[table].__table__.columns  # type: ignore[attr-defined]
    covered = tuple(c.name for c in columns if c.name not in _SKIP and c.name not in personal and c.name not in later)
    return (*covered, "chain_scheme") if scheme > 1 else covered


_TOMBSTONE_COLUMNS = ("id", "address_hash", "kind", "reason_kind", "channels", "purposes", "brands", "received_at",
                      "erased_at", "expires_at", "lifted_at")


def tombstones_digest(tombstones: Iterable[Any]) -> str:
    """The digest an erasure chains of the tombstones it left (objects or mappings of their columns),
    in id order: removing one, or changing what it stops, changes it."""
    rows = [row if isinstance(row, Mapping) else {name: getattr(row, name) for name in _TOMBSTONE_COLUMNS}
            for row in tombstones]
    content = [{name: _canonical(row[name]) for name in _TOMBSTONE_COLUMNS}
               for row in sorted(rows, key=lambda r: r["id"])]
    return hashlib.sha256(_CANONICAL.encode(content).encode()).hexdigest()


def content_hash(table: str, row: Any) -> str:
    """sha256 of a ledger row's canonical non-personal content plus its personal digest."""
    values = {name: getattr(row, name) for name in hashed_columns(table, scheme_of(row))}
    values["pii_digest"] = getattr(row, "pii_digest", "")
    return content_hash_of(table, values)


def content_hash_of(table: str, values: Mapping[str, Any]) -> str:
    """``content_hash`` of a row read as a mapping of its columns."""
    content = {name: _canonical(values[name]) for name in hashed_columns(table, scheme_of(values))}
    content["pii_digest"] = values.get("pii_digest", "")
    return hash_canonical(table, content)


def hash_canonical(table: str, content: dict[str, Any]) -> str:
    """``content_hash`` of content already in canonical form: every hashed column, times as
    ISO 8601 text, plus ``pii_digest``. Bulk writers build it directly, which is several times
    cheaper per row than going through attributes."""
    payload = _CANONICAL.encode(content)
    return hashlib.sha256(f"{table}|{payload}".encode()).hexdigest()


# The canonical JSON of hashed content: sorted keys, no spaces, anything unusual as its str().
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


class Shape:
    """The JSON an encoder writes for content with these keys, as a format string built once.

    Encoding a dict with sorted keys was the costliest thing an importer did per row. With the
    keys fixed, only the values are encoded (strings by the json module's own C escaper, anything
    else by ``encoder`` itself), so the text is byte for byte what ``encoder.encode`` writes.
    Keys in ``later`` are integer columns known only once the row is inserted: ``template``
    leaves them as %d slots that ``hash_filled`` fills in (a value cannot be taken for a slot:
    its own % signs are doubled).
    """

    def __init__(self, encoder: json.JSONEncoder, keys: Iterable[str], later: Sequence[str] = ()) -> None:
        assert encoder.sort_keys, "a fixed shape is the encoder's text only when it sorts keys"
        order = sorted({*keys, *later})
        self.keys = tuple(k for k in order if k not in later)   # the values, in this order
        self._encoder = encoder
        self._escape = encode_basestring_ascii if encoder.ensure_ascii else encode_basestring

        def part(key: str, value: str) -> str:
            return encoder.encode(key) + encoder.key_separator + value

        self._plain = "{" + encoder.item_separator.join(
            part(k.replace("%", "%%"), "%s") for k in self.keys) + "}" if not later else None
        self._slotted = "{" + encoder.item_separator.join(
            part(k.replace("%", "%%%%"), "%%d" if k in later else "%s") for k in order) + "}"

    def encode(self, content: Mapping[str, Any]) -> str:
        """``encoder.encode(content)`` (a shape without slots)."""
        return self.encode_values([content[k] for k in self.keys])

    def encode_values(self, values: Sequence[Any]) -> str:
        """``encode`` of the values of ``keys``, in that order."""
        assert self._plain is not None
        return self._plain % tuple(map(self._value, values))

    def template(self, content: Mapping[str, Any]) -> bytes:
        """The JSON with the ``later`` keys as %d slots and every other % doubled, encoded: filling
        bytes is half the cost of filling text and encoding it, and the writer fills one per row."""
        # ``_value`` inlined: a planner runs this for every row of an import, a dozen keys each.
        escape, encode = self._escape, self._encoder.encode
        values = []
        for key in self.keys:
            value = content[key]
            text = "null" if value is None else escape(value) if type(value) is str else encode(value)
            values.append(text.replace("%", "%%") if "%" in text else text)
        return (self._slotted % tuple(values)).encode()

    def _value(self, value: Any) -> str:
        if value is None:
            return "null"
        if type(value) is str:
            return self._escape(value)
        return self._encoder.encode(value)


def content_shape(table: str, later: Sequence[str] = ()) -> Shape:
    """The ``Shape`` of a ledger table's hashed content (``hash_canonical``'s payload)."""
    return Shape(_CANONICAL, (*hashed_columns(table), "pii_digest"), later)


def hash_template(table: str, template: bytes, later: Mapping[str, int]) -> str:
    """``hash_canonical`` of a ``Shape.template`` with its slots filled (keys, as JSON, in sorted order)."""
    return hash_filled(table, template, tuple(later[name] for name in sorted(later)))


def hash_filled(table: str, template: bytes, values: tuple[int, ...]) -> str:
    """``hash_template`` with the ids already in the slots' order (their names sorted): an
    importer fills millions of templates of one shape."""
    return hashlib.sha256(table.encode() + b"|" + template % values).hexdigest()


def link(prev_hash: str, table: str, row_id: int, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{table}|{row_id}|{digest}".encode()).hexdigest()


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


_HEAD = select(ChainEntry.seq, ChainEntry.entry_hash).order_by(ChainEntry.seq.desc()).limit(1)  # type: ignore[attr-defined]


_ENTRY_COLUMNS = ("seq", "table_name", "row_id", "content_hash", "prev_hash", "entry_hash", "created_at")


def append(session: Session, table: str, rows: Iterable[Any], now: datetime) -> None:
    """Link flushed ledger rows (with ids) into the chain, in the caller's transaction."""
    append_hashes(session.connection(), table, [(row.id, content_hash(table, row)) for row in rows], now)


def append_hashes(connection: Connection, table: str, hashed: Sequence[tuple[int, str]], now: datetime) -> None:
    """Link ledger rows given as (id, content hash) into the chain, in the connection's transaction."""
    if not hashed:
        return
    _lock(connection)
    head = connection.execute(_HEAD).first()
    seq, prev = (head[0], head[1]) if head else (0, GENESIS)
    table_ = ChainEntry.__table__  # type: ignore[attr-defined]
    created_at = bind(connection.dialect, table_, "created_at")(now)
    entries = []
    for row_id, digest in hashed:
        seq += 1
        entry_hash = link(prev, table, row_id, digest)
        entries.append((seq, table, row_id, digest, prev, entry_hash, created_at))
        prev = entry_hash
    insert_rows(connection, table_, _ENTRY_COLUMNS, entries)


def amendment_hash(kind: str, row: Any) -> str:
    """The content hash of an amendment of ``row`` (an object or a mapping of its columns)."""
    _, columns = AMENDMENTS[kind]
    values = row if isinstance(row, Mapping) else {name: getattr(row, name) for name in ("id", *columns)}
    return hash_canonical(kind, {"id": values["id"], **{name: _canonical(values[name]) for name in columns}})


def append_amendments(session: Session, kind: str, rows: Iterable[Any], now: datetime) -> None:
    """Chain an amendment of each of these flushed ledger rows, in the caller's transaction."""
    append_hashes(session.connection(), kind, [(row.id, amendment_hash(kind, row)) for row in rows], now)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken: dict[str, Any] | None


def verify(session: Session, batch: int = 2000, *, after: int = 0, until: int | None = None,
           now: datetime | None = None) -> VerifyResult:
    """Recompute the whole chain and name the first broken link; or only the entries with
    ``after < seq <= until``, linked from the entry before them (their own range vouches for it).
    ``now`` (the clock by default) says which erasures' tombstones may have expired."""
    prev, checked = _hash_up_to(session, after), 0
    for entries in _batches(session, batch, after, until):
        rows = _load_rows(session, entries)
        addresses = _load_addresses(session, rows.values())
        amended = _amended(session, rows)
        tombstones = _tombstones_left(session, rows, now or datetime.now(UTC))
        for entry in entries:
            row = rows.get((entry.table_name, entry.row_id))
            problem = (_problem(entry, row, prev, addresses) or _unchained_change(entry, row, amended)
                       or _tombstones_changed(entry, row, tombstones))
            if problem:
                return VerifyResult(False, checked, {"seq": entry.seq, "table": entry.table_name,
                                                     "row_id": entry.row_id, "problem": problem})
            prev = entry.entry_hash
            checked += 1
    return VerifyResult(True, checked, None)


def unchained_row(session: Session) -> dict[str, Any] | None:
    """The first ledger row of each table that no chain entry covers, if any: the chain vouches
    for what it links, and a row slipped into a ledger table beside it (a forged consent) would
    be read by the gate all the same. One index probe per row."""
    for table, model in LEDGER_MODELS.items():
        rows = model.__table__  # type: ignore[attr-defined]
        entries = ChainEntry.__table__  # type: ignore[attr-defined]
        linked = sa_select(entries.c.seq).where(entries.c.table_name == table, entries.c.row_id == rows.c.id)
        found = session.execute(sa_select(rows.c.id).where(~linked.exists()).order_by(rows.c.id).limit(1)).first()
        if found is not None:
            return {"seq": None, "table": table, "row_id": found[0],
                    "problem": "the ledger row has no chain entry"}
    # A chained merge is never undone: a person split off again would be read on their own, their
    # opt-outs and suppressions no longer the survivor's.
    merges, people = MergeEvent.__table__, Identity.__table__  # type: ignore[attr-defined]
    split = session.execute(sa_select(merges.c.id).join(people, people.c.id == merges.c.absorbed_id)
                            .where(people.c.merged_into_id.is_(None)).order_by(merges.c.id).limit(1)).first()
    if split is not None:
        return {"seq": None, "table": "merge_event", "row_id": split[0],
                "problem": "the person this merge absorbed is no longer merged into anyone"}
    return None


def _problem(entry: Any, row: dict[str, Any] | None, prev: str, addresses: dict[int, str | None]) -> str | None:
    if row is None:
        return "the ledger row is missing"
    if entry.prev_hash != prev:
        return "the link does not follow the previous entry"
    amendment = entry.table_name in AMENDMENTS
    expected = amendment_hash(entry.table_name, row) if amendment else content_hash_of(entry.table_name, row)
    if expected != entry.content_hash:
        return "the row's content no longer matches its hash"
    if link(prev, entry.table_name, entry.row_id, entry.content_hash) != entry.entry_hash:
        return "the entry hash does not match"
    if amendment:
        return None
    if not PERSONAL.get(entry.table_name):
        return None
    salt = row.get("pii_salt")
    personal = personal_values_of(entry.table_name, row, addresses.get(row.get("contact_point_id") or 0))
    if row.get("erased_at") is not None:
        # An erasure blanks the values and drops the salt; any value there now was put back. (A
        # revocation's reason stays when it is the gate's own words, not the person's.)
        if salt or any(value not in (None, "") for name, value in personal.items() if name != "reason"):
            return "an erased row holds personal values"
        return None
    if not salt:
        # Sealed rows carry a digest in their (chained) content; only a row chained without one
        # has no salt to check by.
        return "the row's salt was removed: its personal values can no longer be checked" if row.get(
            "pii_digest") else None
    if pii_digest(salt, personal) != row["pii_digest"]:
        return "the row's personal values no longer match their digest"
    return None


def _unchained_change(entry: Any, row: dict[str, Any] | None, amended: set[tuple[str, int]]) -> str | None:
    """A change that stops the gate denying, made to the row without the entry that records it."""
    if row is None:
        return None
    if entry.table_name == "revocation" and row.get("lifted_at") is not None \
            and (LIFT, entry.row_id) not in amended:
        return "the opt-out was lifted without a chained record of it"
    if entry.table_name == "suppression" and row.get("lifted_at") is not None:
        return "the suppression was lifted, which the gate never does"
    return None


def _tombstones_changed(entry: Any, row: dict[str, Any] | None, left: dict[int, list[Any]]) -> str | None:
    if row is None or entry.table_name != "erasure_event" or entry.row_id not in left:
        return None
    if tombstones_digest(left[entry.row_id]) != row["tombstones_digest"]:
        return "the erasure's tombstones were removed or changed before they expired"
    return None


def _tombstones_left(session: Session, rows: dict[tuple[str, int], Any], now: datetime) -> dict[int, list[Any]]:
    """The tombstones of each erasure among these rows that chained them and whose tombstones
    have not expired (the retention job may have purged those that have)."""
    erasures = [row_id for (table, row_id), row in rows.items()
                if table == "erasure_event" and row.get("tombstones_expire_at") and row["tombstones_expire_at"] > now]
    if not erasures:
        return {}
    table = Tombstone.__table__  # type: ignore[attr-defined]
    left: dict[int, list[Any]] = {row_id: [] for row_id in erasures}
    query = sa_select(table).where(among(table.c.erasure_event_id, erasures, session.get_bind().dialect))
    for tombstone in session.execute(query).mappings():
        left[tombstone["erasure_event_id"]].append(dict(tombstone))
    return left


def _amended(session: Session, rows: dict[tuple[str, int], Any]) -> set[tuple[str, int]]:
    """(kind, row id) of the chained amendments of these rows that need one (lifted revocations)."""
    lifted = [row_id for (table, row_id), row in rows.items() if table == "revocation" and row.get("lifted_at")]
    if not lifted:
        return set()
    table = ChainEntry.__table__  # type: ignore[attr-defined]
    query = sa_select(table.c.row_id).where(table.c.table_name == LIFT,
                                            among(table.c.row_id, lifted, session.get_bind().dialect))
    return {(LIFT, row_id) for row_id in session.execute(query).scalars()}


def _hash_up_to(session: Session, seq: int) -> str:
    """The entry hash the chain had reached at ``seq`` (the last entry at or before it)."""
    table = ChainEntry.__table__  # type: ignore[attr-defined]
    found = session.execute(sa_select(table.c.entry_hash).where(table.c.seq <= seq)
                            .order_by(table.c.seq.desc()).limit(1)).scalar() if seq else None
    return found or GENESIS


def last_seq(session: Session) -> int:
    table = ChainEntry.__table__  # type: ignore[attr-defined]
    return int(session.execute(sa_select(func.coalesce(func.max(table.c.seq), 0))).scalar_one())


def _batches(session: Session, batch: int, after: int, until: int | None) -> Iterator[list[Any]]:
    # Plain rows, not ORM objects: building and instrumenting an object per row was most of the
    # time of a whole-ledger check.
    table = ChainEntry.__table__  # type: ignore[attr-defined]
    last = after
    while True:
        query = sa_select(table).where(table.c.seq > last)
        if until is not None:
            query = query.where(table.c.seq <= until)
        entries = list(session.execute(query.order_by(table.c.seq).limit(batch)))
        if not entries:
            return
        yield entries
        last = entries[-1].seq


def _load_rows(session: Session, entries: list[Any]) -> dict[tuple[str, int], Any]:
    wanted: dict[str, list[int]] = {}
    for entry in entries:
        wanted.setdefault(entry.table_name, []).append(entry.row_id)
    rows: dict[tuple[str, int], Any] = {}
    for table, ids in wanted.items():
        model = LEDGER_MODELS.get(AMENDMENTS[table][0] if table in AMENDMENTS else table)
        if model is None:
            continue
        columns = model.__table__  # type: ignore[attr-defined]
        query = sa_select(columns).where(among(columns.c.id, ids, session.get_bind().dialect))
        for row in session.execute(query).mappings():
            rows[(table, row["id"])] = dict(row)
    return rows


def _load_addresses(session: Session, rows: Iterable[dict[str, Any]]) -> dict[int, str | None]:
    ids = {cp for row in rows if (cp := row.get("contact_point_id")) is not None}
    if not ids:
        return {}
    query = select(ContactPoint.id, ContactPoint.value).where(among(ContactPoint.id, ids, session.get_bind().dialect))
    return {cp_id: value for cp_id, value in session.exec(query) if cp_id is not None}
