"""Engines and transactions, the same way on SQLite and PostgreSQL.

``Store.transaction()`` is the one way use-cases touch the database: one session, one
transaction, committed on success and rolled back on any error. On SQLite a writing transaction
starts with ``BEGIN IMMEDIATE`` so that check-then-write sequences (a fatigue slot, the chain
head) are serialised instead of failing at commit; readers use plain ``BEGIN`` and, in WAL mode,
never block writers. The one exception is the gate's plain check, whose statements each stand
alone: ``Store.driver()`` hands out a driver connection for it (see ``store.driver``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from consentgate.errors import ConfigError
from consentgate.store.driver import Driver, DriverPool
from consentgate.store.types import json_text, json_value
from consentgate.store.writers import close_all as close_writer_queues
from consentgate.store.writers import queue_for

# What a store that cannot answer raises (unreachable, restarted, locked past the busy timeout),
# through SQLAlchemy or straight from the drivers the gate's hot path uses.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.InterfaceError,
    sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError,
)

_engines: dict[str, Engine] = {}
_drivers: dict[tuple[str, bool], DriverPool] = {}
_lock = threading.Lock()

SQLITE_BUSY_TIMEOUT_MS = 30_000
BULK_CACHE_KIB = 16_384
BULK_CHECKPOINT_PAGES = 16_384


def normalise_url(url: str) -> str:
    """Accept the usual spellings of a database URL and return the driver-qualified one."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a generic text
        raise ConfigError(f"CONSENTGATE_DATABASE_URL: {url!r} is not a database URL") from exc
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            "CONSENTGATE_DATABASE_URL: only sqlite:///FILE and postgresql+psycopg://... are supported"
        )
    return url


def _prepare_sqlite(dbapi_connection: Any, synchronous: str = "FULL") -> None:
    """``synchronous``: FULL (the default, for every transaction) syncs the write-ahead log to disk
    at each commit, so whatever was acknowledged survives a power cut, not only a crash of the
    process. With NORMAL a commit is synced only at the next FULL commit or checkpoint: the gate's
    plain checks may log their decisions so (see ``Store``)."""
    # No implicit transactions: SQLAlchemy's "begin" event emits BEGIN itself (pysqlite's own
    # handling defers it), and the gate's driver connections commit each statement.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA synchronous = {synchronous}")
    cursor.close()


def _prepare_postgresql(dbapi_connection: Any, synchronous_commit: str = "on") -> None:
    dbapi_connection.autocommit = True
    if synchronous_commit != "on":   # see ``Store``
        dbapi_connection.execute(f"SET synchronous_commit = {synchronous_commit}")
    set_json_loads(json_value, dbapi_connection)   # the facts come back as JSON aggregates
    # psycopg prepares the gate's statements after a few runs; PostgreSQL would still plan them
    # again for every run's values (half the facts query's time), though every look-up is by
    # key and one plan suits all values.
    dbapi_connection.execute("SET plan_cache_mode = force_generic_plan")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _prepare_sqlite(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: a statement through SQLAlchemy costs more than BEGIN itself, and
        # every check opens a transaction.
        options = conn.get_execution_options()
        raw = conn.connection.dbapi_connection
        # The level cannot change inside a transaction: set before it, and only when it differs.
        synchronous = options.get("sqlite_synchronous", "FULL")
        info = conn.connection.info
        if info.get("synchronous", "FULL") != synchronous:
            raw.execute(f"PRAGMA synchronous = {synchronous}")
            info["synchronous"] = synchronous
        raw.execute(options.get("sqlite_begin", "BEGIN IMMEDIATE"))


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    url = normalise_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def get_driver_pool(url: str, synced: bool = True) -> DriverPool:
    """The gate's driver connections for a URL (one pool per URL and kind per process); ``synced``:
    whether their commits wait for the disk (see ``Store``)."""
    url = normalise_url(url)
    engine = get_engine(url)
    with _lock:
        pool = _drivers.get((url, synced))
        if pool is None:
            if engine.dialect.name == "sqlite":
                prepare = partial(_prepare_sqlite, synchronous="FULL" if synced else "NORMAL")
            else:
                prepare = partial(_prepare_postgresql, synchronous_commit="on" if synced else "off")
            pool = _drivers[(url, synced)] = DriverPool(engine, prepare)
        return pool


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=NullPool if database in ("", ":memory:") else None,
            json_serializer=json_text, json_deserializer=json_value,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                           json_serializer=json_text, json_deserializer=json_value)
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        level = conn.get_execution_options().get("synchronous_commit")
        if level is not None:   # this transaction only; the connection's own setting stays "on"
            conn.connection.dbapi_connection.execute(f"SET LOCAL synchronous_commit = {level}")


