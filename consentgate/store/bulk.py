"""Reading and writing many rows at once.

Inserts go below the ORM, the driver getting the rows as they are: for imports, where
SQLAlchemy's per-row parameter processing costs more than the database's own work. Values are
converted once per column by the column type's own bind processor, so what lands in the table
is what an ORM write would have stored. Look-ups by a long list of keys (``among``) send the
list as one parameter.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from itertools import chain
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Enum,
    Integer,
    SmallInteger,
    String,
    Table,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from consentgate.store.types import UTCDateTime, json_text


def among(column: Any, values: Iterable[Any], dialect: Dialect) -> Any:
    """``column IN values`` with the values as one parameter: an array on PostgreSQL, a JSON
    array read by ``json_each`` on SQLite. An expanded IN list has a placeholder per value, and
    psycopg alone took 0.8 s to parse the statements of a 10,000-item batch."""
    values = list(values)
    return _among(column, None, values if dialect.name == "postgresql" else json_text(values), dialect.name)


def among_named(column: Any, name: str, dialect: str) -> Any:
    """``among`` with a named parameter, for statements compiled once; ``listed`` gives its value."""
    return _among(column, name, None, dialect)


def _among(column: Any, name: str | None, value: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return column == any_(bindparam(name, value, type_=ARRAY(column.type)))
    return column.in_(select(func.json_each(bindparam(name, value)).table_valued("value").c.value))


def listed(values: Iterable[Any], dialect: str) -> str:
    """The value of an ``among_named`` parameter, as text: an array literal on PostgreSQL (the
    statement casts it), a JSON array on SQLite. psycopg adapts a list element by element in
    Python, a tenth of a 10,000-item batch; this is one join."""
    values = list(values)
    return array_literal(values) if dialect == "postgresql" else json_text(values)


def array_literal(values: list[Any]) -> str:
    """PostgreSQL's text form of a one-dimensional array of integers or strings (strings always
    quoted, so commas, braces and spaces in them are data)."""
    if all(isinstance(value, int) for value in values):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join("NULL" if value is None else _quoted(str(value)) for value in values) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bind(dialect: Dialect, table: Table, column: str) -> Callable[[Any], Any]:
    """The column type's own conversion to what the driver takes.

    SQLite gets times as the text SQLAlchemy stores (naive UTC, always with microseconds, so that
    text order is time order), made once for a value every row of a batch shares; PostgreSQL
    aware UTC datetimes, which ``insert_rows`` sends in COPY's binary format (parsing them as
    text was most of the server's work per row of an import's tables). JSON goes to PostgreSQL
    as its text, which it parses as jsonb.
    """
    return binder(dialect, table, column) or (lambda value: value)


def binder(dialect: Dialect, table: Table, column: str) -> Callable[[Any], Any] | None:
    """``bind``, or None for a column whose values the driver takes as they are."""
    type_ = table.c[column].type
    if isinstance(type_, JSON) and dialect.name != "sqlite":
        return lambda value: None if value is None else json_text(value)
    # The dialect's own variant of the type: the generic one leaves SQLite times unformatted.
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if not isinstance(type_, (UTCDateTime, DateTime)):
        return processor
    if dialect.name == "sqlite" and isinstance(type_, UTCDateTime):
        # SQLAlchemy's SQLite text for the naive UTC value (YYYY-MM-DD HH:MM:SS.ffffff), made by
        # isoformat at a third of the cost: an import converts a time or two per row.
        to_naive = type_.process_bind_param

        def to_text(value: datetime | None) -> str | None:
            naive = to_naive(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return to_text
    return processor


def driver_connection(connection: Connection) -> Any:
    """The database driver's own connection under a SQLAlchemy one (psycopg's, for ``COPY``)."""
    raw = connection.connection.driver_connection
    assert raw is not None, "a connection in use always has its driver connection"
    return raw


def draw_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """Ids for rows about to be inserted. PostgreSQL: from the table's sequence, as a default would;
    SQLite: after the largest, which is safe because a writer holds the lock since BEGIN IMMEDIATE."""
    if not count:
        return []
    if connection.dialect.name == "postgresql":
        # The sequence is looked up once (OFFSET 0 keeps the planner from doing it per row, which
        # took most of the time), and the ids read on the driver: thousands of one-column rows.
        with driver_connection(connection).cursor() as cursor:
            cursor.execute("SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(%(table)s, 'id')::regclass "
                           "AS seq OFFSET 0) s CROSS JOIN generate_series(1, %(n)s)", {"table": table.name, "n": count})
            return [row[0] for row in cursor.fetchall()]
    top = connection.exec_driver_sql(f'SELECT coalesce(max(id), 0) FROM "{table.name}"').scalar_one()
    return list(range(top + 1, top + 1 + count))


def insert_rows(connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows of driver-ready values (see ``bind``): COPY on PostgreSQL, one prepared
    statement run for each row on SQLite."""
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in columns)
    if connection.dialect.name == "postgresql":
        raw = driver_connection(connection)
        types = _binary_types(table, tuple(columns))
        statement = f'COPY "{table.name}" ({names}) FROM STDIN' + (" (FORMAT BINARY)" if types else "")
        references = _references(table, tuple(columns))
        checked_here = False
        try:
            with raw.cursor() as cursor:
                if references and len(rows) >= CHECKED_TOGETHER_FROM and may_skip_triggers(connection):
                    role, switched = cursor.execute(_REPLICA_ROLE, (f'"{table.name}"',)).fetchone()
                    checked_here = switched is not None
                with cursor.copy(statement) as copy:
                    if types:
                        copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
                if checked_here:
                    cursor.execute("SELECT set_config('session_replication_role', %s, true)", (role,))
                    _check_references(cursor, table, references, rows)
        except psycopg.IntegrityError as exc:
            # As SQLAlchemy raises it for every other statement: callers catch one kind of conflict.
            raise IntegrityError(statement, None, exc) from exc
    else:
        _insert_sqlite(connection, f'INSERT INTO "{table.name}" ({names}) VALUES ', len(columns), rows)


