"""The gate's hot path on the database driver's own connections.

A plain eligibility check is one read (two by identity id) and one insert. Through SQLAlchemy
each cost more Python than the database spent on it (pool checkout and reset, per-execution
statement set-up, result processing), so the gate runs them as SQL that SQLAlchemy compiles once
per dialect, on driver connections kept open by a small pool of their own. Everything else goes
through SQLAlchemy as usual; the same compiled statements also run inside a SQLAlchemy
transaction (``Driver.of``), so one query serves both ways.

Connections here commit every statement on its own (SQLite's and psycopg's autocommit): a
check reads without holding a lock and writes its decision log row in one statement.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from consentgate.store.types import json_text, json_value

# Both drivers take named parameters in a dict: psycopg as %(name)s, sqlite3 as :name.
_DIALECTS: dict[str, Dialect] = {
    "postgresql": postgresql.psycopg.dialect(  # type: ignore[attr-defined]
        json_serializer=json_text, json_deserializer=json_value),
    "sqlite": sqlite.pysqlite.dialect(  # type: ignore[attr-defined]
        paramstyle="named", json_serializer=json_text, json_deserializer=json_value),
}

# Idle connections kept per database; a burst beyond it opens and closes extra ones.
MAX_IDLE = 32


class Sql:
    """A statement's SQL for one dialect, with the values the statement itself binds."""

    __slots__ = ("bound", "text")

    def __init__(self, statement: Any, dialect: str) -> None:
        done = statement.compile(dialect=_DIALECTS[dialect])
        self.text: str = str(done)
        # Literals written into the statement (``scope == "account"``) are parameters too.
        self.bound: dict[str, Any] = {name: value for name, value in done.params.items() if value is not None}


@lru_cache(maxsize=256)
def compiled(build: Callable[..., Any], dialect: str, *variant: Any) -> Sql:
    """``build(dialect, *variant)``, compiled once."""
    return Sql(build(dialect, *variant), dialect)


class Driver:
    """A driver connection and its dialect's name: runs compiled SQL, returns plain tuples."""

    __slots__ = ("cursor", "dialect", "raw")

    def __init__(self, raw: Any, dialect: str, cursor: Any | None = None) -> None:
        self.raw = raw
        self.dialect = dialect
        # The pool's connections keep one cursor for good: making a psycopg cursor per statement
        # was a sixth of the statement's own CPU time.
        self.cursor = cursor

    @classmethod
    def of(cls, conn: Connection) -> Driver:
        """The driver connection under a SQLAlchemy one, inside its transaction."""
        return cls(conn.connection.dbapi_connection, conn.dialect.name)

    def rows(self, sql: Sql, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self.cursor or self.raw.cursor()
        values = {**sql.bound, **params} if sql.bound else params
        try:
            if self.dialect == "postgresql":
                # Prepared from the first run (psycopg waits for the fifth): the statements here
                # are few and fixed, and only a prepared statement can use a generic plan.
                cursor.execute(sql.text, values, prepare=True)
            else:
                cursor.execute(sql.text, values)
            return list(cursor.fetchall())
        finally:
            if cursor is not self.cursor:
                cursor.close()

    def first(self, sql: Sql, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        found = self.rows(sql, params)
        return found[0] if found else None


def plan_for_any_keys(conn: Connection) -> None:
    """Until the connection's transaction ends, have PostgreSQL plan the statements run here once
    for any values (the gate's own connections always do, see ``store.db``).

    A batch looks thousands of keys up at once. Planned for the actual list, PostgreSQL judges a
    scan of the whole table cheaper than as many index probes, a cost that grows with the table
    rather than with the batch (and takes every core with parallel workers); the plan for any
    values probes the indexes.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")


class DriverPool:
    """Open driver connections for one database, handed out one per request.

    Simpler than SQLAlchemy's pool because nothing is left to reset: a connection goes back only
    when no transaction is open on it, and one whose driver raised is closed, not reused.
    """

    def __init__(self, engine: Engine, prepare: Callable[[Any], None]) -> None:
        self._engine = engine
        self._prepare = prepare
        self._dialect = engine.dialect.name
        self._idle: list[tuple[Any, Any]] = []   # (connection, its cursor)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # Connections a forked child inherited: its parent's, never to be used or closed here
        # (closing would end the parent's session on the shared socket).
        self._inherited: list[Any] = []

    def _open(self) -> Any:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        if self._dialect == "sqlite":
            from consentgate.store.db import SQLITE_BUSY_TIMEOUT_MS

            cparams = {**cparams, "check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        raw = self._engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
        self._prepare(raw)
        return raw

    @contextmanager
    def connection(self) -> Iterator[Driver]:
        if self._pid != os.getpid():
            # A forked child, which has only the thread that forked: the lock it inherited may
            # have been held by another thread of the parent, and would never be released here.
            self._lock = threading.Lock()
            self._inherited.extend(self._idle)
            self._idle, self._pid = [], os.getpid()
        try:
            raw, cursor = self._idle.pop()
        except IndexError:
            raw = self._open()
            cursor = raw.cursor()
        error = self._engine.dialect.loaded_dbapi.Error
        try:
            yield Driver(raw, self._dialect, cursor)
        except error:
            _close(raw)
            raise
        except BaseException:
            self._release(raw, cursor)
            raise
        self._release(raw, cursor)

    def _release(self, raw: Any, cursor: Any) -> None:
        try:
            if _in_transaction(raw, self._dialect):
                raw.rollback()
        except Exception:
            _close(raw)
            return
        if len(self._idle) < MAX_IDLE:
            self._idle.append((raw, cursor))
        else:
            _close(raw)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for raw, _ in idle:
            _close(raw)


def _in_transaction(raw: Any, dialect: str) -> bool:
    if dialect == "sqlite":
        return bool(raw.in_transaction)
    return int(raw.info.transaction_status) != 0   # psycopg: 0 is IDLE


def _close(raw: Any) -> None:
    with suppress(Exception):  # already broken: nothing more to release
        raw.close()


def dialect(name: str) -> Dialect:
    """The SQLAlchemy dialect statements are compiled for (``"sqlite"``, ``"postgresql"``)."""
    return _DIALECTS[name]
