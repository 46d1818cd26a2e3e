"""Recording consent events: append-only provenance, one row per statement of consent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session

from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import iso_z
from consentgate.errors import (
    ConsentgateError,
    FieldError,
    ValidationFailed,
    problem_fields,
)
from consentgate.services.identities import contact_point_for_channel, resolve_for_write
from consentgate.services.keys import Actor
from consentgate.services.schemas import CLOCK_SKEW, ConsentIn, utc
from consentgate.store import chain
from consentgate.store.models import ConsentEvent


def check_consent(item: ConsentIn, policy: LoadedPolicy, now: datetime, prefix: str = "") -> None:
    """The rules that need the policy; each failure names its field."""
    errors: list[FieldError] = []
    if item.channel not in policy.channels:
        errors.append(FieldError(prefix + "channel", f"unknown channel {item.channel!r}; the policy has "
                                 f"{sorted(policy.channels)}"))
    if item.purpose not in policy.policy.purposes:
        errors.append(FieldError(prefix + "purpose", f"unknown purpose {item.purpose!r}; the policy has "
                                 f"{policy.policy.purposes}"))
    spec = policy.policy.consent_types.get(item.consent_type)
    if spec is None:
        errors.append(FieldError(prefix + "consent_type", f"unknown consent type {item.consent_type!r}; "
                                 f"the policy has {sorted(policy.policy.consent_types)}"))
    elif spec.requires_proof and not item.proof_uri:
        errors.append(FieldError(prefix + "proof_uri",
                                 f"a {item.consent_type} consent needs a proof_uri (the signed agreement)"))
    if item.captured_at > now + CLOCK_SKEW:
        errors.append(FieldError(prefix + "captured_at", "is in the future"))
    if item.expires_at is not None and item.expires_at <= item.captured_at:
        errors.append(FieldError(prefix + "expires_at", "must be after captured_at"))
    if item.proof_uri is not None and not _is_web_uri(item.proof_uri):
        errors.append(FieldError(prefix + "proof_uri", "must be an absolute http or https URI"))
    if errors:
        raise ValidationFailed(errors)


def _is_web_uri(value: str) -> bool:
    if _PLAIN_WEB_URI.fullmatch(value):
        return True
    try:
        parts = urlsplit(value)
    except ValueError:   # "https://[": an IPv6 host left open
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value


# The everyday proof URI (a host name, maybe a port, a path without spaces), for which the answer
# below is known without splitting it: imports check one on most rows.
_PLAIN_WEB_URI = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[!-~]*)?")


def wrong_address(prefix: str, kind: str, channel: str) -> ValidationFailed:
    """The error for a consent whose channel cannot reach the address it names."""
    return ValidationFailed.field(prefix + kind, f"{channel} consent cannot be on {'an' if kind == 'email' else 'a'} "
                                  f"{kind} address")


def write_consent(session: Session, item: ConsentIn, policy: LoadedPolicy, actor: Actor | None,
                  now: datetime, *, prefix: str = "", inbound_message_id: int | None = None) -> ConsentEvent:
    """Append one consent event in the caller's transaction (validated first, then written)."""
    check_consent(item, policy, now, prefix)
    identity, cp = resolve_for_write(session, item.ref(), policy, now, prefix)
    kind = policy.channels[item.channel].kind
    if kind is None:
        cp = None   # a channel that reaches the person: an address named only finds them
    elif cp is None:
        cp = contact_point_for_channel(session, identity, kind)
        if cp is None:
            raise ValidationFailed.field(prefix + "identity_id",
                                         f"identity {identity.id} has no {kind} address for {item.channel}")
    elif cp.kind != kind:
        raise wrong_address(prefix, cp.kind, item.channel)
    assert identity.id is not None and (cp is None or cp.id is not None)
    event = ConsentEvent(
        identity_id=identity.id, contact_point_id=cp.id if cp else None, channel=item.channel, purpose=item.purpose,
        consent_type=item.consent_type, captured_at=utc(item.captured_at), recorded_at=now,
        source=item.source, proof_uri=item.proof_uri,
        proof_sha256=item.proof_sha256.lower() if item.proof_sha256 else None, brand=item.brand,
        consent_text=item.consent_text, ip=item.ip, user_agent=item.user_agent,
        expires_at=utc(item.expires_at), api_key_id=actor.key_id if actor else None,
        inbound_message_id=inbound_message_id,
    )
    chain.seal("consent_event", event, cp.value if cp else None)
    session.add(event)
    session.flush()
    chain.append(session, "consent_event", [event], now)
    return event


def consent_answer(event: ConsentEvent) -> dict[str, Any]:
    return {"consent_id": event.id, "identity_id": event.identity_id, "recorded_at": iso_z(event.recorded_at)}


@dataclass(frozen=True)
class BatchResult:
    index: int
    status: int
    body: dict[str, Any]


def failed(index: int, exc: ConsentgateError) -> BatchResult:
    body = problem_fields(exc)
    return BatchResult(index, body.pop("status"), body)
