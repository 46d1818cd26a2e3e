"""Job leases: one holder at a time, expiry frees a crashed holder's lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consentgate.store import leases
from consentgate.store.db import Store

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)


def test_only_one_holder_gets_the_lease(store: Store) -> None:
    assert leases.acquire(store, "outbox", "a", T0, TTL)
    assert not leases.acquire(store, "outbox", "b", T0 + timedelta(seconds=1), TTL)


def test_the_holder_may_renew_its_own_lease(store: Store) -> None:
    assert leases.acquire(store, "outbox", "a", T0, TTL)
    assert leases.acquire(store, "outbox", "a", T0 + timedelta(minutes=1), TTL)


def test_a_released_lease_is_free_for_others(store: Store) -> None:
    assert leases.acquire(store, "outbox", "a", T0, TTL)
    leases.release(store, "outbox", "a", T0 + timedelta(seconds=2))
    assert leases.acquire(store, "outbox", "b", T0 + timedelta(seconds=3), TTL)


def test_an_expired_lease_of_a_crashed_holder_is_taken_over(store: Store) -> None:
    assert leases.acquire(store, "outbox", "crashed", T0, TTL)
    assert not leases.acquire(store, "outbox", "b", T0 + TTL - timedelta(seconds=1), TTL)
    assert leases.acquire(store, "outbox", "b", T0 + TTL, TTL)


def test_leases_of_different_jobs_are_independent(store: Store) -> None:
    assert leases.acquire(store, "outbox", "a", T0, TTL)
    assert leases.acquire(store, "sla", "b", T0, TTL)


def test_racing_holders_never_both_win(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda i: leases.acquire(store, "race", f"h{i}", T0, TTL), range(16)))
    assert wins.count(True) == 1


def test_a_turn_of_an_interval_is_skipped_when_another_instance_just_ran_the_job(store: Store) -> None:
    # Two scheduler instances each keep every job's interval: the job runs once per interval.
    hour = timedelta(hours=1)
    assert leases.acquire(store, "retention", "a", T0, TTL, not_after=T0 - hour / 2)
    leases.release(store, "retention", "a", T0 + timedelta(seconds=30))
    b_turn = T0 + timedelta(minutes=1)
    assert not leases.acquire(store, "retention", "b", b_turn, TTL, not_after=b_turn - hour / 2)
    a_next = T0 + hour
    assert leases.acquire(store, "retention", "a", a_next, TTL, not_after=a_next - hour / 2)
    # Asked to run now (``scheduler --once``), it runs whenever it last ran.
    leases.release(store, "retention", "a", a_next)
    assert leases.acquire(store, "retention", "b", a_next + timedelta(seconds=1), TTL)
