"""What is acknowledged is on disk: every commit waits for the disk, except (by default) the
decision log rows of plain checks."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from consentgate.config import load_settings
from consentgate.errors import ConfigError
from consentgate.runtime import build_runtime
from consentgate.store.db import Store


def _levels(store: Store) -> dict[str, object]:
    """What each kind of write commits with: SQLite's synchronous level, PostgreSQL's synchronous_commit."""
    ask = "PRAGMA synchronous" if store.is_sqlite else "SHOW synchronous_commit"
    seen: dict[str, object] = {}
    for _ in range(3):   # alternately, on the same pooled connections: a level never leaks into the next
        with store.transaction() as session:   # consents, opt-outs, reservations, imports
            seen["transaction"] = session.execute(text(ask)).scalar_one()
        with store.transaction(only_decisions=True) as session:   # a batch of plain checks' log
            seen["batch log"] = session.execute(text(ask)).scalar_one()
        with store.transaction(write=False) as session:
            seen["read"] = session.execute(text(ask)).scalar_one()
    with store.driver() as driver:   # a plain single check's log row
        seen["check log"] = driver.raw.execute(ask).fetchone()[0]
    return seen


def test_every_commit_waits_for_the_disk_but_plain_check_logs_by_default(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"database_url": database_url, "secret_file": str(tmp_path / "secret")})
    assert settings.decision_log_sync == "deferred"
    store = build_runtime(settings, migrate=False).store
    if store.is_sqlite:   # 2: FULL, 1: NORMAL
        assert _levels(store) == {"transaction": 2, "batch log": 1, "read": 2, "check log": 1}
    else:
        assert _levels(store) == {"transaction": "on", "batch log": "off", "read": "on", "check log": "off"}


def test_decision_log_sync_commit_makes_plain_check_logs_wait_too(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"database_url": database_url, "secret_file": str(tmp_path / "secret"),
                              "decision_log_sync": "commit"})
    store = build_runtime(settings, migrate=False).store
    synced = 2 if store.is_sqlite else "on"
    assert set(_levels(store).values()) == {synced}


def test_an_unknown_decision_log_sync_stops_the_start_naming_the_variable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="CONSENTGATE_DECISION_LOG_SYNC"):
        load_settings({"decision_log_sync": "sometimes", "secret_file": str(tmp_path / "secret")})
