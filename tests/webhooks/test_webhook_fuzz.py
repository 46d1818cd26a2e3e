"""Correctly signed but arbitrary inbound messages: never a server error, and a refused message
writes nothing.

A provider's retry of a message that got a 5xx, or one it cannot deliver at all, is an opt-out
that may be lost: whatever a signed webhook carries, the answer is the provider's format (200) or
a problem naming what is wrong (4xx) with nothing written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlmodel import func, select

from consentgate.store.models import InboundMessage, Revocation
from tests.conftest import TELNYX_SEED
from tests.webhooks.test_sms_webhooks import BASE, TWILIO_PATH, twilio_signature

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Numbers as providers send them, and what they should never send.
numbers = st.one_of(st.sampled_from(["+13055550133", "+447700900123", "+15005550006", "", "+1", "shortcode",
                                     "12345", "+13055550133\x00", "+" + "9" * 30]),
                    st.text(max_size=40))
# Keywords, their cousins, and anything at all.
FULLWIDTH_STOP = "\uff33\uff34\uff2f\uff30"
texts = st.one_of(st.sampled_from(["STOP", " stop! ", "Stop.", "START", "HELP", "UNSUBSCRIBE", "wrong number",
                                   "please stop texting me", "STOP\x00", "", "\u0000" * 3, FULLWIDTH_STOP,
                                   "s" * 5000]),
                  st.text(max_size=300))
ids = st.one_of(st.text(min_size=1, max_size=64), st.sampled_from(["SM1", "", "x" * 500]))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _counts(store: Any) -> tuple[int, int]:
    with store.transaction(write=False) as session:
        return (session.exec(select(func.count()).select_from(InboundMessage)).one(),
                session.exec(select(func.count()).select_from(Revocation)).one())


def _answered(answer: Any, store: Any, before: tuple[int, int], media: str) -> None:
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert answer.mimetype == "application/problem+json"
        assert _counts(store) == before
    else:
        assert answer.mimetype == media


@given(sender=numbers, body=texts, sid=ids, extra=st.dictionaries(st.sampled_from(
    ["OptOutType", "NumMedia", "MessagingServiceSid", "SmsStatus", "ToCountry"]), st.text(max_size=20), max_size=3))
@FUZZ
def test_twilio_signed_anything(client, store, clock, sender: str, body: str, sid: str,  # type: ignore[no-untyped-def]
                                extra: dict[str, str]) -> None:
    clock.set(NOW)
    params = {"MessageSid": sid, "AccountSid": "AC123", "From": sender, "To": "+18005550100", "Body": body, **extra}
    before = _counts(store)
    answer = client.post(TWILIO_PATH, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                         headers={"X-Twilio-Signature": twilio_signature("twilio-test-token", BASE + TWILIO_PATH,
                                                                         params)})
    _answered(answer, store, before, "text/xml")


@given(sender=numbers, body=texts, sid=ids, event_type=st.sampled_from(["message.received", "message.sent", ""]),
       noise=json_values, shape=st.sampled_from(["full", "bare", "odd"]))
@FUZZ
def test_telnyx_signed_anything(client, store, clock, sender: str, body: str, sid: str, event_type: str,  # type: ignore[no-untyped-def]
                                noise: Any, shape: str) -> None:
    clock.set(NOW)
    payload: Any = {"id": sid, "from": {"phone_number": sender}, "to": [{"phone_number": "+18005550100"}],
                    "text": body, "received_at": NOW.isoformat(), "extra": noise}
    if shape == "bare":
        payload = {"text": body}
    elif shape == "odd":
        payload = noise
    raw = json.dumps({"data": {"event_type": event_type, "id": sid, "payload": payload}}).encode()
    stamp = str(int(NOW.timestamp()))
    signature = base64.b64encode(SigningKey(TELNYX_SEED).sign(stamp.encode() + b"|" + raw).signature).decode()
    before = _counts(store)
    answer = client.post("/v1/webhooks/sms/telnyx", data=raw, content_type="application/json",
                         headers={"telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp})
    _answered(answer, store, before, "application/json")


@given(document=st.one_of(
    st.fixed_dictionaries({"from": numbers, "to": numbers, "text": texts, "message_id": ids},
                          optional={"received_at": st.one_of(st.text(max_size=30), st.just("2026-11-25T17:00:00Z"),
                                                             st.integers())}),
    json_values))
@FUZZ
def test_generic_signed_anything(client, store, clock, document: Any) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOW)
    raw = json.dumps(document).encode()
    signature = "sha256=" + hmac.new(b"generic-webhook-secret", raw, hashlib.sha256).hexdigest()
    before = _counts(store)
    answer = client.post("/v1/webhooks/sms/generic", data=raw, content_type="application/json",
                         headers={"X-Consentgate-Signature": signature})
    _answered(answer, store, before, "application/json")
