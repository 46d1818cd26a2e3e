"""CSV imports: CRM consent exports, suppression lists and the National DNC Registry file.

Files are streamed (never read whole) and written a part at a time, one transaction each; a bad
row fails alone and is reported with its line number and field. Consent files take the bulk
path (``bulk_consents``, planned by worker processes in ``planning``) and fall back to one row
at a time, each in its own savepoint, for what only that path can do (identity columns,
merges); suppression files and dry runs go row by row. Rows go through the same normalisation
and use-cases as the HTTP API: re-importing the same people in another spelling matches them,
and an erased person's tombstones still hold.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from consentgate.core.addresses import Address, normalise_phone
from consentgate.core.policy import LoadedPolicy
from consentgate.errors import ConsentgateError, ValidationFailed, pydantic_field_errors
from consentgate.services.bulk_consents import (
    Block,
    BlockOutcome,
    BlockPlan,
    Plan,
    aligned,
    block_rows,
    record,
    write_in_order,
    write_plans,
)
from consentgate.services.consents import write_consent
from consentgate.services.directory import describe_identity, upsert_identity
from consentgate.services.identities import normalise_ref
from consentgate.services.planning import (
    PlanningFailed,
    UnreadableLine,
    checked_lines,
    planned_blocks,
    read_blocks,
)
from consentgate.services.revocations import check_suppression_address, write_suppression, write_suppressions
from consentgate.services.schemas import Attributes, ConsentIn, IdentityIn, SuppressionIn
from consentgate.store.db import Store
from consentgate.store.models import DncNumber

CHUNK = 1000
# A North American number as the registry writes it: area code and exchange never start with 0 or 1.
_NANP = re.compile(r"[2-9]\d{2}[2-9]\d{6}")
BULK_CHUNK = 5000
DNC_CHUNK = 5000
CONSENT_COLUMNS = ("email", "phone", "identity_id", "channel", "purpose", "consent_type", "captured_at", "source",
                   "proof_uri", "proof_sha256", "brand", "consent_text", "ip", "user_agent", "expires_at")
IDENTITY_COLUMNS = ("external_id", "company_domain", "timezone", "state", "country", "name")
CONSENT_REQUIRED = ("channel", "purpose", "consent_type", "captured_at", "source")
SUPPRESSION_COLUMNS = ("email", "phone", "kind", "since", "note")


@dataclass(frozen=True)
class Rejected:
    """One rejected row: where it is, which field is wrong and why, and the row as read."""

    line: int
    field: str
    message: str
    row: dict[str, str]


@dataclass
class ImportResult:
    """Rows read, written (or found valid on a dry run) and rejected."""

    read: int = 0
    imported: int = 0
    rejected: list[Rejected] = field(default_factory=list)


class ImportFileError(ConsentgateError):
    """The file as a whole cannot be imported: unreadable, empty, or a header that lacks columns."""

    title = "Unusable import file"


def _reader(lines: Iterator[str], known: tuple[str, ...], required: tuple[str, ...]) -> csv.DictReader[str]:
    reader = csv.DictReader(lines)
    with _readable(reader):
        header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise ImportFileError("the file is empty: a header row is required")
    reader.fieldnames = header
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        # Which of the two cells is the email? Neither is guessed.
        raise ImportFileError(f"the header names {', '.join(twice)} more than once")
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(f"the header lacks the column(s) {', '.join(missing)}")
    if not any(c in header for c in ("email", "phone", "identity_id")):
        raise ImportFileError("the header needs an address column: email, phone or identity_id")
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ImportFileError(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return reader


def _cells(row: dict[str, str], columns: Iterable[str]) -> dict[str, str]:
    aligned(row)
    return {c: (row.get(c) or "").strip() for c in columns if (row.get(c) or "").strip()}


@contextmanager
def _readable(reader: csv.DictReader[str]) -> Iterator[None]:
    """A file that stops being readable CSV halfway is fatal, named by the line it stopped at."""
    try:
        yield
    except csv.Error as exc:
        raise _stopped(reader.line_num, str(exc)) from None
    except UnreadableLine as exc:
        raise _stopped(exc.line, exc.reason) from None


def _stopped(line: int, reason: str) -> ImportFileError:
    # Chunks before this line are committed already: the message says so rather than hide it.
    return ImportFileError(f"line {line}: cannot be read ({reason}); the import stopped there, "
                           "rows before it were kept")


def _chunks(reader: csv.DictReader[str], size: int) -> Iterator[list[tuple[int, dict[str, str]]]]:
    """Rows as (line, {column: cell}) (``record``; blank lines skipped), read by the plain reader
    under DictReader: a third of the cost per row. A row's line is the one it starts on (a quoted
    cell may span several)."""
    chunk: list[tuple[int, dict[str, str]]] = []
    header, cells = list(reader.fieldnames or []), reader.reader
    with _readable(reader):
        start = cells.line_num + 1
        for values in cells:
            line, start = start, cells.line_num + 1
            if not values:
                continue
            chunk.append((line, record(header, values)))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _run(store: Store, reader: csv.DictReader[str], write: Callable[[Session, dict[str, str]], None],
         dry_run: bool) -> ImportResult:
    result = ImportResult()
    for chunk in _chunks(reader, CHUNK):
        _add(result, _run_rows(store, chunk, write, dry_run))
    return result


def _run_rows(store: Store, chunk: list[tuple[int, dict[str, str]]],
              write: Callable[[Session, dict[str, str]], None], dry_run: bool = False) -> ImportResult:
    """Rows one at a time, each in its own savepoint, in one transaction."""
    result = ImportResult()
    with store.transaction() as session:
        for line, row in chunk:
            result.read += 1
            try:
                with session.begin_nested():
                    write(session, row)
                    if dry_run:
                        raise _DryRun
                result.imported += 1
            except _DryRun:
                result.imported += 1
            except (ValidationError, ConsentgateError) as exc:
                result.rejected.extend(_rejections(line, row, exc))
    return result


def _rejections(line: int, row: dict[str, str], exc: ValidationError | ConsentgateError) -> list[Rejected]:
    """A bad row's reasons, a field each where the error names one."""
    if isinstance(exc, ValidationError):
        return [Rejected(line, e.field, e.message, row) for e in pydantic_field_errors(exc)]
    if isinstance(exc, ValidationFailed):
        return [Rejected(line, e.field, e.message, row) for e in exc.errors]
    return [Rejected(line, "", exc.detail, row)]


