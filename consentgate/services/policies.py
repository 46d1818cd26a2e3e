"""Every policy version the gate has decided under, kept so decisions can be replayed."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consentgate.core.policy import LoadedPolicy, Policy, build
from consentgate.errors import NotFound
from consentgate.store.db import Store
from consentgate.store.models import PolicyVersion


def remember_policy(session: Session, policy: LoadedPolicy, now: datetime, store: Store | None = None) -> None:
    """Store the policy's canonical content once, in the caller's transaction.

    With ``store`` given, a version this process already stored there is not looked up again:
    the hot path then costs nothing. (Versions are never deleted, so the memo cannot go stale.)
    """
    if store is not None and policy.version in store.stored_policy_versions:
        return
    if session.get(PolicyVersion, policy.version) is not None:
        if store is not None:
            store.stored_policy_versions.add(policy.version)
        return
    try:
        with session.begin_nested():
            session.add(PolicyVersion(version=policy.version, name=policy.policy.name,
                                      canonical=policy.canonical, first_served_at=now))
    except IntegrityError:
        pass  # a concurrent decision stored the same version first


def policy_at_version(session: Session, version: str) -> LoadedPolicy:
    row = session.get(PolicyVersion, version)
    if row is None:
        raise NotFound(f"policy version {version} was never stored")
    return build(Policy.model_validate(json.loads(row.canonical)), f"policy_version {version[:12]}")
