"""Idempotency-Key handling: a retried write answers as the first one and writes nothing.

The record is written in the same transaction as the effect it guards, keyed by (scope, key)
with a primary key, so two racing retries cannot both write: the loser's transaction fails on
the key and it then answers from the winner's record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consentgate.errors import Conflict, ValidationFailed
from consentgate.services.retention import purge_oldest
from consentgate.store.db import Store
from consentgate.store.models import IdempotencyRecord

MAX_KEY_LENGTH = 200
# A retry comes within minutes or hours; a key is honoured this long, then forgotten.
KEY_RETENTION = timedelta(days=30)


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
                          .encode()).hexdigest()


def _replay(record: IdempotencyRecord, digest: str) -> tuple[int, Any]:
    if record.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used with a different request body")
    return record.status, record.response


def run_idempotent(store: Store, scope: str, key: str | None, body: Any, now: datetime,
                   effect: Callable[[Session], tuple[int, Any]]) -> tuple[int, Any]:
    """Run ``effect`` in one transaction, once per (scope, key); replays answer the same."""
    if key is None:
        with store.transaction() as session:
            return effect(session)
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed.field("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
    digest = request_hash(body)
    try:
        with store.transaction() as session:
            existing = session.get(IdempotencyRecord, (scope, key))
            if existing is not None:
                return _replay(existing, digest)
            status, response = effect(session)
            session.add(IdempotencyRecord(scope=scope, key=key, request_hash=digest, status=status,
                                          response=response, created_at=now))
            session.flush()
            return status, response
    except IntegrityError:
        # A concurrent request with the same key won; answer from its record.
        with store.transaction(write=False) as session:
            existing = session.get(IdempotencyRecord, (scope, key))
            if existing is None:
                raise
            return _replay(existing, digest)


def purge_expired_keys(store: Store, now: datetime, chunk: int = 5_000, most: int = 500_000) -> int:
    """Forget keys older than ``KEY_RETENTION``, oldest first, ``chunk`` per transaction and at
    most ``most`` per run; returns how many."""
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    return purge_oldest(store, [table.c.scope, table.c.key], table.c.created_at, now - KEY_RETENTION, chunk, most)
