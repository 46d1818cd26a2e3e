"""Consent receipts: ISO/IEC TS 27560 sections and a Kantara v1.1 receipt whose JWS verifies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from consentgate.runtime import Runtime
from consentgate.store.models import ConsentEvent, ContactPoint, Identity, Revocation

CAPTURED = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)


@pytest.fixture
def consent_id(runtime: Runtime) -> int:
    now = runtime.clock()
    with runtime.store.transaction() as session:
        identity = Identity(created_at=now, updated_at=now)
        session.add(identity)
        session.flush()
        cp = ContactPoint(identity_id=identity.id, kind="phone", value="+13055550123", created_at=now)
        session.add(cp)
        session.flush()
        event = ConsentEvent(
            identity_id=identity.id, contact_point_id=cp.id, channel="sms", purpose="marketing",
            consent_type="express_written", captured_at=CAPTURED, recorded_at=now, source="web_form",
            proof_uri="https://proof.example.com/forms/991", brand="acme", consent_text="I agree to texts",
        )
        session.add(event)
        session.flush()
        return int(event.id)


def _jwk(client) -> jwt.PyJWK:
    keys = client.get("/v1/receipts/jwks.json").json["keys"]
    assert len(keys) == 1 and keys[0]["alg"] == "EdDSA" and keys[0]["crv"] == "Ed25519"
    return jwt.PyJWK(keys[0])


def test_receipt_has_the_iso_27560_sections(client, keys, consent_id: int) -> None:
    body = client.get(f"/v1/consents/{consent_id}/receipt", headers=keys["auditor"]).json
    iso = body["iso_27560"]
    assert set(iso) == {"header", "processing", "party", "event"}
    assert iso["header"]["pii_principal_id"] == "+13055550123"
    assert iso["header"]["record_id"]
    purpose = iso["processing"]["purposes"][0]
    assert (purpose["purpose"], purpose["channel"], purpose["consent_type"]) == (
        "marketing", "sms", "express_written")
    assert iso["event"][0]["event_time"] == "2026-03-01T15:30:00Z"
    assert iso["event"][0]["proof"]["uri"] == "https://proof.example.com/forms/991"
    # Unknown controller details are explicit nulls, not missing keys.
    assert "party_name" in iso["party"][0] and iso["party"][0]["party_name"] is None


def test_kantara_receipt_signature_verifies_with_the_published_key(client, keys, consent_id: int) -> None:
    body = client.get(f"/v1/consents/{consent_id}/receipt", headers=keys["writer"]).json
    claims = jwt.decode(body["jws"], key=_jwk(client), algorithms=["EdDSA"])
    assert claims == body["kantara_v1_1"]
    assert claims["version"] == "KI-CR-v1.1.0"
    assert claims["consentTimestamp"] == int(CAPTURED.timestamp())
    assert claims["services"][0]["purposes"][0]["consentType"] == "EXPLICIT"


def test_an_altered_receipt_does_not_verify(client, keys, consent_id: int) -> None:
    token = client.get(f"/v1/consents/{consent_id}/receipt", headers=keys["auditor"]).json["jws"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["piiPrincipalId"] = "+13055550199"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}", key=_jwk(client), algorithms=["EdDSA"])


def test_receipt_shows_a_later_withdrawal(client, keys, runtime: Runtime, consent_id: int) -> None:
    with runtime.store.transaction() as session:
        event = session.get(ConsentEvent, consent_id)
        received = CAPTURED + timedelta(days=30)
        session.add(Revocation(identity_id=event.identity_id, contact_point_id=event.contact_point_id,
                               channels=["sms"], purposes=["*"], brands=["*"], source="sms_keyword",
                               received_at=received, effective_at=received, deadline_at=received))
    body = client.get(f"/v1/consents/{consent_id}/receipt", headers=keys["auditor"]).json
    assert body["state"] == "withdrawn"
    assert body["iso_27560"]["event"][-1]["event_type"] == "consent_withdrawn"


def test_receipt_of_an_unknown_consent_is_404(client, keys) -> None:
    assert client.get("/v1/consents/999999/receipt", headers=keys["auditor"]).status_code == 404


def test_senders_may_not_read_receipts(client, keys, consent_id: int) -> None:
    assert client.get(f"/v1/consents/{consent_id}/receipt", headers=keys["sender"]).status_code == 403
