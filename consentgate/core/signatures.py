"""Webhook signatures: checking what providers send us, signing what we send downstream.

Pure functions over strings and bytes; nothing here reads a clock, a setting or a request.
Every ``verify_*`` answers ``False`` for anything it cannot check (missing header, garbage
base64, wrong key length) and never raises: a bad signature is a 403, not a 500. Comparisons
are constant-time (``hmac.compare_digest``) so a forger learns nothing from response times.

Inbound
    Twilio   ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, over the full
             URL Twilio called (query string included) followed by every POST parameter name and
             its value, names sorted (a repeated name contributes each of its values, sorted).
             Twilio may sign the URL with or without the default port, so both are tried, as
             Twilio's own ``RequestValidator`` does.
    Telnyx   ``telnyx-signature-ed25519`` (base64) over ``f"{telnyx-timestamp}|{raw body}"`` with
             the account's Ed25519 public key (base64, as the portal shows it); the timestamp is
             unix seconds and must lie within ``tolerance_s`` of ``now`` either way (replay).
    Generic  ``X-Consentgate-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

Outbound (downstream propagation), Stripe style::

    X-Consentgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.{raw body}">

The timestamp is inside the MAC so a receiver can refuse replays of old deliveries. A header
may carry several ``v1=`` entries (one per secret while a secret is being rotated); it is valid
when any of them matches. Unknown keys are ignored so a ``v2`` can be added later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

GENERIC_PREFIX = "sha256="
OUTBOUND_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Plain ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits.
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def _equal(expected: str, given: str) -> bool:
    # compare_digest refuses non-ASCII str with TypeError; bytes keep a forged header a plain False.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


# --- Twilio -------------------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | list[str]]) -> str:
    """The X-Twilio-Signature Twilio sends for a POST of ``params`` to ``url``."""
    parts = [url]
    for name in sorted(params):
        values = params[name]
        for value in sorted([values] if isinstance(values, str) else values):
            parts.append(name + value)
    digest = hmac.new(auth_token.encode(), "".join(parts).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(auth_token: str, url: str, params: Mapping[str, str | list[str]], signature: str) -> bool:
    """True when ``signature`` is Twilio's for this URL (with or without default port) and these params."""
    if not auth_token or not signature:
        return False
    # Evaluate every candidate (no short-circuit) so timing does not tell which form matched.
    matches = [_equal(twilio_signature(auth_token, u, params), signature) for u in _url_variants(url)]
    return any(matches)


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its default port and with it (Twilio signs either form)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number: nothing to add or remove
        return [url]
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare_host = host if port is None else host[: host.rfind(":")]
    variants = [url]
    if port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{bare_host}:{default}")))
    elif port is not None and port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{bare_host}")))
    return variants


# --- Telnyx -------------------------------------------------------------------------------------


def verify_telnyx(public_key_b64: str, signature_b64: str, timestamp: str, raw_body: bytes, now: datetime,
                  tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True when the Ed25519 signature over ``timestamp|body`` is valid and the timestamp is fresh."""
    if not _UNIX_SECONDS.fullmatch(timestamp or ""):
        return False
    if abs(_unix(now) - int(timestamp)) > tolerance_s:
        return False
    try:
        key = VerifyKey(_b64(public_key_b64))
        key.verify(timestamp.encode() + b"|" + raw_body, _b64(signature_b64))
    except (ValueError, TypeError, CryptoError):
        # Garbage base64, a key or signature of the wrong length, or a signature that does not verify.
        return False
    return True


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError) as exc:
        raise ValueError("not base64") from exc


# --- Generic ------------------------------------------------------------------------------------


def generic_signature(secret: str, raw_body: bytes) -> str:
    """The X-Consentgate-Signature value for an inbound generic webhook body: ``sha256=<hex>``."""
    return GENERIC_PREFIX + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_generic(secret: str, raw_body: bytes, header: str) -> bool:
    """True when ``header`` is ``sha256=<hex HMAC-SHA256 of raw_body>`` under ``secret``."""
    if not secret or not header:
        return False
    given = header.strip()
    # Hex digits are case-insensitive; the scheme name is not worth being strict about either.
    if given[: len(GENERIC_PREFIX)].lower() != GENERIC_PREFIX:
        return False
    return _equal(generic_signature(secret, raw_body), GENERIC_PREFIX + given[len(GENERIC_PREFIX):].lower())


# --- Outbound -----------------------------------------------------------------------------------


def outbound_mac(secret: str, timestamp: int, raw_body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{raw_body}"``: the ``v1`` value of an outbound header."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()


def sign_outbound(secret: str, timestamp: int, raw_body: bytes) -> str:
    """The X-Consentgate-Signature header of a downstream delivery: ``t=<ts>,v1=<hex>``."""
    return f"t={timestamp},{OUTBOUND_VERSION}={outbound_mac(secret, timestamp, raw_body)}"


def verify_outbound(secret: str, header: str, raw_body: bytes, now: datetime | None = None,
                    tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True when a ``t=…,v1=…`` header signs ``raw_body``; with ``now``, also when ``t`` is fresh."""
    if not secret or not header:
        return False
    fields = _header_fields(header)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not _UNIX_SECONDS.fullmatch(stamps[0]):
        return False
    timestamp = int(stamps[0])
    if now is not None and abs(_unix(now) - timestamp) > tolerance_s:
        return False
    expected = outbound_mac(secret, timestamp, raw_body)
    matches = [_equal(expected, given.lower()) for given in fields.get(OUTBOUND_VERSION, [])]
    return any(matches)


def _header_fields(header: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if sep:
            fields.setdefault(key.strip(), []).append(value.strip())
    return fields


def _unix(now: datetime) -> float:
    # A naive datetime is taken as UTC, never as the host's local time.
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
