"""Inbound SMS end to end: signatures, dedupe, keywords, free text, START, HELP, confirmation once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from nacl.signing import SigningKey

from consentgate.store.models import ConsentEvent, InboundMessage, Revocation, Suppression

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONE = "+13055550133"
TWILIO_PATH = "/v1/webhooks/sms/twilio"
BASE = "https://consentgate.example.com"


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    # Written from Twilio's description: the URL, then each name and value in name order.
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def twilio(client, body: str, sid: str, phone: str = PHONE, **extra: str):  # type: ignore[no-untyped-def]
    params = {"MessageSid": sid, "AccountSid": "AC123", "From": phone, "To": "+18005550100", "Body": body, **extra}
    signature = twilio_signature("twilio-test-token", BASE + TWILIO_PATH, params)
    return client.post(TWILIO_PATH, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": signature})


@pytest.fixture(autouse=True)
def _consented(client, keys, clock):  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    for purpose in ("marketing", "informational"):
        client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": purpose,
                                          "consent_type": "express_written", "source": "web_form",
                                          "captured_at": (NOON_ET - timedelta(days=9)).isoformat(),
                                          "proof_uri": "https://proof.example.com/sms"}, headers=keys["writer"])


def allowed(client, keys, channel="sms", purpose="marketing") -> bool:  # type: ignore[no-untyped-def]
    return client.post("/v1/eligibility", json={"phone": PHONE, "channel": channel, "purpose": purpose},
                       headers=keys["sender"]).get_json()["allowed"]


def test_stop_revokes_before_the_answer_and_confirms_once(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    assert allowed(client, keys)
    first = twilio(client, "Stop", "SM1")
    assert first.status_code == 200 and first.mimetype == "text/xml"
    assert "<Message>" in first.get_data(as_text=True)
    assert runtime.policy.policy.sms.confirmation_text.split(".")[0] in first.get_data(as_text=True)
    assert not allowed(client, keys) and not allowed(client, keys, "voice")
    [revocation] = rows(Revocation)
    assert revocation.source == "sms_keyword" and revocation.raw_text == "Stop"
    [message] = rows(InboundMessage)
    assert message.raw_sha256 == hashlib.sha256(message.raw.encode()).hexdigest()
    # The provider retries the same message: same answer, nothing written.
    retry = twilio(client, "Stop", "SM1")
    assert retry.get_data() == first.get_data()
    assert len(rows(InboundMessage)) == 1 and len(rows(Revocation)) == 1
    # A second STOP is recorded but not confirmed again.
    second = twilio(client, "STOP", "SM2")
    assert "<Message>" not in second.get_data(as_text=True)
    assert len(rows(Revocation)) == 1


def test_bad_signature_changes_nothing(client, rows) -> None:  # type: ignore[no-untyped-def]
    params = {"MessageSid": "SM9", "From": PHONE, "To": "+18005550100", "Body": "STOP"}
    bad = client.post(TWILIO_PATH, data=params, headers={"X-Twilio-Signature": "bm9wZQ=="})
    assert bad.status_code == 403 and bad.mimetype == "application/problem+json"
    assert client.post(TWILIO_PATH, data=params).status_code == 403
    assert rows(InboundMessage) == [] and rows(Revocation) == []


@pytest.mark.parametrize("text, source", [
    ("please stop texting me", "sms_free_text"),
    ("Remove me from your list!!", "sms_free_text"),
    ("STIP", "sms_keyword"),
    ("no más", "sms_free_text"),
])
def test_reasonable_means_revoke(client, keys, rows, text, source) -> None:  # type: ignore[no-untyped-def]
    twilio(client, text, "SM-free")
    [revocation] = rows(Revocation)
    assert revocation.raw_text == text
    assert not allowed(client, keys)


def test_wrong_number_also_marks_reassigned(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    twilio(client, "wrong number", "SM-wrong")
    assert [s.kind for s in rows(Suppression)] == ["reassigned"]
    assert not allowed(client, keys, purpose="informational")


def test_start_from_a_reassigned_number_brings_back_nobodys_consent(client, keys, rows, clock) -> None:  # type: ignore[no-untyped-def]
    # The number's new owner says "wrong number", later texts START (as the confirmation invites):
    # the previous owner's consent was never theirs and stays void.
    twilio(client, "Wrong number", "SM-w1")
    clock.set(NOON_ET + timedelta(days=2))
    twilio(client, "START", "SM-w2")
    assert not allowed(client, keys) and not allowed(client, keys, purpose="informational")
    assert [c for c in rows(ConsentEvent) if c.source == "sms_keyword"] == []


def test_an_opt_out_from_a_number_that_cannot_be_read_is_refused_not_dropped(client, rows) -> None:  # type: ignore[no-untyped-def]
    # Acknowledged, the provider would never send it again, and nobody would be revoked.
    answer = twilio(client, "STOP", "SM-unread", phone="12345")
    assert answer.status_code == 422 and answer.get_json()["errors"][0]["field"] == "From"
    assert rows(InboundMessage) == [] and rows(Revocation) == []
    # Anything else from it has nothing to act on and is recorded as it came.
    assert twilio(client, "hello", "SM-unread-2", phone="12345").status_code == 200


def test_an_international_number_without_its_plus_is_read_as_one(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    uk = "+447911123456"
    client.post("/v1/consents", json={"phone": uk, "channel": "sms", "purpose": "informational",
                                      "consent_type": "express", "source": "web_form",
                                      "captured_at": (NOON_ET - timedelta(days=9)).isoformat()}, headers=keys["writer"])
    twilio(client, "STOP", "SM-uk", phone=uk.lstrip("+"))
    assert len(rows(Revocation)) == 1
    assert client.post("/v1/eligibility", json={"phone": uk, "channel": "sms", "purpose": "informational"},
                       headers=keys["sender"]).get_json()["allowed"] is False


def test_a_very_long_opt_out_is_recorded_whole_on_its_message(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    text = "Please stop texting me. " + "I never asked for any of this. " * 700
    assert twilio(client, text, "SM-long").status_code == 200
    [revocation] = rows(Revocation)
    [message] = rows(InboundMessage)
    assert message.text == text and text.startswith(revocation.raw_text or "-")
    assert not allowed(client, keys)


def test_start_restores_exactly_what_stop_took(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    twilio(client, "STOP", "SM-a")
    assert not allowed(client, keys)
    answer = twilio(client, "START", "SM-b")
    assert answer.status_code == 200
    assert runtime.policy.policy.sms.opt_in_text.split(".")[0] in answer.get_data(as_text=True)
    assert allowed(client, keys) and allowed(client, keys, purpose="informational")
    # Confirmed once: a second START has nothing to lift and gets an empty answer.
    again = twilio(client, "START", "SM-c").get_data(as_text=True)
    assert "<Message" not in again
    restored = [c for c in rows(ConsentEvent) if c.source == "sms_keyword"]
    assert sorted(c.purpose for c in restored) == ["informational", "marketing"]
    assert all(c.inbound_message_id is not None for c in restored)
    # Voice was never consented to: START does not invent it.
    assert not allowed(client, keys, "voice")


def test_a_lift_is_chained_and_one_made_behind_the_gate_is_named(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    """START lifting an opt-out is a chained record of its own; lifting one in the database
    directly, or changing a recorded lift, breaks verification at that row."""
    from sqlalchemy import text

    def verify() -> dict:  # type: ignore[type-arg]
        return client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()  # type: ignore[no-any-return]

    def sql(statement: str) -> None:
        with runtime.store.engine.begin() as conn:
            conn.execute(text(statement))

    twilio(client, "STOP", "SM-l1")
    twilio(client, "START", "SM-l2")
    [lifted] = rows(Revocation)
    assert lifted.lifted_at is not None and verify()["ok"] is True
    with runtime.store.engine.connect() as conn:
        kinds = [k for (k,) in conn.execute(text("SELECT table_name FROM chain_entry ORDER BY seq"))]
    assert kinds.count("revocation_lift") == 1 and kinds.index("revocation_lift") > kinds.index("revocation")
    sql(f"UPDATE revocation SET lifted_by_message_id = NULL WHERE id = {lifted.id}")
    broken = verify()["first_broken"]
    assert (broken["table"], broken["row_id"], broken["problem"]) == (
        "revocation_lift", lifted.id, "the row's content no longer matches its hash")

    twilio(client, "STOP", "SM-l3")
    assert not allowed(client, keys)
    [again] = [r for r in rows(Revocation) if r.lifted_at is None]
    sql(f"UPDATE revocation SET lifted_by_message_id = {lifted.lifted_by_message_id} WHERE id = {lifted.id}")
    assert verify()["ok"] is True
    sql(f"UPDATE revocation SET lifted_at = CURRENT_TIMESTAMP WHERE id = {again.id}")
    broken = verify()["first_broken"]
    assert (broken["table"], broken["row_id"], broken["problem"]) == (
        "revocation", again.id, "the opt-out was lifted without a chained record of it")


def test_help_replies_without_changing_anything(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    answer = twilio(client, "HELP", "SM-h").get_data(as_text=True)
    assert runtime.policy.policy.sms.help_text.split(".")[0] in answer
    assert rows(Revocation) == [] and allowed(client, keys)


def test_twilio_opt_out_type_is_honoured(client, keys) -> None:  # type: ignore[no-untyped-def]
    twilio(client, "arrêtez svp", "SM-o", OptOutType="STOP")
    assert not allowed(client, keys)


def test_a_keyword_the_provider_answered_gets_no_second_reply(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    """With Twilio's Advanced Opt-Out the person already has Twilio's answer to STOP, START and
    HELP: the gate acts on the keyword and answers an empty TwiML. A free-text opt-out Twilio
    only flagged as HELP still gets the gate's own confirmation."""
    def said(body: str, sid: str, flag: str) -> str:
        return twilio(client, body, sid, OptOutType=flag).get_data(as_text=True)

    assert "<Message" not in said("STOP", "SM-p1", "STOP")
    assert not allowed(client, keys) and len(rows(Revocation)) == 1
    assert "<Message" not in said("START", "SM-p2", "START")
    assert allowed(client, keys)
    assert "<Message" not in said("HELP", "SM-p3", "HELP")
    assert runtime.policy.policy.sms.confirmation_text.split(".")[0] in said("please stop texting me", "SM-p4", "HELP")
    assert not allowed(client, keys)


