"""Every policy version the gate has decided under, kept so decisions can be replayed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from consentgate.core.policy import LoadedPolicy, build, from_canonical
from consentgate.errors import Conflict, NotFound
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


def policy_at_version(session: Session, version: str, served: LoadedPolicy | None = None) -> LoadedPolicy:
    """The policy a decision was made under, as stored when it was first served.

    Versions stored before the canonical content kept the consent types' ranking cannot tell it;
    such a version is the ``served`` policy when that policy hashes to it the old way, and
    otherwise cannot be rebuilt faithfully (409): ranked alphabetically, "express" would meet a
    requirement of "express_written".
    """
    row = session.get(PolicyVersion, version)
    if row is None:
        raise NotFound(f"policy version {version} was never stored")
    policy = from_canonical(row.canonical)
    if policy is not None:
        return build(policy, f"policy_version {version[:12]}")
    if served is not None and served.legacy_version == version:
        return served
    raise Conflict(f"policy version {version[:12]} was stored without the ranking of its consent types, and the "
                   "policy served now is another: the decision cannot be replayed under the rules it was made by")
