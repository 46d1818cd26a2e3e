"""Decision log writers on a SQLite file take turns instead of sleeping on SQLite's lock."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from consentgate.store.db import Store
from consentgate.store.models import DecisionRecord
from consentgate.store.writers import queue_for

# A waiter that did not get its turn within this long is taken as waiting (a slow machine can
# only make a waiter look like it waits when it does not, never the other way round).
PATIENCE = 0.3


def _take_turn(database: str, got: threading.Event) -> None:
    with queue_for(database).turn():
        got.set()


def test_a_forked_process_waits_for_the_turn_its_parent_holds(tmp_path: Path) -> None:
    database = str(tmp_path / "gate.db")
    queue = queue_for(database)
    fork = multiprocessing.get_context("fork")
    got = fork.Event()
    with queue.turn():
        # The child inherits the parent's open lock file, which on its own would let it through.
        child = fork.Process(target=_take_turn, args=(database, got), daemon=True)
        child.start()
        assert not got.wait(PATIENCE)
    assert got.wait(30)
    child.join(30)
    assert child.exitcode == 0
    assert Path(database + "-writers").exists()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    database = str(tmp_path / "gate.db")
    got = threading.Event()
    with queue_for(database).turn():
        thread = threading.Thread(target=_take_turn, args=(database, got), daemon=True)
        thread.start()
        assert not got.wait(PATIENCE)
    thread.join(30)
    assert got.is_set()


CHECK = {"phone": "+13055550100", "channel": "sms", "purpose": "marketing"}


@pytest.mark.parametrize(("path", "body"), [("/v1/eligibility", CHECK),
                                            ("/v1/eligibility/batch", {"items": [CHECK, CHECK]})])
def test_checks_log_their_decisions_in_turn(client, keys, store: Store, rows, path: str, body: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    if not store.is_sqlite:
        pytest.skip("PostgreSQL writers wait on row locks, not on a sleeping busy handler")
    fork = multiprocessing.get_context("fork")
    holding, release = fork.Event(), fork.Event()
    other = fork.Process(target=_hold_turn, args=(str(store.engine.url.database), holding, release),
                         daemon=True)
    other.start()
    assert holding.wait(30)
    answers: list[int] = []
    check = threading.Thread(target=lambda: answers.append(client.post(path, json=body,
                                                                       headers=keys["sender"]).status_code))
    check.start()
    check.join(PATIENCE)
    assert answers == [] and rows(DecisionRecord) == []   # waiting for the other process's turn
    release.set()
    check.join(30)
    other.join(30)
    assert answers == [200]
    assert len(rows(DecisionRecord)) == len(body.get("items", [body]))


def _hold_turn(database: str, holding: threading.Event, release: threading.Event) -> None:
    with queue_for(database).turn():
        holding.set()
        release.wait(30)