def test_the_revocation_metric_counts_opt_outs_only(client, keys) -> None:  # type: ignore[no-untyped-def]
    def counted() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next((x for x in text.splitlines() if x.startswith('consentgate_revocations_total{source="sms"}')), "")
        return float(line.split()[-1]) if line else 0.0

    before = counted()
    twilio(client, "STOP", "SM-m1")
    twilio(client, "START", "SM-m2")        # replies, and names the lifted revocation
    assert counted() == before + 1
    twilio(client, "STOP", "SM-m3", OptOutType="STOP")   # a new opt-out, answered by Twilio
    assert counted() == before + 2


def test_ordinary_replies_do_not_revoke(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    twilio(client, "What time is my appointment?", "SM-q")
    assert rows(Revocation) == [] and allowed(client, keys)


def test_telnyx(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    signing = SigningKey(bytes(range(32)))    # the key pair the test runtime trusts
    event = {"data": {"event_type": "message.received", "id": "evt-1", "occurred_at": NOON_ET.isoformat(),
                      "payload": {"id": "tx-msg-1", "from": {"phone_number": PHONE},
                                  "to": [{"phone_number": "+18005550100"}], "text": "unsubscribe",
                                  "received_at": NOON_ET.isoformat()}}}
    raw = json.dumps(event).encode()
    stamp = str(int(NOON_ET.timestamp()))
    signature = base64.b64encode(signing.sign(stamp.encode() + b"|" + raw).signature).decode()
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp}
    answer = client.post("/v1/webhooks/sms/telnyx", data=raw, content_type="application/json", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert not allowed(client, keys)
    tampered = client.post("/v1/webhooks/sms/telnyx", data=raw.replace(b"unsubscribe", b"hello"),
                           content_type="application/json", headers=headers)
    assert tampered.status_code == 403
    old = str(int(NOON_ET.timestamp()) - 600)
    stale = {"telnyx-signature-ed25519": base64.b64encode(signing.sign(old.encode() + b"|" + raw).signature).decode(),
             "telnyx-timestamp": old}
    assert client.post("/v1/webhooks/sms/telnyx", data=raw, content_type="application/json",
                       headers=stale).status_code == 403
    assert len(rows(InboundMessage)) == 1


def test_generic(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps({"from": PHONE, "to": "+18005550100", "text": "quit", "message_id": "g-1"}).encode()
    signature = "sha256=" + hmac.new(b"generic-webhook-secret", raw, hashlib.sha256).hexdigest()
    answer = client.post("/v1/webhooks/sms/generic", data=raw, content_type="application/json",
                         headers={"X-Consentgate-Signature": signature})
    assert answer.status_code == 200 and answer.get_json()["intent"] == "opt_out"
    assert not allowed(client, keys)
    forged = client.post("/v1/webhooks/sms/generic", data=raw, content_type="application/json",
                         headers={"X-Consentgate-Signature": "sha256=" + "0" * 64})
    assert forged.status_code == 403
    assert len(rows(InboundMessage)) == 1


def test_a_stop_carrying_nul_is_recorded_and_honoured(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL text cannot hold NUL: the message is stored with U+FFFD in its place, never refused.
    assert allowed(client, keys)
    answer = twilio(client, "STOP\x00", "SM-nul")
    assert answer.status_code == 200
    assert not allowed(client, keys)
    [revocation] = rows(Revocation)
    assert revocation.raw_text == "STOP\ufffd"
    [message] = rows(InboundMessage)
    assert "\x00" not in message.raw and message.text == "STOP\ufffd"


def test_a_provider_start_flag_on_words_the_policy_does_not_read_as_opt_in_lifts_nothing(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    # Found by sending random sequences of texts: a HELP that Twilio flagged START (its opt-in
    # keywords can be configured apart from the policy's) undid the person's STOP.
    twilio(client, "STOP", "SM-flag-1")
    assert twilio(client, "HELP", "SM-flag-2", OptOutType="START").status_code == 200
    assert not allowed(client, keys)
    assert len(rows(Revocation)) == 1 and rows(Revocation)[0].lifted_at is None
    twilio(client, "START", "SM-flag-3", OptOutType="START")   # the policy's own word does
    assert allowed(client, keys)


def test_a_stop_from_a_number_carrying_nul_is_recorded_and_honoured(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    # Found by signing arbitrary messages: on PostgreSQL the number was stored as sent, and the
    # provider got a 500 for a STOP.
    answer = twilio(client, "STOP", "SM-nul-from", phone=PHONE + "\x00")
    assert answer.status_code == 200
    assert not allowed(client, keys)
    [message] = rows(InboundMessage)
    assert message.from_number == PHONE     # as the store spells it; the provider's spelling is in raw


def test_erasure_blanks_every_sms_the_person_sent(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    """STOP and START are linked to what they caused; HELP and words the gate did not act on are
    found by the person's number. Someone else's texts stay."""
    for sid, body in (("SM71", "HELP"), ("SM72", "who is this?"), ("SM73", "STOP"), ("SM74", "START")):
        assert twilio(client, body, sid).status_code == 200
    # A gateway that spells the number its own way: still the person's.
    assert twilio(client, "Who is this? Ivy here", "SM76", phone="(305) 555-0133").status_code == 200
    assert twilio(client, "HELP", "SM75", phone="+13055550134").status_code == 200
    assert any(c.inbound_message_id for c in rows(ConsentEvent))   # START consented again
    found = client.get("/v1/identities", query_string={"phone": PHONE}, headers=keys["writer"]).get_json()
    assert client.delete(f"/v1/identities/{found['identity_id']}", headers=keys["admin"]).status_code == 200
    messages = {m.provider_message_id: m for m in rows(InboundMessage)}
    for sid in ("SM71", "SM72", "SM73", "SM74", "SM76"):
        gone = messages[sid]
        assert (gone.from_number, gone.to_number, gone.text, gone.raw) == (None, None, None, None), sid
        assert gone.erased_at is not None and gone.raw_sha256   # the evidence that it existed stays
    kept = messages["SM75"]
    assert kept.from_number == "+13055550134" and kept.text == "HELP" and kept.erased_at is None
