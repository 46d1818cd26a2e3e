"""Consent receipts and the public key that verifies them."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from consentgate.api.auth import require
from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.services.receipts import consent_receipt, signer_for

bp = Blueprint("receipts_api", __name__)


@bp.get("/v1/consents/<int:consent_id>/receipt")
@require("writer", "auditor")
@documented("A consent receipt: ISO/IEC TS 27560 record and a signed Kantara v1.1 receipt",
            tags=["consents"])
def receipt(consent_id: int) -> Response:
    rt = runtime()
    return jsonify(consent_receipt(rt.store, rt.policy, rt.secret_key, consent_id, rt.clock()))


@bp.get("/v1/receipts/jwks.json")
@documented("The public key (JWK Set) that verifies consent receipts", tags=["consents"], auth=False)
def jwks() -> Response:
    return jsonify({"keys": [signer_for(runtime().secret_key).jwk()]})
