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
from contextlib import AbstractContextManager, contextmanager
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

# What a store that cannot answer raises (unreachable, restarted, locked past the busy timeout),
# through SQLAlchemy or straight from the drivers the gate's hot path uses.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.InterfaceError,
    sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError,
)

_engines: dict[str, Engine] = {}
_drivers: dict[str, DriverPool] = {}
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
    plain checks log their decisions so (see ``get_driver_pool``)."""
    # No implicit transactions: SQLAlchemy's "begin" event emits BEGIN itself (pysqlite's own
    # handling defers it), and the gate's driver connections commit each statement.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA synchronous = {synchronous}")
    cursor.close()


def _prepare_postgresql(dbapi_connection: Any) -> None:
    dbapi_connection.autocommit = True
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


def get_driver_pool(url: str) -> DriverPool:
    """The gate's driver connections for a URL (one pool per URL per process)."""
    url = normalise_url(url)
    engine = get_engine(url)
    with _lock:
        pool = _drivers.get(url)
        if pool is None:
            # A plain check's one write is its decision log row. Synced at every commit it cost
            # a third of the single-check rate on SQLite; unsynced it survives the process, and
            # the next synced commit (any ledger write, reservation or batch) or checkpoint takes
            # it to disk. Consents, opt-outs and reservations are never written on these.
            prepare = (partial(_prepare_sqlite, synchronous="NORMAL") if engine.dialect.name == "sqlite"
                       else _prepare_postgresql)
            pool = _drivers[url] = DriverPool(engine, prepare)
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
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                         json_serializer=json_text, json_deserializer=json_value)


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


class Store:
    """The database behind one app: an engine plus the transaction discipline above."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = get_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._read_engine = self.engine.execution_options(sqlite_begin="BEGIN")
        self._log_engine = self.engine.execution_options(sqlite_synchronous="NORMAL")
        self._drivers = get_driver_pool(self.url)
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
        (a batch of plain checks); on SQLite it commits with ``synchronous = NORMAL``, as a plain
        single check does (see ``get_driver_pool``), where every other transaction syncs.
        """
        engine = (self._log_engine if only_decisions else self.engine) if write else self._read_engine
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

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
