"""Email unsubscribe: signed links for senders, honoured at once when followed (RFC 8058, CAN-SPAM)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlmodel import Session, col, select

from consentgate.core.addresses import normalise_email
from consentgate.core.policy import LoadedPolicy
from consentgate.core.tokens import UnsubscribeClaim, make_unsubscribe_token, read_unsubscribe_token
from consentgate.errors import ValidationFailed
from consentgate.services.identities import AddressRef, resolve_for_write
from consentgate.services.revocations import write_revocation
from consentgate.services.schemas import RevocationIn
from consentgate.store.models import Revocation

EMAIL_SOURCES = ("email_one_click", "email_link")


@dataclass(frozen=True)
class UnsubscribeLink:
    url: str
    headers: dict[str, str]


def unsubscribe_link(policy: LoadedPolicy, secret: str, public_url: str, email: str, brand: str | None,
                     purpose: str | None, now: datetime) -> UnsubscribeLink:
    """The link and the RFC 8058 headers a sender puts on one message."""
    value = normalise_email(email, casefold_local=policy.policy.identity.casefold_email_local_part)
    if purpose is not None and purpose not in policy.policy.purposes:
        raise ValidationFailed.field("purpose", f"unknown purpose {purpose!r}")
    token = make_unsubscribe_token(secret, value, brand, purpose, now)
    url = f"{public_url.rstrip('/')}/v1/unsubscribe/{quote(token, safe='')}"
    return UnsubscribeLink(url, {"List-Unsubscribe": f"<{url}>",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def read_claim(policy: LoadedPolicy, secret: str, token: str, now: datetime) -> UnsubscribeClaim:
    return read_unsubscribe_token(secret, token, now, policy.policy.email_unsubscribe.token_max_age_days)


def unsubscribe(session: Session, policy: LoadedPolicy, claim: UnsubscribeClaim, one_click: bool,
                now: datetime) -> Revocation:
    """Record the revocation a followed link asks for; following it again changes nothing."""
    purposes = [claim.purpose] if claim.purpose else list(policy.policy.email_unsubscribe.purposes)
    brands = [claim.brand] if claim.brand else ["*"]
    identity, cp = resolve_for_write(session, AddressRef(email=claim.email), policy, now)
    assert cp is not None
    for existing in session.exec(select(Revocation).where(
            Revocation.contact_point_id == cp.id, col(Revocation.source).in_(EMAIL_SOURCES),
            col(Revocation.lifted_at).is_(None))):
        if existing.purposes == sorted(set(purposes)) and existing.brands == sorted(set(brands)):
            return existing
    item = RevocationIn(email=claim.email, channels=["email"], purposes=purposes, brands=brands,
                        source="email_one_click" if one_click else "email_link",
                        reason="unsubscribe link" + (f" for {claim.brand}" if claim.brand else ""))
    return write_revocation(session, item, policy, None, now, contact_point=cp, identity=identity)
