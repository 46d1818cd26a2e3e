"""The Alembic migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from consentgate.store.db import Store
from consentgate.store.migrate import current_revision, head_revision, is_current


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                SQLModel.metadata)
    assert diff == []


def test_store_is_at_the_newest_migration(store: Store) -> None:
    assert current_revision(store) == head_revision(store)
    assert is_current(store)


def test_sqlite_store_uses_wal_and_foreign_keys(store: Store) -> None:
    if not store.is_sqlite:
        return
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
