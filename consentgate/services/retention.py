"""Letting the decision log go once the policy's retention period has passed.

Decisions are not ledger rows (the chain does not cover them), so deleting old ones breaks no
verification. They go in small transactions, oldest first, so that on SQLite no deletion holds
the write lock for long, and a run stops after a bounded number so that a store catching up on
years of history does so over several runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

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
    cutoff = decision_log_cutoff(policy, now)
    oldest = select(table.c.id).where(table.c.decided_at < cutoff).order_by(table.c.decided_at).limit(chunk)
    purged = 0
    while purged < most:
        with store.transaction() as session:
            gone = int(session.execute(delete(table).where(table.c.id.in_(oldest))).rowcount or 0)  # type: ignore[attr-defined]
        purged += gone
        if gone < chunk:
            break
    return purged
