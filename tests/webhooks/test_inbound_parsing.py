"""Provider payloads read into one ``InboundSms``; TwiML answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import pytest

from consentgate.errors import ValidationFailed
from consentgate.webhooks.inbound import (
    InboundSms,
    UnsupportedEvent,
    parse_generic,
    parse_telnyx,
    parse_twilio,
    twiml,
)

# --- Twilio -------------------------------------------------------------------------------------

TWILIO_FORM = {
    "ToCountry": "US", "SmsMessageSid": "SM5f0c", "NumMedia": "0", "SmsSid": "SM5f0c",
    "SmsStatus": "received", "Body": " Stop ", "To": "+18005550100", "NumSegments": "1",
    "MessageSid": "SM5f0c", "AccountSid": "AC123", "From": "+13055550133", "ApiVersion": "2010-04-01",
}


def field_of(error: ValidationFailed) -> str:
    [only] = error.errors
    return only.field


def test_twilio_form_becomes_an_inbound_sms() -> None:
    assert parse_twilio(TWILIO_FORM) == InboundSms(
        provider="twilio", message_id="SM5f0c", from_number="+13055550133", to_number="+18005550100",
        text=" Stop ", received_at=None, provider_opt_out=None, from_field="From")


def test_twilio_falls_back_to_sms_sid() -> None:
    form = {k: v for k, v in TWILIO_FORM.items() if k != "MessageSid"}
    assert parse_twilio(form).message_id == "SM5f0c"


@pytest.mark.parametrize("value, flag", [("STOP", "stop"), ("START", "start"), ("HELP", "help"),
                                         ("Stop", "stop"), ("", None), ("OTHER", None)])
def test_twilio_opt_out_type_is_lower_cased(value: str, flag: str | None) -> None:
    assert parse_twilio({**TWILIO_FORM, "OptOutType": value}).provider_opt_out == flag


def test_twilio_keeps_an_empty_body() -> None:
    """A picture-only MMS has an empty Body; it is still a message to record."""
    assert parse_twilio({**TWILIO_FORM, "Body": "", "NumMedia": "1"}).text == ""


@pytest.mark.parametrize("drop, field", [
    (("MessageSid", "SmsSid"), "MessageSid"),
    (("From",), "From"),
    (("To",), "To"),
    (("Body",), "Body"),
])
def test_twilio_names_the_missing_field(drop: tuple[str, ...], field: str) -> None:
    form = {k: v for k, v in TWILIO_FORM.items() if k not in drop}
    with pytest.raises(ValidationFailed) as exc:
        parse_twilio(form)
    assert field_of(exc.value) == field


def test_twilio_refuses_a_blank_sender() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_twilio({**TWILIO_FORM, "From": "   "})
    assert field_of(exc.value) == "From"


# --- Telnyx -------------------------------------------------------------------------------------

# The shape of a Telnyx API v2 message.received webhook, trimmed of fields we do not read.
TELNYX_EVENT: dict[str, Any] = {
    "data": {
        "event_type": "message.received",
        "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
        "occurred_at": "2026-11-25T17:00:01.000+00:00",
        "payload": {
            "id": "84cca175-9755-4859-b67f-4730d7f58aa3",
            "direction": "inbound",
            "type": "SMS",
            "from": {"carrier": "T-Mobile USA", "line_type": "long_code", "phone_number": "+13055550133"},
            "to": [{"carrier": "Telnyx", "line_type": "Wireless", "phone_number": "+18005550100",
                    "status": "webhook_delivered"}],
            "text": "UNSUBSCRIBE",
            "media": [],
            "received_at": "2026-11-25T12:00:00.123-05:00",
            "record_type": "message",
        },
        "record_type": "event",
    },
    "meta": {"attempt": 1, "delivered_to": "https://consentgate.example.com/v1/webhooks/sms/telnyx"},
}


def telnyx(**payload: Any) -> dict[str, Any]:
    event = copy.deepcopy(TELNYX_EVENT)
    event["data"]["payload"].update(payload)
    return event


def test_telnyx_event_becomes_an_inbound_sms() -> None:
    assert parse_telnyx(TELNYX_EVENT) == InboundSms(
        provider="telnyx", message_id="84cca175-9755-4859-b67f-4730d7f58aa3", from_number="+13055550133",
        to_number="+18005550100", text="UNSUBSCRIBE",
        received_at=datetime(2026, 11, 25, 17, 0, 0, 123000, tzinfo=UTC), provider_opt_out=None,
        from_field="data.payload.from.phone_number")


def test_telnyx_received_at_is_utc() -> None:
    assert parse_telnyx(TELNYX_EVENT).received_at.tzinfo is UTC  # type: ignore[union-attr]


def test_telnyx_falls_back_to_occurred_at() -> None:
    event = telnyx()
    del event["data"]["payload"]["received_at"]
    assert parse_telnyx(event).received_at == datetime(2026, 11, 25, 17, 0, 1, tzinfo=UTC)


def test_telnyx_without_any_time_leaves_it_to_the_service() -> None:
    event = telnyx()
    del event["data"]["payload"]["received_at"], event["data"]["occurred_at"]
    assert parse_telnyx(event).received_at is None


@pytest.mark.parametrize("value, flag", [("STOP", "stop"), ("START", "start"), ("HELP", "help"),
                                         (None, None), ("custom", None)])
def test_telnyx_autoresponse_type_is_lower_cased(value: str | None, flag: str | None) -> None:
    assert parse_telnyx(telnyx(autoresponse_type=value)).provider_opt_out == flag


def test_telnyx_reads_a_null_text_as_empty() -> None:
    """Telnyx sends ``"text": null`` for an MMS with pictures only."""
    assert parse_telnyx(telnyx(text=None, type="MMS")).text == ""


@pytest.mark.parametrize("event_type", ["message.finalized", "message.sent", None])
def test_telnyx_other_events_are_unsupported(event_type: str | None) -> None:
    event = telnyx()
    event["data"]["event_type"] = event_type
    with pytest.raises(UnsupportedEvent) as exc:
        parse_telnyx(event)
    assert exc.value.event_type == event_type
    assert field_of(exc.value) == "data.event_type"
    assert isinstance(exc.value, ValidationFailed)


@pytest.mark.parametrize("change, field", [
    (lambda e: e.pop("data"), "data"),
    (lambda e: e["data"].pop("payload"), "data.payload"),
    (lambda e: e["data"]["payload"].pop("id"), "data.payload.id"),
    (lambda e: e["data"]["payload"].update(id=42), "data.payload.id"),
    (lambda e: e["data"]["payload"].update(id="x" * 201), "data.payload.id"),
    (lambda e: e["data"]["payload"].update({"from": "+13055550133"}), "data.payload.from"),
    (lambda e: e["data"]["payload"]["from"].pop("phone_number"), "data.payload.from.phone_number"),
    (lambda e: e["data"]["payload"].update(to=[]), "data.payload.to"),
    (lambda e: e["data"]["payload"].update(to={"phone_number": "+18005550100"}), "data.payload.to"),
    (lambda e: e["data"]["payload"].update(to=["+18005550100"]), "data.payload.to.0"),
    (lambda e: e["data"]["payload"]["to"][0].update(phone_number=""), "data.payload.to.0.phone_number"),
    (lambda e: e["data"]["payload"].pop("text"), "data.payload.text"),
    (lambda e: e["data"]["payload"].update(text=["STOP"]), "data.payload.text"),
    (lambda e: e["data"]["payload"].update(received_at="yesterday"), "data.payload.received_at"),
    (lambda e: e["data"]["payload"].update(received_at="2026-11-25T17:00:00"), "data.payload.received_at"),
    (lambda e: e["data"]["payload"].update(received_at=1795712400), "data.payload.received_at"),
    (lambda e: e["data"]["payload"].update(autoresponse_type=1), "data.payload.autoresponse_type"),
])
def test_telnyx_names_the_bad_field(change: Any, field: str) -> None:
    event = telnyx()
    change(event)
    with pytest.raises(ValidationFailed) as exc:
        parse_telnyx(event)
    assert field_of(exc.value) == field


# --- Generic ------------------------------------------------------------------------------------

GENERIC = {"from": "+13055550133", "to": "+18005550100", "text": "quit", "message_id": "g-1"}


def test_generic_body_becomes_an_inbound_sms() -> None:
    assert parse_generic(GENERIC) == InboundSms(
        provider="generic", message_id="g-1", from_number="+13055550133", to_number="+18005550100",
        text="quit", received_at=None, provider_opt_out=None)


@pytest.mark.parametrize("value, expected", [
    ("2026-11-25T17:00:00Z", datetime(2026, 11, 25, 17, 0, tzinfo=UTC)),
    ("2026-11-25T12:00:00.5-05:00", datetime(2026, 11, 25, 17, 0, 0, 500000, tzinfo=UTC)),
    (None, None),
])
def test_generic_reads_received_at_as_rfc_3339(value: str | None, expected: datetime | None) -> None:
    assert parse_generic({**GENERIC, "received_at": value}).received_at == expected


@pytest.mark.parametrize("body, field", [
    ({k: v for k, v in GENERIC.items() if k != "from"}, "from"),
    ({**GENERIC, "to": None}, "to"),
    ({**GENERIC, "text": 5}, "text"),
    ({**GENERIC, "message_id": ""}, "message_id"),
    ({**GENERIC, "message_id": 17}, "message_id"),
    ({**GENERIC, "from": "+1" * 20}, "from"),
    ({**GENERIC, "received_at": "2026-11-25"}, "received_at"),
    ({**GENERIC, "received_at": "25/11/2026 17:00"}, "received_at"),
    ({**GENERIC, "received_at": "0001-01-01T00:00:00+14:00"}, "received_at"),   # before year 1 in UTC
])
def test_generic_names_the_bad_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_generic(body)
    assert field_of(exc.value) == field


# --- TwiML --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [None, ""])
def test_twiml_without_a_reply_is_an_empty_response(reply: str | None) -> None:
    assert twiml(reply) == '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def test_twiml_wraps_the_reply_in_one_message() -> None:
    assert twiml("You are unsubscribed.") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>You are unsubscribed.</Message></Response>')


def test_twiml_escapes_the_reply() -> None:
    reply = 'Acme & Co <news>: reply "START" to resubscribe\x07'
    document = twiml(reply)
    assert "&amp; Co &lt;news&gt;" in document
    [message] = ElementTree.fromstring(document.encode()).findall("Message")
    assert message.text == reply.removesuffix("\x07")  # a bell is not allowed in XML 1.0


def test_twiml_keeps_non_ascii_text() -> None:
    [message] = ElementTree.fromstring(twiml("Baja confirmada. Envía START ✔").encode()).findall("Message")
    assert message.text == "Baja confirmada. Envía START ✔"
