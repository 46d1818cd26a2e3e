"""Consent receipts for one consent event, signed so a third party can check them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select

from consentgate.core.policy import LoadedPolicy, label_in, matches
from consentgate.core.receipts import (
    ConsentRecord,
    Controller,
    ReceiptSigner,
    iso_27560,
    kantara_v1_1,
)
from consentgate.errors import NotFound
from consentgate.store.db import Store
from consentgate.store.models import ConsentEvent, ContactPoint, Revocation

_signers: dict[str, ReceiptSigner] = {}


def signer_for(secret: str) -> ReceiptSigner:
    """One signer per secret per process: deriving the key is cheap, but not free."""
    signer = _signers.get(secret)
    if signer is None:
        signer = _signers[secret] = ReceiptSigner(secret)
    return signer


def controller_of(policy: LoadedPolicy) -> Controller:
    spec = policy.policy.controller
    return Controller(**spec.model_dump())


def consent_receipt(store: Store, policy: LoadedPolicy, secret: str, consent_id: int,
                    now: datetime) -> dict[str, Any]:
    """The ISO/IEC TS 27560 record, the Kantara v1.1 receipt and its JWS for one consent event."""
    with store.transaction(write=False) as session:
        event = session.get(ConsentEvent, consent_id)
        if event is None:
            raise NotFound(f"no consent {consent_id}")
        principal: str | None
        if event.contact_point_id is None:
            # A consent to a channel without an address (postal) is the person's: they are its principal.
            principal_kind, principal = "identity", str(event.identity_id)
        else:
            cp = session.get(ContactPoint, event.contact_point_id)
            principal_kind, principal = (cp.kind, cp.value) if cp else ("unknown", None)
        revocations = list(session.exec(select(Revocation).where(
            Revocation.identity_id == event.identity_id, Revocation.received_at > event.captured_at)))
    withdrawn = next((r for r in sorted(revocations, key=lambda r: r.received_at)
                      if r.lifted_at is None and matches(r.channels, event.channel)
                      and matches(r.purposes, event.purpose)
                      and (label_in(r.brands, event.brand) if event.brand else "*" in r.brands)), None)
    state = "active"
    if withdrawn is not None:
        state = "withdrawn"
    elif event.expires_at is not None and event.expires_at <= now:
        state = "expired"
    record = ConsentRecord(
        consent_id=event.id or 0, identity_id=event.identity_id,
        address_kind=principal_kind, address=principal,
        channel=event.channel, purpose=event.purpose, consent_type=event.consent_type,
        captured_at=event.captured_at, recorded_at=event.recorded_at, source=event.source,
        state=state, proof_uri=event.proof_uri, proof_sha256=event.proof_sha256, brand=event.brand,
        consent_text=event.consent_text, expires_at=event.expires_at,
        withdrawn_at=withdrawn.received_at if withdrawn else None,
    )
    signer = signer_for(secret)
    controller = controller_of(policy)
    kantara = kantara_v1_1(record, controller, signer.public_x)
    return {
        "consent_id": event.id,
        "state": state,
        "iso_27560": iso_27560(record, controller),
        "kantara_v1_1": kantara,
        "jws": signer.sign(kantara),
        "jwks_uri": "/v1/receipts/jwks.json",
    }
