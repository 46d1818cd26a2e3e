"""Every policy version the gate has decided under, kept so decisions can be replayed."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from consentgate.core.policy import LoadedPolicy, Policy, build
from consentgate.errors import NotFound
from consentgate.store.db import Store
from consentgate.store.models import PolicyVersion


def remember_policy(conn: Connection, policy: LoadedPolicy, now: datetime, store: Store | None = None) -> None:
    """Store the policy's canonical content once, with the caller's connection.

    With ``store`` given, a version this process already stored there is not written again:
    the hot path then costs nothing. (Versions are never deleted, so the memo cannot go stale.)
    A single insert that ignores a version already there: safe in autocommit mode and against a
    concurrent decision storing the same version.
    """
    if store is not None and policy.version in store.stored_policy_versions:
        return
    table = PolicyVersion.__table__  # type: ignore[attr-defined]
    statement = (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))
    conn.execute(statement.values(version=policy.version, name=policy.policy.name, canonical=policy.canonical,
                                  first_served_at=now).on_conflict_do_nothing(index_elements=["version"]))
    if store is not None:
        store.stored_policy_versions.add(policy.version)


def policy_at_version(session: Session, version: str) -> LoadedPolicy:
    row = session.get(PolicyVersion, version)
    if row is None:
        raise NotFound(f"policy version {version} was never stored")
    return build(Policy.model_validate(json.loads(row.canonical)), f"policy_version {version[:12]}")
