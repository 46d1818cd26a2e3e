"""Inbound SMS payloads of each provider, read into one plain ``InboundSms``; TwiML answers.

Pure: a form or a decoded JSON object in, a dataclass out. Numbers and text are kept as the
provider sent them (trimmed only); normalising the number and classifying the text is the
service's job. A missing or malformed field raises ``ValidationFailed`` naming the field as the
provider spells it (``From``, ``data.payload.from.phone_number``, ``received_at``), so the 422
tells the integrator exactly what to fix.

Telnyx posts every event of a messaging profile to the same URL. An event other than
``message.received`` (delivery receipts, ``message.sent``…) raises ``UnsupportedEvent``, a
``ValidationFailed`` (422 if it escapes) that carries the event type: the view checks the type
first and answers those with 200 ``{"ignored": true}``, because a non-2xx would make Telnyx retry
an event that will never be processed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from consentgate.errors import FieldError, ValidationFailed

TELNYX_MESSAGE_RECEIVED = "message.received"
# The provider flags a reply as one of the carrier keywords it handled itself; anything else is
# not a flag we understand, and the text is classified on its own.
_PROVIDER_OPT_OUTS = frozenset({"stop", "start", "help"})
_MAX_ID_LENGTH = 200  # inbound_message.provider_message_id
_MAX_NUMBER_LENGTH = 32  # inbound_message.from_number / to_number
# XML 1.0 forbids these even escaped; one in a reply would make the whole TwiML unreadable.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True)
class InboundSms:
    """One inbound SMS, whatever provider brought it."""

    provider: str
    message_id: str
    from_number: str
    to_number: str
    text: str
    received_at: datetime | None
    provider_opt_out: str | None
    from_field: str = "from"   # the sender's field as the provider names it


class UnsupportedEvent(ValidationFailed):
    """A provider event that is not an inbound message; ``event_type`` says what it was."""

    def __init__(self, field: str, event_type: object) -> None:
        super().__init__(FieldError(field, f"expected {TELNYX_MESSAGE_RECEIVED!r}, got {event_type!r}"))
        self.event_type = event_type


def parse_twilio(form: Mapping[str, str]) -> InboundSms:
    """Twilio's inbound form (``MessageSid`` or ``SmsSid``, ``From``, ``To``, ``Body``, ``OptOutType``)."""
    sid_field = "MessageSid" if form.get("MessageSid") else "SmsSid"
    return InboundSms(
        provider="twilio",
        message_id=_identifier(form.get(sid_field), "MessageSid"),
        from_number=_number(form.get("From"), "From"),
        to_number=_number(form.get("To"), "To"),
        text=_text(form.get("Body"), "Body"),
        received_at=None,  # Twilio sends no timestamp; the service uses the time of arrival
        provider_opt_out=_opt_out(form.get("OptOutType"), "OptOutType"),
        from_field="From",
    )


def parse_telnyx(event: Mapping[str, Any]) -> InboundSms:
    """A Telnyx v2 ``message.received`` event (``{"data": {"event_type", "payload": {…}}}``)."""
    data = _object(event.get("data"), "data")
    event_type = data.get("event_type")
    if event_type != TELNYX_MESSAGE_RECEIVED:
        raise UnsupportedEvent("data.event_type", event_type)
    payload = _object(data.get("payload"), "data.payload")
    sender = _object(payload.get("from"), "data.payload.from")
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise ValidationFailed.field("data.payload.to", "must be a non-empty list of recipients")
    recipient = _object(recipients[0], "data.payload.to.0")
    text = payload.get("text")
    # An MMS with pictures only comes with "text": null; it is still a reply to record.
    return InboundSms(
        provider="telnyx",
        message_id=_identifier(payload.get("id"), "data.payload.id"),
        from_number=_number(sender.get("phone_number"), "data.payload.from.phone_number"),
        to_number=_number(recipient.get("phone_number"), "data.payload.to.0.phone_number"),
        text="" if text is None and "text" in payload else _text(text, "data.payload.text"),
        received_at=_first_instant(
            (payload.get("received_at"), "data.payload.received_at"),
            (data.get("occurred_at"), "data.occurred_at"),
        ),
        provider_opt_out=_opt_out(payload.get("autoresponse_type"), "data.payload.autoresponse_type"),
        from_field="data.payload.from.phone_number",
    )


def parse_generic(body: Mapping[str, Any]) -> InboundSms:
    """The generic webhook's JSON: ``{from, to, text, message_id, received_at?}``."""
    return InboundSms(
        provider="generic",
        message_id=_identifier(body.get("message_id"), "message_id"),
        from_number=_number(body.get("from"), "from"),
        to_number=_number(body.get("to"), "to"),
        text=_text(body.get("text"), "text"),
        received_at=_first_instant((body.get("received_at"), "received_at")),
        provider_opt_out=None,
    )


def twiml(reply: str | None) -> str:
    """The TwiML answer to Twilio: an empty ``<Response/>`` or one ``<Message>`` with ``reply``."""
    if not reply:
        return _EMPTY_TWIML
    text = escape(_NOT_XML_CHARS.sub("", reply))
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed.field(field, "is missing or not an object")
    return value


def _identifier(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.field(field, "is required (the provider's message id)")
    if len(value.strip()) > _MAX_ID_LENGTH:
        raise ValidationFailed.field(field, f"is longer than {_MAX_ID_LENGTH} characters")
    return value.strip()


def _number(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.field(field, "is required (a phone number)")
    if len(value.strip()) > _MAX_NUMBER_LENGTH:
        raise ValidationFailed.field(field, f"is longer than {_MAX_NUMBER_LENGTH} characters")
    return value.strip()


def _text(value: object, field: str) -> str:
    # Not stripped: the raw text is evidence, and the classifier does its own normalising.
    if not isinstance(value, str):
        raise ValidationFailed.field(field, "is required (the message text, may be empty)")
    return value


def _opt_out(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed.field(field, "must be a string")
    flag = value.strip().lower()
    return flag if flag in _PROVIDER_OPT_OUTS else None


def _first_instant(*candidates: tuple[object, str]) -> datetime | None:
    """The first present candidate as an aware UTC datetime; a present but invalid one is an error."""
    for value, field in candidates:
        if value is None:
            continue
        return _instant(value, field)
    return None


def _instant(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationFailed.field(field, "must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed.field(field, f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        # RFC 3339 requires an offset; guessing one would misplace the revocation in time.
        raise ValidationFailed.field(field, "needs a UTC offset (e.g. 'Z' or '+00:00')")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed.field(field, f"{value!r} is out of range") from None
