"""Letting old rows go: the decision log once the policy's retention period has passed (and, by
the same means, idempotency keys, ``services.idempotency``).

Decisions are not ledger rows (the chain does not cover them), so deleting old ones breaks no
verification. They go in small transactions, oldest first, so that on SQLite no deletion holds
the write lock for long, and a run stops after a bounded number so that a store catching up on
years of history does so over several runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, delete, select, tuple_

from consentgate.core.policy import LoadedPolicy
from consentgate.store.db import Store
from consentgate.store.models import DecisionRecord

CHUNK = 5_000
MOST_PER_RUN = 500_000


def decision_log_cutoff(policy: LoadedPolicy, now: datetime) -> datetime:
    """Decisions made before this instant are past the policy's retention period."""
    return now - timedelta(days=round(365.25 * policy.policy.retention.decision_log_years))


def purge_expired_decisions(store: Store, policy: LoadedPolicy, now: datetime, chunk: int = CHUNK,
                            most: int = MOST_PER_RUN) -> int:
    """Delete logged decisions past their retention period, up to ``most``; returns how many."""
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    return purge_oldest(store, [table.c.id], table.c.decided_at, decision_log_cutoff(policy, now), chunk, most)


def purge_oldest(store: Store, keys: Sequence[Column[Any]], dated: Column[Any], before: datetime,
                 chunk: int = CHUNK, most: int = MOST_PER_RUN) -> int:
    """Delete the rows of ``keys``' table dated (by ``dated``) before ``before``, oldest first,
    ``chunk`` per transaction and at most ``most`` in all; returns how many."""
    key = keys[0] if len(keys) == 1 else tuple_(*keys)
    oldest = select(*keys).where(dated < before).order_by(dated).limit(chunk)
    purged = 0
    while purged < most:
        with store.transaction() as session:
            gone = int(session.execute(delete(dated.table).where(key.in_(oldest))).rowcount or 0)  # type: ignore[attr-defined]
        purged += gone
        if gone < chunk:
            break
    return purged