# Rows per INSERT statement on SQLite. Run once per row, a statement's binding, reset and step
# cost a quarter of an import's insert time more than the same rows given a few hundred at a
# time in one statement's VALUES list (measured on the import's tables: 15.9 -> 11.9 us per
# person written); beyond 200 rows nothing more is gained.
SQLITE_ROWS_PER_STATEMENT = 200


def _insert_sqlite(connection: Connection, insert: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """``insert`` (up to ``VALUES``) for each row: whole groups of rows per statement, the rest one by one
    (so that only two statements are ever prepared per table and columns)."""
    one = "(" + ", ".join("?" * width) + ")"
    limit = driver_connection(connection).getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(SQLITE_ROWS_PER_STATEMENT, limit // width))
    whole = len(rows) - len(rows) % per if per > 1 else 0
    if whole:
        groups = [tuple(chain.from_iterable(rows[start:start + per])) for start in range(0, whole, per)]
        connection.exec_driver_sql(insert + ", ".join([one] * per), groups)
    if whole < len(rows):
        connection.exec_driver_sql(insert + one, list(rows[whole:]))


# PostgreSQL checks a foreign key with a trigger per row: a query and a lock on the referenced row
# each time, which measured here was more than half of the server's work for an import's rows.
# From this many rows, ``insert_rows`` checks each reference column once for all of them instead,
# where the role may switch the triggers off for its own COPY (``session_replication_role``: a
# superuser, or on PostgreSQL 15 and later a role granted SET on it) and the table has no
# trigger but those of its foreign keys (one an operator added must still run); fewer rows keep
# the triggers, which then cost less than the two statements the switch takes.
CHECKED_TOGETHER_FROM = 100

# session_replication_role as it was, and 'replica' when switched (NULL: the table has triggers of its own).
_REPLICA_ROLE = ("SELECT current_setting('session_replication_role'), CASE WHEN NOT EXISTS "
                 "(SELECT FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal) "
                 "THEN set_config('session_replication_role', 'replica', true) END")


@cache
def _references(table: Table, columns: tuple[str, ...]) -> tuple[tuple[int, str, str, str], ...]:
    """(position in ``columns``, referenced table, its column, that column's SQL type) for each
    foreign key written."""
    pg = postgresql.dialect()   # type: ignore[no-untyped-call]
    return tuple((columns.index(key.parent.name), key.column.table.name, key.column.name, key.column.type.compile(pg))
                 for key in sorted(table.foreign_keys, key=lambda key: key.parent.name)
                 if key.parent.name in columns)


def may_skip_triggers(connection: Connection) -> bool:
    """Whether this connection's role may set ``session_replication_role`` (asked once per connection)."""
    info = connection.info
    allowed = info.get("may_skip_triggers")
    if allowed is None:
        raw = driver_connection(connection)
        allowed = raw.info.parameter_status("is_superuser") == "on"
        if not allowed and raw.info.server_version >= 150000:
            allowed = bool(raw.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
                           .fetchone()[0])
        info["may_skip_triggers"] = allowed
    return bool(allowed)


def _check_references(cursor: Any, table: Table, references: tuple[tuple[int, str, str, str], ...],
                      rows: Sequence[Sequence[Any]]) -> None:
    """What the skipped triggers would have done, a statement per foreign key for all the rows:
    every referenced row exists, and is locked as the triggers lock it (FOR KEY SHARE), so that
    it cannot be deleted before this transaction ends. The keys go as one array literal and only
    a count comes back (psycopg adapts a list, and reads rows, value by value in Python)."""
    for position, parent, column, type_ in references:
        wanted = list({row[position] for row in rows} - {None})
        if not wanted:
            continue
        keys = f'(SELECT "{column}" FROM "{parent}" WHERE "{column}" = ANY(%s::{type_}[]) FOR KEY SHARE) AS found'
        literal = listed(wanted, "postgresql")
        cursor.execute(f"SELECT count(*) FROM {keys}", (literal,))
        if cursor.fetchone()[0] != len(wanted):
            cursor.execute(f'SELECT "{column}" FROM {keys}', (literal,))
            missing = set(wanted) - {found for (found,) in cursor.fetchall()}
            raise psycopg.errors.ForeignKeyViolation(
                f'insert into "{table.name}" violates a foreign key: {parent}.{column} has no '
                f"{', '.join(map(repr, sorted(missing)[:5]))}")


@cache
def _binary_types(table: Table, columns: tuple[str, ...]) -> list[str] | None:
    """The PostgreSQL types COPY's binary format sends these columns as, or None when one of them
    has a type that goes as text (JSON, arrays): the server then parses every value, which for a
    time costs several times more than reading its eight bytes."""
    types = [_binary_type(table.c[name].type) for name in columns]
    return None if None in types else types  # type: ignore[return-value]


def _binary_type(type_: Any) -> str | None:
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, Boolean):
        return "bool"
    if isinstance(type_, Integer):
        return "int8" if isinstance(type_, BigInteger) else "int2" if isinstance(type_, SmallInteger) else "int4"
    if isinstance(type_, String) and not isinstance(type_, Enum):
        return "text"
    if isinstance(type_, DateTime):
        return "timestamptz" if type_.timezone else "timestamp"
    return None


def insert_with_ids(connection: Connection, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> list[int]:
    """``insert_rows`` under fresh ids (``draw_ids``); the ids, in input order."""
    if not rows:
        return []
    ids = draw_ids(connection, table, len(rows))
    insert_rows(connection, table, ("id", *columns), [(row_id, *row) for row_id, row in zip(ids, rows, strict=True)])
    return ids
