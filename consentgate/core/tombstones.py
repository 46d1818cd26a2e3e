"""Keyed hashes of erased addresses: enough to recognise a person who opted out, nothing more."""

from __future__ import annotations

import hashlib
import hmac


def tombstone_hash(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised address under the server-held key, as hex.

    Keyed (not a bare sha256) so a leaked tombstone table cannot be reversed by hashing every
    phone number in the numbering plan.
    """
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
