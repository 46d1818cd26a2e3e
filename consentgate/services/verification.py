"""Verifying the whole hash chain with every core: each worker process recomputes a range of it.

A range is checked from the entry before it, whose own range vouches for that entry's hash, so the
ranges together check exactly what one pass does, and the first broken link is the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from consentgate.services.fanout import forked_map, worker_count
from consentgate.store.chain import VerifyResult, last_seq, unchained_row, verify
from consentgate.store.db import Store

# Below this many entries per worker, starting processes costs more than it saves.
MIN_PER_WORKER = 20_000


def verify_chain(store: Store, now: datetime, workers: int | None = None,
                 min_per_worker: int = MIN_PER_WORKER) -> VerifyResult:
    """``chain.verify`` over the whole chain as of ``now``, in ``workers`` processes (one per core
    by default)."""
    workers = worker_count() if workers is None else workers
    with store.transaction(write=False) as session:
        last = last_seq(session)
        if workers < 2 or last < 2 * min_per_worker:
            return _with_every_row_chained(session, verify(session, now=now))
    bounds = [last * part // workers for part in range(workers + 1)]

    def verify_range(part: int) -> VerifyResult:
        with store.transaction(write=False) as session:
            return verify(session, after=bounds[part], until=bounds[part + 1], now=now)

    checked = 0
    for result in forked_map(verify_range, range(workers)):
        if not result.ok:
            return VerifyResult(False, checked + result.checked, result.first_broken)
        checked += result.checked
    # Entries written after the ranges were drawn are checked as one pass would meet them.
    with store.transaction(write=False) as session:
        rest = verify(session, after=last, now=now)
        return _with_every_row_chained(session, VerifyResult(rest.ok, checked + rest.checked, rest.first_broken))


def _with_every_row_chained(session: Session, result: VerifyResult) -> VerifyResult:
    """``result``, or a failure naming a ledger row that no chain entry covers."""
    if not result.ok:
        return result
    unchained = unchained_row(session)
    return result if unchained is None else VerifyResult(False, result.checked, unchained)


@dataclass(frozen=True)
class Stretch:
    """What checking one stretch of the chain found, and where the next stretch starts."""

    result: VerifyResult
    after: int
    next_after: int | None
    last_seq: int


def verify_stretch(store: Store, now: datetime, after: int = 0, limit: int | None = None) -> Stretch:
    """``chain.verify`` of at most ``limit`` entries after ``after`` (every later one without a
    limit), checked from the entry before them: a client walking the chain a stretch per request,
    each starting where the last one stopped, checks what one pass checks without any request
    outlasting a server's timeout. ``next_after`` is None once a stretch reached the chain's head
    or found a broken link."""
    until = None if limit is None else after + limit
    with store.transaction(write=False) as session:
        result = verify(session, after=after, until=until, now=now)
        # Read after the check: entries appended meanwhile are left to the next stretch.
        last = last_seq(session)
        more = result.ok and until is not None and until < last
        if not more:
            result = _with_every_row_chained(session, result)   # the last stretch also looks beside the chain
    return Stretch(result, after, until if more else None, last)
