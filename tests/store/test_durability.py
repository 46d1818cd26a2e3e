"""What is acknowledged is on disk: SQLite syncs its write-ahead log at every commit of a transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from consentgate.store.db import Store


def test_sqlite_transactions_sync_at_commit_and_only_plain_check_logs_do_not(store: Store) -> None:
    if not store.is_sqlite:
        pytest.skip("PostgreSQL syncs every commit unless told otherwise, and consentgate never tells it")
    with store.transaction() as session:   # consents, opt-outs, reservations, batches, imports
        assert session.execute(text("PRAGMA synchronous")).scalar_one() == 2   # FULL
    with store.transaction(write=False) as session:
        assert session.execute(text("PRAGMA synchronous")).scalar_one() == 2
    with store.driver() as driver:   # a plain check's decision log row
        assert driver.raw.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL
    for _ in range(3):   # a batch's decision log rows, then anything else on the same connections
        with store.transaction(only_decisions=True) as session:
            assert session.execute(text("PRAGMA synchronous")).scalar_one() == 1
        with store.transaction() as session:
            assert session.execute(text("PRAGMA synchronous")).scalar_one() == 2


def test_postgresql_commits_are_synced(store: Store) -> None:
    if store.is_sqlite:
        pytest.skip("a PostgreSQL setting")
    with store.transaction() as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    with store.driver() as driver:
        assert driver.raw.execute("SHOW synchronous_commit").fetchone()[0] == "on"
