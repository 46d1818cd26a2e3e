"""The Alembic migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from consentgate.store.db import Store
from consentgate.store.migrate import alembic_config, current_revision, head_revision, is_current, upgrade


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


def test_sqlite_whole_second_times_are_padded_to_the_stored_form(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Times are text on SQLite and compared as text: one instant must have one spelling.
    older = Store(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(older, "0001")
    with older.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO dnc_number (phone, added_at, removed_at, snapshot_date) "
                             "VALUES ('+13055550100', '2026-01-02 03:04:05', NULL, '2026-01-02')")
        conn.exec_driver_sql("INSERT INTO dnc_number (phone, added_at, removed_at, snapshot_date) "
                             "VALUES ('+13055550101', '2026-01-02 03:04:05.250000', NULL, '2026-01-02')")
    upgrade(older)
    with older.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT added_at FROM dnc_number ORDER BY phone").scalars().all()
    assert stored == ["2026-01-02 03:04:05.000000", "2026-01-02 03:04:05.250000"]


def test_chain_entries_survive_the_rebuild_that_drops_the_hash_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    older = Store(f"sqlite:///{tmp_path / 'chain.db'}")
    upgrade(older, "0002")
    row = (1, "consent_event", 7, "c" * 64, "0" * 64, "e" * 64, "2026-11-27 09:00:00.000000")
    with older.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO chain_entry (seq, table_name, row_id, content_hash, prev_hash, entry_hash, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    upgrade(older)
    with older.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT * FROM chain_entry").all() == [row]
    unique = [c["column_names"] for c in inspect(older.engine).get_unique_constraints("chain_entry")]
    assert unique == [["table_name", "row_id"]]


def _with_revocations(tmp_path, revision: str, lifted: list[str | None]) -> Store:  # type: ignore[no-untyped-def]
    """A SQLite store at ``revision`` with one person and a revocation per ``lifted`` (its lifted_at),
    written as the release of that revision wrote them."""
    older = Store(f"sqlite:///{tmp_path / f'at-{revision}.db'}")
    upgrade(older, revision)
    stamp = "2026-11-27 09:00:00.000000"
    with older.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO identity (id, is_test, created_at, updated_at) VALUES (1, 0, ?, ?)",
                             (stamp, stamp))
        for lifted_at in lifted:
            conn.exec_driver_sql(
                "INSERT INTO revocation (identity_id, scope, channels, purposes, brands, source, reason, received_at, "
                "effective_at, deadline_at, lifted_at, pii_digest) VALUES (1, 'identity', '[\"sms\"]', '[\"*\"]', "
                "'[\"*\"]', 'sms_keyword', 'asked on a call', ?, ?, ?, ?, '')", (stamp, stamp, stamp, lifted_at))
    return older


def test_revocations_chained_before_0009_keep_the_first_chain_scheme(tmp_path) -> None:  # type: ignore[no-untyped-def]
    older = _with_revocations(tmp_path, "0008", [None])
    upgrade(older)
    with older.engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT chain_scheme FROM revocation").scalar_one() == 1
        conn.exec_driver_sql("UPDATE revocation SET chain_scheme = 2")
    # A release before 0009 would verify that row by the first scheme and call it broken.
    config = alembic_config(older)
    with older.engine.connect() as connection, pytest.raises(RuntimeError, match="scheme 2"):
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")


def test_opt_outs_lifted_before_0010_are_chained_by_the_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from sqlmodel import Session

    from consentgate.store import chain
    from consentgate.store.models import Revocation

    older = _with_revocations(tmp_path, "0009", [None, "2026-11-27 10:00:00.000000"])
    with Session(older.engine) as session:
        # Chained as a release before 0010 chained revocations (their own entries, no lift entry).
        table = Revocation.__table__  # type: ignore[attr-defined]
        rows = session.execute(select(table).order_by(table.c.id)).mappings().all()
        chain.append_hashes(session.connection(), "revocation",
                            [(row["id"], chain.content_hash_of("revocation", dict(row))) for row in rows],
                            datetime.now(UTC))
        session.commit()
        assert chain.verify(session).first_broken["problem"] == "the opt-out was lifted without a chained record of it"
    upgrade(older)
    with Session(older.engine) as session:
        assert chain.verify(session).ok
        kinds = [k for (k,) in session.execute(text("SELECT table_name FROM chain_entry ORDER BY seq"))]
    assert kinds == ["revocation", "revocation", "revocation_lift"]


def test_every_migration_downgrades_and_upgrades_again(second_database_url: str) -> None:
    # An operator rolling a release back runs the downgrades: on a store with no data in the
    # way, each must undo its upgrade so that the upgrades then build the same schema again.
    store = Store(second_database_url)
    config = alembic_config(store)
    with store.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
        connection.commit()
    assert current_revision(store) is None
    upgrade(store)
    assert is_current(store)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
