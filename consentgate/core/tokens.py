"""Signed, URL-safe email unsubscribe tokens (RFC 8058 one-click links).

A token is itsdangerous' URL-safe serialisation of a compact JSON list, signed with
HMAC-SHA256 under a key derived from the service secret and a salt of its own (so a token can
never pass for another signed value of the service, nor the reverse)::

    <payload>.<signature>
    payload   = base64url(JSON [email, brand|null, purpose|null, issued_at unix seconds]),
                zlib-compressed and prefixed with "." when that is shorter
    signature = base64url(HMAC-SHA256), no padding

Only characters ``A-Z a-z 0-9 - _ .`` appear, so the token is safe in a URL path as it is.
The payload is signed, not encrypted: it holds the address the email was sent to anyway.

Expiry is checked here against the ``now`` the caller passes, from the ``issued_at`` inside the
signed payload; nothing in this module reads a clock. CAN-SPAM (15 U.S.C. 7704(a)(3)) requires
a link to keep working for 30 days after the message is sent, which is why the policy's
``token_max_age_days`` is at least 30. A token whose ``issued_at`` lies in the future (a clock
ahead on the node that minted it) is accepted: only holders of the secret can produce one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer

from consentgate.core.timefmt import as_utc
from consentgate.errors import BadRequest, ConfigError

# Changing the payload layout means a new salt: old tokens then fail cleanly as "invalid".
_SALT = "consentgate.email-unsubscribe.v1"


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid unsubscribe token asks for: stop ``purpose`` emails from ``brand`` to ``email``."""

    email: str
    brand: str | None
    purpose: str | None
    issued_at: datetime


class InvalidUnsubscribeToken(BadRequest):
    """An unsubscribe token that is malformed, tampered with, signed with another key, or expired.

    ``reason`` is ``"invalid"`` or ``"expired"``; the message never says more than that, so a
    forger learns nothing about which part failed.
    """

    title = "Invalid unsubscribe link"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def make_unsubscribe_token(secret: str, email: str, brand: str | None, purpose: str | None,
                           issued_at: datetime) -> str:
    """A signed token for one recipient's unsubscribe link."""
    payload = [email, brand, purpose, int(as_utc(issued_at).timestamp())]
    token = _serializer(secret).dumps(payload)
    assert isinstance(token, str)  # URLSafeSerializer with a JSON serialiser answers text
    return token


def read_unsubscribe_token(secret: str, token: str, now: datetime, max_age_days: int) -> UnsubscribeClaim:
    """The claim a token carries; ``InvalidUnsubscribeToken`` when it is forged, altered or too old."""
    try:
        payload = _serializer(secret).loads(token)
    except (BadData, UnicodeError, ValueError):
        raise _invalid() from None
    claim = _claim(payload)
    if as_utc(now) - claim.issued_at > timedelta(days=max_age_days):
        raise InvalidUnsubscribeToken(
            "expired", f"This unsubscribe link has expired (links work for {max_age_days} days); "
                       "use the link in a more recent email.")
    return claim


def _serializer(secret: str) -> URLSafeSerializer:
    if not secret:
        raise ConfigError("CONSENTGATE_SECRET_KEY is empty: unsubscribe tokens cannot be signed or checked")
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def _claim(payload: object) -> UnsubscribeClaim:
    # The signature held, so only a payload of another layout under the same salt gets here.
    if not isinstance(payload, list) or len(payload) != 4:
        raise _invalid()
    email, brand, purpose, issued = payload
    if (
        not isinstance(email, str) or not email
        or not _optional_str(brand) or not _optional_str(purpose)
        or not isinstance(issued, int) or isinstance(issued, bool)
    ):
        raise _invalid()
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid() from None
    return UnsubscribeClaim(email, brand, purpose, issued_at)


def _optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _invalid() -> InvalidUnsubscribeToken:
    return InvalidUnsubscribeToken("invalid", "This unsubscribe link is not valid.")