class _DryRun(Exception):
    """Rolls a validated row's savepoint back when nothing may be written."""


def import_consents(store: Store, policy: LoadedPolicy, stream: IO[str], now: datetime,
                    dry_run: bool = False, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Record each row of a consent CSV as POST /v1/consents would, upserting the person it names first."""
    lines = checked_lines(stream)
    reader = _reader(lines, CONSENT_COLUMNS + IDENTITY_COLUMNS, CONSENT_REQUIRED)
    if dry_run:
        return _run(store, reader, lambda session, row: _write_consent_row(session, row, policy, now), True)
    result = ImportResult()
    analysed_at = 0
    header = list(reader.fieldnames or [])
    blocks = read_blocks(lines, reader.line_num + 1, BULK_CHUNK)
    try:
        for block, planned in planned_blocks(blocks, header, policy, now, store.engine.dialect):
            if store.dialect == "postgresql" and result.imported >= max(2 * analysed_at, BULK_CHUNK):
                _analyse(store)
                analysed_at = result.imported
            _write_block(store, block, header, planned, policy, now, result)
            if progress:
                progress(planned.rows)
    except UnreadableLine as exc:
        raise _stopped(exc.line, exc.reason) from None
    except PlanningFailed as exc:
        raise ImportFileError(f"{exc}; the import stopped there, rows before line {exc.line} were kept") from None
    finally:
        result.rejected.sort(key=lambda r: r.line)
    return result


def _write_block(store: Store, block: Block, header: list[str], planned: BlockPlan, policy: LoadedPolicy,
                 now: datetime, result: ImportResult) -> None:
    """Write a planned block in file order: runs of plans in bulk, and the rows only the one-row
    path can write (identity columns, merges) in their place between them, so that who is the
    oldest in a merge, and so what a merge keeps, is what writing row by row gives."""
    result.read += planned.rows
    for line, errors, row in planned.refused:
        result.rejected.extend(Rejected(line, e.field, e.message, row) for e in errors)
    rows_of = dict(planned.slow)
    # Plans, and line numbers for rows that go one at a time, in file order.
    items: list[Plan | int] = sorted([*map(Plan._make, planned.plans), *rows_of],
                                     key=lambda item: item if isinstance(item, int) else item.line)

    def write_row(session: Session, row: dict[str, str]) -> None:
        _write_consent_row(session, row, policy, now)

    def write_one(line: int) -> None:
        if line not in rows_of:
            rows_of.update(block_rows(block, header))
        one = _run_rows(store, [(line, rows_of[line])], write_row)
        result.imported += one.imported
        result.rejected.extend(one.rejected)

    def write_run(run: list[Plan]) -> BlockOutcome | None:
        try:
            with store.bulk_transaction() as session:
                outcome = write_plans(session.connection(), run, policy, now)
        except IntegrityError:
            return None
        result.imported += outcome.imported
        return outcome

    write_in_order(items, write_run, write_one)


def _analyse(store: Store) -> None:
    """Refresh PostgreSQL's statistics of the tables an import grows.

    Statistics taken while the tables were small make the planner scan contact_point for each
    chunk's address look-up, so every chunk got slower than the last (0.8 s to 3.3 s per 5,000 rows
    by the 50,000th) until autovacuum caught up. Done when the import has doubled what it wrote,
    so a few times per file.
    """
    with store.transaction() as session:
        session.execute(text("ANALYZE identity, contact_point"))


def _write_consent_row(session: Session, row: dict[str, str], policy: LoadedPolicy, now: datetime) -> None:
    cells = _cells(row, CONSENT_COLUMNS + IDENTITY_COLUMNS)
    attributes = {k: cells[k] for k in ("timezone", "state", "country", "name") if k in cells}
    if cells.get("email") or cells.get("phone"):
        upsert_identity(session, IdentityIn(
            email=cells.get("email"), phone=cells.get("phone"), external_id=cells.get("external_id"),
            company_domain=cells.get("company_domain"),
            attributes=Attributes(**attributes) if attributes else None), policy, None, now)
    consent = {k: v for k, v in cells.items() if k in CONSENT_COLUMNS}
    channel_kind = policy.channels[consent["channel"]].kind if consent.get("channel") in policy.channels \
        else None
    # A row may name both addresses; the consent belongs to the one its channel uses.
    if channel_kind and "email" in consent and "phone" in consent:
        consent.pop("phone" if channel_kind == "email" else "email")
    item = ConsentIn.model_validate(consent)
    if item.identity_id is not None and (attributes or cells.get("company_domain")):
        # Named by id, the person's attributes and company are applied as for anyone else.
        describe_identity(session, item.identity_id, Attributes(**attributes) if attributes else None,
                          cells.get("company_domain"), now)
    write_consent(session, item, policy, None, now)


def import_suppressions(store: Store, policy: LoadedPolicy, stream: IO[str], now: datetime,
                        dry_run: bool = False) -> ImportResult:
    """Record each row of a suppression CSV, with source "import"."""
    reader = _reader(checked_lines(stream), SUPPRESSION_COLUMNS, ("kind",))

    def write(session: Session, row: dict[str, str]) -> None:
        item = SuppressionIn.model_validate(_cells(row, SUPPRESSION_COLUMNS))
        write_suppression(session, item, policy, None, now, source="import")

    if dry_run:
        return _run(store, reader, write, dry_run)
    result = ImportResult()
    analysed_at = 0
    for chunk in _chunks(reader, BULK_CHUNK):
        if store.dialect == "postgresql" and result.imported >= max(2 * analysed_at, BULK_CHUNK):
            _analyse(store)
            analysed_at = result.imported
        _suppression_chunk(store, chunk, policy, now, write, result)
    result.rejected.sort(key=lambda r: r.line)
    return result


def _suppression_chunk(store: Store, chunk: list[tuple[int, dict[str, str]]], policy: LoadedPolicy, now: datetime,
                       write: Callable[[Session, dict[str, str]], None], result: ImportResult) -> None:
    """A chunk of suppression rows: each checked as ``write_suppression`` checks it, the good ones
    written together (``write_suppressions``); one at a time only if someone wrote one of their
    addresses meanwhile. Written one at a time, 10,000 rows took about 50 s."""
    good: list[tuple[int, dict[str, str], SuppressionIn, Address]] = []
    for line, row in chunk:
        result.read += 1
        try:
            item = SuppressionIn.model_validate(_cells(row, SUPPRESSION_COLUMNS))
            target = normalise_ref(item.ref(), policy)
            assert isinstance(target, Address)   # the file has no identity_id column
            check_suppression_address(item.kind, target.kind)
            good.append((line, row, item, target))
        except (ValidationError, ConsentgateError) as exc:
            result.rejected.extend(_rejections(line, row, exc))
    if not good:
        return
    try:
        with store.bulk_transaction() as session:
            write_suppressions(session.connection(), [(item, target) for _, _, item, target in good], policy, now,
                               source="import")
        result.imported += len(good)
    except IntegrityError:
        result.read -= len(good)
        _add(result, _run_rows(store, [(line, row) for line, row, _, _ in good], write))


def _add(result: ImportResult, partial: ImportResult) -> None:
    result.read += partial.read
    result.imported += partial.imported
    result.rejected.extend(partial.rejected)


@dataclass
class DncResult:
    """Lines read, numbers listed, numbers no longer listed (``replace``) and rejected lines."""

    read: int = 0
    loaded: int = 0
    removed: int = 0
    rejected: list[Rejected] = field(default_factory=list)


# A change list's record says whether the number was added to the registry or deleted from it.
_DNC_FLAGS = frozenset({"A", "D"})
_BAD_FLAG = "BAD"


def _dnc_numbers(stream: IO[str], region: str) -> Iterator[tuple[int, str | None, str, str | None]]:
    """(line, E.164 or None, raw, change flag) for each line of the FTC file: 10 digits, or
    area,number columns, either followed in a change list by A (added) or D (deleted)."""
    line = 0
    try:
        for line, raw in enumerate(stream, start=1):
            number = _dnc_line(line, raw, region)
            if number is not None:
                yield number
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"line {line + 1}: cannot be read ({exc}); the import stopped there, "
                              "numbers before it were kept") from None


def _dnc_line(line: int, raw: str, region: str) -> tuple[int, str | None, str, str | None] | None:
    """One registry line as (line, E.164 or None when invalid, raw, change flag: None, A, D or
    ``_BAD_FLAG``); None for a blank line or the header."""
    cleaned = raw.strip()
    if not cleaned:
        return None
    parts = [p.strip().strip('"') for p in cleaned.split(",")]
    split = len(parts) >= 2 and parts[0].isdigit() and len(parts[0]) == 3
    digits = "".join(parts[:2]) if split else parts[0]
    rest = [p for p in (parts[2:] if split else parts[1:]) if p]
    flag = None if not rest else rest[0].upper() if len(rest) == 1 and rest[0].upper() in _DNC_FLAGS else _BAD_FLAG
    if line == 1 and not any(ch.isdigit() for ch in digits):
        return None   # a header row
    if region == "US" and _NANP.fullmatch(digits):
        # The registry is US numbers in one fixed shape: phonenumbers (about 45,000 parses per
        # second) is only needed for the lines that are not plainly NPA-NXX-XXXX.
        return line, "+1" + digits, cleaned, flag
    try:
        return line, normalise_phone(digits, default_region=region, field="phone"), cleaned, flag
    except ValidationFailed:
        return line, None, cleaned, flag


def import_dnc(store: Store, policy: LoadedPolicy, stream: IO[str], now: datetime, snapshot: date,
               replace: bool = False, progress: Callable[[int], None] | None = None) -> DncResult:
    """Load the registry file: new numbers added, listed ones refreshed, absent ones removed with ``replace``."""
    result = DncResult()
    batch: list[dict[str, Any]] = []
    upsert = _upsert(store)

    def flush() -> None:
        if not batch:
            return
        with store.bulk_transaction() as session:
            session.execute(upsert, batch)
        result.loaded += len(batch)
        if progress:
            progress(len(batch))
        batch.clear()

    seen_in_batch: set[str] = set()
    deleted: list[str] = []

    def remove() -> None:
        if deleted:
            with store.transaction() as session:
                gone = session.execute(update(DncNumber).where(
                    col(DncNumber.phone).in_(deleted), col(DncNumber.removed_at).is_(None)).values(removed_at=now))
                result.removed += int(gone.rowcount or 0)  # type: ignore[attr-defined]
            deleted.clear()

    for line, phone, raw, flag in _dnc_numbers(stream, policy.policy.identity.default_region):
        result.read += 1
        if phone is None:
            result.rejected.append(Rejected(line, "phone", "not a valid phone number", {"number": raw}))
            continue
        if flag == _BAD_FLAG:
            result.rejected.append(Rejected(line, "change", "a change list record ends in A (added) or D (deleted)",
                                            {"number": raw}))
            continue
        if flag == "D":
            # Deleted from the registry: written after the additions read before it, so a number
            # added and deleted in one file ends deleted.
            flush()
            seen_in_batch.clear()
            deleted.append(phone)
            if len(deleted) >= DNC_CHUNK:
                remove()
            continue
        if deleted:
            remove()
        if phone in seen_in_batch:
            continue
        seen_in_batch.add(phone)
        batch.append({"phone": phone, "snapshot_date": snapshot, "added_at": now, "removed_at": None})
        if len(batch) >= DNC_CHUNK:
            flush()
            seen_in_batch.clear()
    flush()
    remove()
    if replace:
        with store.transaction() as session:
            outcome = session.execute(update(DncNumber).where(
                col(DncNumber.snapshot_date) != snapshot, col(DncNumber.removed_at).is_(None))
                .values(removed_at=now))
            result.removed = int(outcome.rowcount or 0)  # type: ignore[attr-defined]
    return result


def _upsert(store: Store) -> Any:
    """One upsert statement, run with a batch of rows as its parameters.

    Rows go as parameters rather than in ``.values(rows)``: SQLAlchemy then compiles the statement
    once for the whole file (a 5,000-row VALUES list took it ~0.4 s to compile, per batch), and the
    driver sends the batch as multi-row statements (PostgreSQL) or one prepared statement (SQLite).
    """
    table = DncNumber.__table__  # type: ignore[attr-defined]
    dialect = postgresql if store.dialect == "postgresql" else sqlite
    statement = dialect.insert(table)
    # A number already listed keeps its first added_at; it is listed again as of this snapshot.
    return statement.on_conflict_do_update(
        index_elements=["phone"],
        set_={"snapshot_date": statement.excluded.snapshot_date, "removed_at": None})