def forget_inherited() -> None:
    """In a forked child: let go of the parent's engines and driver connections without closing
    them (closing would end the parent's sessions on the sockets both share); the child opens its own."""
    global _lock
    # The child has only the thread that forked: another thread of the parent may have held this.
    _lock = threading.Lock()
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()
        _drivers.clear()


def dispose_all() -> None:
    """Close every pooled connection (tests, and before a server forks its workers)."""
    with _lock:
        for pool in _drivers.values():
            pool.close()
        _drivers.clear()
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
    close_writer_queues()


class Store:
    """The database behind one app: an engine plus the transaction discipline above.

    Every transaction's commit waits until it is on disk (PostgreSQL's ``synchronous_commit``,
    SQLite's ``synchronous = FULL``), so what was acknowledged survives a crash of the machine,
    not only of a process. ``synced_decisions=False`` makes one exception, for writes that hold
    decision log rows of plain checks and nothing else (a single check's, a batch's): their
    commit does not wait for the disk. They survive the gate's processes crashing; a crash of
    the database's machine can lose the last moments of them (on PostgreSQL at most three WAL
    writer delays, 0.6 s by default; on SQLite until the next synced commit or checkpoint), never
    a ledger row or a reservation. Measured here, waiting cost a third of the single-check rate on
    both stores.
    """

    def __init__(self, url: str, *, synced_decisions: bool = True) -> None:
        self.url = normalise_url(url)
        self.engine = get_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._read_engine = self.engine.execution_options(sqlite_begin="BEGIN")
        self._log_engine = self.engine if synced_decisions else self.engine.execution_options(
            sqlite_synchronous="NORMAL", synchronous_commit="off")
        self._drivers = get_driver_pool(self.url, synced_decisions)
        self._writers = (queue_for(str(self.engine.url.database)) if self.is_sqlite and self.seen_by_other_processes
                         else None)
        # Policy versions this process has already stored here (see services.policies).
        self.stored_policy_versions: set[str] = set()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def seen_by_other_processes(self) -> bool:
        """Whether another process opening this URL sees the same data: not an in-memory SQLite database."""
        return not self.is_sqlite or self.engine.url.database not in (None, "", ":memory:")

    @contextmanager
    def transaction(self, *, write: bool = True, only_decisions: bool = False) -> Iterator[Session]:
        """One session and one transaction: commit on success, roll back on any error.

        ``only_decisions``: a writing transaction that writes decision log rows and nothing else
        (a batch of plain checks), committed as a plain single check's row is (see above).
        """
        engine = (self._log_engine if only_decisions else self.engine) if write else self._read_engine
        with self.decision_log_turn() if only_decisions else nullcontext(), \
                Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def decision_log_turn(self) -> AbstractContextManager[None]:
        """Hold while writing decision log rows: on a SQLite file, the writers of decision logs
        take turns (``store.writers``); elsewhere, nothing to wait for."""
        return self._writers.turn() if self._writers is not None else nullcontext()

    @contextmanager
    def bulk_transaction(self) -> Iterator[Session]:
        """``transaction()`` for an import's writes.

        On SQLite the connection gets a 16 MB page cache (not 2 MB), so more of the indexes an
        import grows stay in memory, and checkpoints its write-ahead log every 64 MB rather than
        every 4 MB, so pages written again and again are copied to the database once per
        checkpoint: the importing process spends about a tenth less time, half its system time.
        Both are settings of that connection only.
        """
        with self.transaction() as session:
            if self.is_sqlite:
                session.connection().exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
                session.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
            yield session

    def driver(self) -> AbstractContextManager[Driver]:
        """A driver connection for the gate's hot path (see ``store.driver``): every statement
        on it commits on its own, so use it only where each statement stands alone."""
        return self._drivers.connection()

    def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""
        with self._read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))
