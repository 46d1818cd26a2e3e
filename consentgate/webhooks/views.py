"""Inbound SMS webhooks: verify the provider's signature, then record and act before answering.

A bad or missing signature is a 403 and changes nothing. The revocation is committed before
the response is sent, so the gate denies from the moment the provider hears back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import SecretStr

from consentgate.api.auth import require
from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.core.signatures import verify_generic, verify_telnyx, verify_twilio
from consentgate.core.timefmt import iso_z
from consentgate.errors import BadRequest, Forbidden, NotFound
from consentgate.services.inbound import InboundSmsIn, Outcome, StoredResponse, handle_inbound
from consentgate.store.models import InboundMessage
from consentgate.webhooks.inbound import InboundSms, parse_generic, parse_telnyx, parse_twilio, twiml

bp = Blueprint("webhooks", __name__)


def _twiml(outcome: Outcome) -> tuple[int, str, str]:
    return 200, "text/xml", twiml(outcome.reply)


def _json(outcome: Outcome) -> tuple[int, str, str]:
    body = {"intent": outcome.intent, "reply": outcome.reply, "revocation_id": outcome.revocation_id,
            "consent_ids": outcome.consent_ids}
    return 200, "application/json", json.dumps(body)


def _process(sms: InboundSms, raw: str, render: Callable[[Outcome], tuple[int, str, str]]) -> Response:
    rt = runtime()
    item = InboundSmsIn(provider=sms.provider, message_id=sms.message_id, from_number=sms.from_number,
                        to_number=sms.to_number, text=sms.text, raw=raw, received_at=sms.received_at,
                        provider_opt_out=sms.provider_opt_out, from_field=sms.from_field)
    stored: StoredResponse = handle_inbound(rt.store, rt.policy, item, render, rt.clock(),
                                            rt.settings.public_url.rstrip("/"))
    if not stored.outcome.replayed:
        rt.metrics.inbound_sms.labels(provider=sms.provider, intent=stored.outcome.intent).inc()
        if stored.outcome.revoked:
            rt.metrics.revocations.labels(source="sms").inc()
    return Response(stored.body, status=stored.status, content_type=stored.content_type)


def _public_url_of_request() -> str:
    """The URL the provider signed: our public base URL, this path and the query string."""
    base = runtime().settings.public_url.rstrip("/")
    query = request.query_string.decode()
    return f"{base}{request.path}" + (f"?{query}" if query else "")


# A webhook without a matching signature is a 403; a signed one that is not an inbound message we
# can read is a 400 (not JSON) or 422 (a field missing or wrong).
_SIGNED: dict[int, Any] = {200: None, 400: None, 403: None, 422: None}


@bp.post("/v1/webhooks/sms/twilio")
@documented("Twilio inbound SMS (form-encoded, X-Twilio-Signature); answers TwiML", tags=["webhooks"],
            content_type="text/xml", auth=False, responses=_SIGNED)
def twilio() -> Response:
    rt = runtime()
    token = _secret(rt.settings.twilio_auth_token)
    signature = request.headers.get("X-Twilio-Signature", "")
    params = request.form.to_dict(flat=False)
    if not token or not signature or not verify_twilio(token, _public_url_of_request(), params, signature):
        raise Forbidden("the X-Twilio-Signature does not match this request")
    sms = parse_twilio(request.form.to_dict())
    return _process(sms, request.get_data(as_text=True), _twiml)


@bp.post("/v1/webhooks/sms/telnyx")
@documented("Telnyx message.received event (Ed25519 signature over timestamp|body)", tags=["webhooks"],
            auth=False, responses=_SIGNED)
def telnyx() -> Response:
    rt = runtime()
    key = rt.settings.telnyx_public_key
    raw = request.get_data(cache=True)
    signature = request.headers.get("telnyx-signature-ed25519", "")
    timestamp = request.headers.get("telnyx-timestamp", "")
    if not key or not verify_telnyx(key, signature, timestamp, raw, rt.clock()):
        raise Forbidden("the telnyx-signature-ed25519 does not match this request, or it is too old")
    event = _json_object(raw)
    event_type = (event.get("data") or {}).get("event_type") if isinstance(event.get("data"), dict) else None
    if event_type != "message.received":
        # Delivery receipts and other events carry no reply from a person: acknowledged, ignored.
        return jsonify({"ignored": True, "event_type": event_type})
    return _process(parse_telnyx(event), raw.decode("utf-8", "replace"), _json)


@bp.post("/v1/webhooks/sms/generic")
@documented("Generic signed inbound SMS {from, to, text, message_id, received_at?}", tags=["webhooks"],
            auth=False, responses=_SIGNED)
def generic() -> Response:
    rt = runtime()
    secret = _secret(rt.settings.webhook_secret)
    raw = request.get_data(cache=True)
    header = request.headers.get("X-Consentgate-Signature", "")
    if not secret or not verify_generic(secret, raw, header):
        raise Forbidden("the X-Consentgate-Signature does not match the body")
    return _process(parse_generic(_json_object(raw)), raw.decode("utf-8", "replace"), _json)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    return data


@bp.get("/v1/inbound-messages/<int:message_id>")
@require("writer", "auditor")
@documented("An inbound SMS as received: the raw payload and its sha256 (the evidence behind a revocation)",
            tags=["webhooks"])
def inbound_message(message_id: int) -> Response:
    with runtime().store.transaction(write=False) as session:
        row = session.get(InboundMessage, message_id)
        if row is None:
            raise NotFound(f"no inbound message {message_id}")
        return jsonify({
            "inbound_message_id": row.id, "provider": row.provider, "provider_message_id": row.provider_message_id,
            "from": row.from_number, "to": row.to_number, "text": row.text, "raw": row.raw,
            "raw_sha256": row.raw_sha256, "intent": row.intent, "received_at": iso_z(row.received_at),
            "reply": row.reply_text, "revocation_id": row.revocation_id, "erased": row.erased_at is not None,
        })
