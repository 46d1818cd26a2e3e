"""Job leases: one scheduler instance runs a job at a time, whichever instances are up.

A lease is a row per job name. Taking it is one conditional UPDATE (free, expired, or already
ours), so two instances can never both hold it; a crashed holder's lease simply expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, or_, true, update
from sqlalchemy.exc import IntegrityError

from consentgate.store.db import Store
from consentgate.store.models import JobLease

_table = JobLease.__table__  # type: ignore[attr-defined]


def acquire(store: Store, name: str, holder: str, now: datetime, ttl: timedelta,
            not_after: datetime | None = None) -> bool:
    """Take the lease on ``name`` for ``ttl``; False when another holder has it, or (with
    ``not_after``) when the job last ran after that instant, wherever it ran."""
    with store.transaction() as session:
        try:
            with session.begin_nested():
                session.execute(insert(_table).values(name=name, holder=None, expires_at=None))
        except IntegrityError:
            pass  # the row exists already: the UPDATE below decides
        result = session.execute(
            update(_table)
            .where(_table.c.name == name)
            .where(or_(_table.c.expires_at.is_(None), _table.c.expires_at <= now, _table.c.holder == holder))
            .where(true() if not_after is None
                   else or_(_table.c.last_run_at.is_(None), _table.c.last_run_at <= not_after))
            .values(holder=holder, expires_at=now + ttl)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def release(store: Store, name: str, holder: str, now: datetime) -> None:
    """Give the lease back (only if still ours) and record when the job last ran."""
    with store.transaction() as session:
        session.execute(
            update(_table)
            .where(_table.c.name == name, _table.c.holder == holder)
            .values(expires_at=now, last_run_at=now)
        )
