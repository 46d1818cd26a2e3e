"""API keys: minted once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from consentgate.errors import NotFound, ValidationFailed
from consentgate.store.db import Store
from consentgate.store.models import ApiKey

ROLES = ("sender", "writer", "auditor", "admin")
KEY_PREFIX = "cg_"


@dataclass(frozen=True)
class Actor:
    """Who is calling: the key's id, name and role."""

    key_id: int | None
    name: str
    role: str

    def has(self, *roles: str) -> bool:
        """Admin may do everything; other roles only what they are named for."""
        return self.role == "admin" or self.role in roles


SYSTEM = Actor(key_id=None, name="consentgate", role="admin")


def hash_key(token: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


MAX_NAME = 200   # api_key.name


def create_key(store: Store, role: str, name: str, now: datetime) -> tuple[ApiKey, str]:
    """Mint a key; the clear text is returned once and never stored."""
    if role not in ROLES:
        raise ValidationFailed.field("role", f"must be one of {', '.join(ROLES)}")
    if len(name) > MAX_NAME:
        raise ValidationFailed.field("name", f"is longer than {MAX_NAME} characters")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name or role, role=role, prefix=token[:10], key_hash=hash_key(token),
                 created_at=now)
    with store.transaction() as session:
        session.add(key)
        session.flush()
    return key, token


def list_keys(store: Store) -> list[ApiKey]:
    with store.transaction(write=False) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))))


def revoke_key(store: Store, key_id_or_prefix: str, now: datetime) -> ApiKey:
    """Revoke by id or by the prefix shown in ``keys list``."""
    with store.transaction() as session:
        query = select(ApiKey)
        if key_id_or_prefix.isdigit():
            query = query.where(ApiKey.id == int(key_id_or_prefix))
        else:
            query = query.where(ApiKey.prefix == key_id_or_prefix)
        key = session.exec(query).first()
        if key is None:
            raise NotFound(f"no API key {key_id_or_prefix!r}")
        if key.revoked_at is None:
            key.revoked_at = now
        return key


def authenticate(store: Store, token: str) -> Actor | None:
    """The actor behind a presented key, or None when it is unknown or revoked."""
    with store.transaction(write=False) as session:
        key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(token))).first()
    if key is None or key.revoked_at is not None:
        return None
    return Actor(key_id=key.id, name=key.name, role=key.role)
