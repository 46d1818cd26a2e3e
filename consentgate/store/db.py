"""Engines and transactions, the same way on SQLite and PostgreSQL.

``Store.transaction()`` is the one way use-cases touch the database: one session, one
transaction, committed on success and rolled back on any error. On SQLite a writing transaction
starts with ``BEGIN IMMEDIATE`` so that check-then-write sequences (a fatigue slot, the chain
head) are serialised instead of failing at commit; readers use plain ``BEGIN`` and, in WAL mode,
never block writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from consentgate.errors import ConfigError

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: a statement through SQLAlchemy costs more than BEGIN itself, and
        # every check opens a transaction.
        conn.connection.dbapi_connection.execute(conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE"))


def get_engine(url: str, *, autocommit: bool = False) -> Engine:
    """One engine per URL (and mode) per process (engines own connection pools)."""
    url = normalise_url(url)
    key = url + ("#autocommit" if autocommit else "")
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create(url, autocommit)
            _engines[key] = engine
        return engine


def _create(url: str, autocommit: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=NullPool if database in ("", ":memory:") else None,
        )
        _configure_sqlite(engine)
        return engine
    if autocommit:
        # The gate's hot path: no ping round trip before each check. A connection the server
        # dropped fails that one request (a 5xx, which a sender reads as "no") and SQLAlchemy
        # then replaces every pooled connection.
        return create_engine(url, pool_size=10, max_overflow=20, isolation_level="AUTOCOMMIT")
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def dispose_all() -> None:
    """Close every pooled connection (tests, and after a fork)."""
    with _lock:
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
        # PostgreSQL statements that stand alone run without BEGIN/COMMIT: two round trips fewer.
        self._autocommit = get_engine(self.url, autocommit=True) if self.dialect == "postgresql" else None
        # Policy versions this process has already stored here (see services.policies).
        self.stored_policy_versions: set[str] = set()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def autocommits(self) -> bool:
        """Whether ``connection()`` runs each statement in a transaction of its own (PostgreSQL)."""
        return self._autocommit is not None

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One session and one transaction: commit on success, roll back on any error."""
        engine = self.engine if write else self._read_engine
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Connection]:
        """A Core connection for the gate's hot path, where no ORM is needed.

        On SQLite it is a transaction like ``transaction()`` (writers serialised by ``BEGIN
        IMMEDIATE``). On PostgreSQL every statement commits on its own, so use it only where each
        statement stands alone: a read, or a single insert.
        """
        if self._autocommit is not None:
            with self._autocommit.connect() as conn:
                yield conn
            return
        with (self.engine if write else self._read_engine).begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""
        with self._read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))
