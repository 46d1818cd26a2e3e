"""Consent receipts a third party can check: ISO/IEC TS 27560 and Kantara Consent Receipt v1.1.

The builders are pure: they take one consent event as plain values and return dictionaries.
Fields consentgate does not hold are explicit nulls (or the policy's controller defaults), so a
reader can tell "unknown" from "left out". The Kantara receipt is signed as a compact JWS
(EdDSA, RFC 8037) with a key derived from the service secret; its public half is published as a
JWK Set so anyone can verify a receipt without asking consentgate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KANTARA_VERSION = "KI-CR-v1.1.0"
ISO_SCHEMA = "ISO/IEC TS 27560:2023"
_RECEIPT_NAMESPACE = uuid.UUID("6f1d4c0e-6a53-4c3e-9f8e-3b1f0c7a2d91")
_KEY_LABEL = b"consentgate receipt signing key v1"


@dataclass(frozen=True)
class Controller:
    """Who the consent was given to; every field is optional."""

    name: str | None = None
    contact: str | None = None
    address: str | None = None
    email: str | None = None
    phone: str | None = None
    url: str | None = None
    policy_url: str | None = None
    jurisdiction: str = "US"
    language: str = "en"


@dataclass(frozen=True)
class ConsentRecord:
    """One consent event as a receipt sees it."""

    consent_id: int
    identity_id: int
    address_kind: str
    address: str | None          # None once erased
    channel: str
    purpose: str
    consent_type: str
    captured_at: datetime
    recorded_at: datetime
    source: str
    state: str                   # active | expired | withdrawn | superseded
    proof_uri: str | None = None
    proof_sha256: str | None = None
    brand: str | None = None
    consent_text: str | None = None
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None


def receipt_id(record: ConsentRecord) -> str:
    """A stable receipt id: the same consent event always gets the same one."""
    return str(uuid.uuid5(_RECEIPT_NAMESPACE, f"consent:{record.consent_id}"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def iso_27560(record: ConsentRecord, controller: Controller) -> dict[str, Any]:
    """The consent record in the ISO/IEC TS 27560 sections: header, processing, party, event."""
    validity = None
    if record.expires_at is not None:
        validity = f"PT{int((record.expires_at - record.captured_at).total_seconds())}S"
    events = [{
        "event_time": _iso(record.captured_at),
        "event_type": "consent_given",
        "event_by": "pii_principal",
        "event_to": controller.name,
        "event_state": "active",
        "collection_method": record.source,
        "validity_duration": validity,
        "proof": {"uri": record.proof_uri, "sha256": record.proof_sha256},
    }]
    if record.state in ("withdrawn", "expired"):
        events.append({
            "event_time": _iso(record.withdrawn_at if record.state == "withdrawn" else record.expires_at),
            "event_type": "consent_withdrawn" if record.state == "withdrawn" else "consent_expired",
            "event_by": "pii_principal" if record.state == "withdrawn" else "controller",
            "event_to": controller.name,
            "event_state": record.state,
            "collection_method": None,
            "validity_duration": None,
            "proof": None,
        })
    return {
        "header": {
            "schema_version": ISO_SCHEMA,
            "record_id": receipt_id(record),
            "pii_principal_id": record.address,
            "pii_principal_id_type": record.address_kind,
            "record_created_at": _iso(record.recorded_at),
        },
        "processing": {
            "privacy_notice": controller.policy_url,
            "notice_text": record.consent_text,
            "language": controller.language,
            "jurisdiction": controller.jurisdiction,
            "purposes": [{
                "purpose": record.purpose,
                "channel": record.channel,
                "brand": record.brand,
                "lawful_basis": "consent",
                "consent_type": record.consent_type,
                "pii_information": [{"pii_type": record.address_kind, "pii_category": "contact"}],
                "processing": ["use", "contact"],
                "storage_location": None,
                "retention_period": None,
                "third_party_disclosure": False,
            }],
        },
        "party": [{
            "party_id": controller.url,
            "party_name": controller.name,
            "party_role": "controller",
            "address": controller.address,
            "contact": controller.contact,
            "email": controller.email,
            "phone": controller.phone,
        }],
        "event": events,
    }


def kantara_v1_1(record: ConsentRecord, controller: Controller, public_key: str | None) -> dict[str, Any]:
    """The Kantara Initiative Consent Receipt v1.1 fields for one consent event."""
    termination = _iso(record.expires_at) or "until withdrawn by the PII principal"
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": int(record.captured_at.timestamp()),
        "collectionMethod": record.source,
        "consentReceiptID": receipt_id(record),
        "publicKey": public_key,
        "language": controller.language,
        "piiPrincipalId": record.address,
        "piiControllers": [{
            "piiController": controller.name,
            "onBehalf": False,
            "contact": controller.contact,
            "address": controller.address,
            "email": controller.email,
            "phone": controller.phone,
            "piiControllerUrl": controller.url,
        }],
        "policyUrl": controller.policy_url,
        "services": [{
            "service": f"{record.channel} messages" + (f" from {record.brand}" if record.brand else ""),
            "purposes": [{
                "purpose": record.purpose,
                "purposeCategory": [record.purpose],
                "consentType": "EXPLICIT" if record.consent_type.startswith("express") else "IMPLICIT",
                "piiCategory": [record.address_kind],
                "primaryPurpose": True,
                "termination": termination,
                "thirdPartyDisclosure": False,
                "thirdPartyName": None,
            }],
        }],
        "sensitive": False,
        "spiCat": [],
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ReceiptSigner:
    """Signs receipts with an Ed25519 key derived from the service secret (stable across restarts)."""

    def __init__(self, secret: str) -> None:
        seed = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_x = _b64url(raw)
        self.kid = hashlib.sha256(raw).hexdigest()[:16]

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid,
                "use": "sig", "alg": "EdDSA"}

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS (EdDSA) over the receipt."""
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"})
