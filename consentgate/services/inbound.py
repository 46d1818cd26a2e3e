"""Inbound SMS: dedupe, classify, record, act — in one transaction, before the webhook answers.

The provider's message id is unique in the store (a constraint, not a look-up), so a retried
delivery finds the first delivery's row and answers with the response stored on it, writing
nothing. The raw message and its sha256 stay with the revocation or consent it caused, as the
evidence of what the person actually wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consentgate.core.addresses import Address, normalise_phone
from consentgate.core.consent import current_consents
from consentgate.core.keywords import Classification, Intent, classify
from consentgate.core.policy import LoadedPolicy, matches
from consentgate.errors import ValidationFailed
from consentgate.services.consents import write_consent
from consentgate.services.identities import ensure_contact_point
from consentgate.services.revocations import write_revocation, write_suppression
from consentgate.services.schemas import RAW_TEXT_MAX, ConsentIn, RevocationIn, SuppressionIn
from consentgate.store import chain
from consentgate.store.db import Store
from consentgate.store.facts import consent_fact
from consentgate.store.models import ConsentEvent, ContactPoint, Identity, InboundMessage, Revocation, Suppression

SMS_SOURCES = ("sms_keyword", "sms_free_text")
_PROVIDER_INTENTS = {"stop": Intent.OPT_OUT, "start": Intent.OPT_IN, "help": Intent.HELP}


@dataclass(frozen=True)
class InboundSmsIn:
    provider: str
    message_id: str
    from_number: str
    to_number: str
    text: str
    raw: str
    received_at: datetime | None = None
    provider_opt_out: str | None = None
    from_field: str = "from"   # the sender's field as the provider names it, for a 422


@dataclass
class Outcome:
    intent: str
    reply: str | None = None
    revocation_id: int | None = None
    consent_ids: list[int] = field(default_factory=list)
    replayed: bool = False
    revoked: bool = False   # this message wrote a new revocation


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: str
    outcome: Outcome


Render = Callable[[Outcome], tuple[int, str, str]]


def classify_message(sms: InboundSmsIn, policy: LoadedPolicy) -> Classification:
    """The policy's classification, overridden by the provider's own STOP or HELP flag.

    Fail closed both ways: words the policy reads as an opt-out stay one whatever the provider
    flagged, and a provider's START flag on words the policy does not read as an opt-in lifts
    nothing (the provider's keyword lists can differ from the policy's; the policy decides what
    undoes an opt-out)."""
    found = classify(sms.text, policy.keyword_rules)
    forced = _flagged(sms)
    if forced is not None and forced != Intent.OPT_IN and not found.is_opt_out and found.intent != forced:
        return Classification(forced, found.normalised, f"provider:{sms.provider_opt_out}")
    return found


def handle_inbound(store: Store, policy: LoadedPolicy, sms: InboundSmsIn, render: Render,
                   now: datetime, proof_base: str) -> StoredResponse:
    """Record and act on one inbound SMS; a replayed message id answers as the first time."""
    sms = replace(sms, message_id=_storable(sms.message_id), from_number=_storable(sms.from_number),
                  to_number=_storable(sms.to_number), text=_storable(sms.text), raw=_storable(sms.raw))
    try:
        with store.transaction() as session:
            return _handle(session, policy, sms, render, now, proof_base)
    except IntegrityError:
        with store.transaction(write=False) as session:
            stored = _existing(session, sms)
            if stored is None:
                raise
            return stored


def _storable(text: str) -> str:
    """``text`` with NUL, which PostgreSQL text cannot hold (and requests may not carry), shown as
    U+FFFD: a message from a phone, a STOP among them, is recorded whatever it carries."""
    return text.replace("\x00", "\ufffd")


def _existing(session: Session, sms: InboundSmsIn) -> StoredResponse | None:
    row = session.exec(select(InboundMessage).where(
        InboundMessage.provider == sms.provider, InboundMessage.provider_message_id == sms.message_id)).first()
    if row is None:
        return None
    outcome = Outcome(intent=row.intent, reply=row.reply_text, revocation_id=row.revocation_id, replayed=True)
    return StoredResponse(row.response_status, row.response_content_type, row.response_body, outcome)


def _handle(session: Session, policy: LoadedPolicy, sms: InboundSmsIn, render: Render, now: datetime,
            proof_base: str) -> StoredResponse:
    stored = _existing(session, sms)
    if stored is not None:
        return stored
    classification = classify_message(sms, policy)
    received_at = min(sms.received_at or now, now)
    address = _sender(sms, policy)
    message = InboundMessage(
        # The number as the store spells it (E.164), so that an erasure finds every message the
        # person sent; the provider's own spelling stays in ``raw``.
        provider=sms.provider, provider_message_id=sms.message_id,
        from_number=address.value if address is not None else sms.from_number,
        to_number=sms.to_number, text=sms.text, raw=sms.raw, raw_sha256=hashlib.sha256(sms.raw.encode()).hexdigest(),
        intent=str(classification.intent), received_at=received_at, created_at=now,
    )
    session.add(message)
    session.flush()   # the unique (provider, message id) constraint decides a race here
    outcome = Outcome(intent=str(classification.intent))
    if address is None and (classification.is_opt_out or classification.intent == Intent.OPT_IN):
        # Acknowledged, the provider would not send it again and nobody would have been revoked:
        # refused, so that it shows in the provider's error log and can be seen to.
        raise ValidationFailed.field(sms.from_field, f"{sms.from_number!r} cannot be read as a phone number, so "
                                     f"this {classification.intent} could not be recorded against anyone")
    if address is not None:
        identity, cp, _ = ensure_contact_point(session, address, policy, now)
        assert message.id is not None
        if classification.is_opt_out:
            _opt_out(session, policy, classification, sms, identity, cp, message, received_at, now, outcome)
        elif classification.intent == Intent.OPT_IN:
            _opt_in(session, policy, cp, message, now, outcome, proof_base)
    if classification.intent == Intent.HELP:
        outcome.reply = policy.policy.sms.help_text
    if _provider_answered(sms, classification):
        # The provider sent its own auto-response to this keyword (Twilio's Advanced Opt-Out,
        # Telnyx's auto-responses); a reply of ours as well would reach the person twice.
        outcome.reply = None
    status, content_type, body = render(outcome)
    message.response_status, message.response_content_type, message.response_body = status, content_type, body
    message.reply_text, message.revocation_id = outcome.reply, outcome.revocation_id
    session.add(message)
    return StoredResponse(status, content_type, body, outcome)


def _flagged(sms: InboundSmsIn) -> Intent | None:
    """The carrier keyword the provider says it handled itself, if any."""
    return _PROVIDER_INTENTS.get((sms.provider_opt_out or "").strip().lower())


def _provider_answered(sms: InboundSmsIn, classification: Classification) -> bool:
    flagged = _flagged(sms)
    if flagged == Intent.OPT_OUT:
        return classification.is_opt_out
    return flagged is not None and flagged == classification.intent


def _sender(sms: InboundSmsIn, policy: LoadedPolicy) -> Address | None:
    """The person's number, or None for a sender we cannot read as one (a short code). Gateways
    often send international numbers in E.164 without the "+": read that way when nothing else fits."""
    spellings = [sms.from_number]
    digits = sms.from_number.strip()
    if digits.isdigit() and len(digits) > 10:
        spellings.append("+" + digits)
    for spelling in spellings:
        try:
            return Address("phone", normalise_phone(spelling, default_region=policy.policy.identity.default_region))
        except ValidationFailed:
            continue
    return None


def _opt_out(session: Session, policy: LoadedPolicy, classification: Classification, sms: InboundSmsIn,
             identity: Identity, cp: ContactPoint, message: InboundMessage, received_at: datetime, now: datetime,
             outcome: Outcome) -> None:
    scope = policy.policy.sms.opt_out_scope
    active = _active_sms_revocation(session, cp)
    if active is None:
        source = "sms_keyword" if classification.intent == Intent.OPT_OUT else "sms_free_text"
        item = RevocationIn(phone=cp.value, channels=list(scope.channels), purposes=list(scope.purposes),
                            brands=list(scope.brands), source=source,
                            # Cut where a revocation's text ends; the message row keeps it whole.
                            raw_text=sms.text[:RAW_TEXT_MAX],
                            reason=f"matched {classification.matched!r}" if classification.matched else None,
                            received_at=received_at)
        revocation = write_revocation(session, item, policy, None, now, inbound_message_id=message.id,
                                      contact_point=cp, identity=identity)
        # One confirmation per revocation, with no marketing in it (47 CFR 64.1200(a)(12)).
        revocation.confirmation_sent_at = now
        session.add(revocation)
        outcome.reply = policy.policy.sms.confirmation_text
        outcome.revoked = True
        active = revocation
    outcome.revocation_id = active.id
    if classification.intent == Intent.WRONG_NUMBER:
        write_suppression(session, SuppressionIn(phone=cp.value, kind="reassigned", since=received_at,
                                                 note="the recipient replied that this is a wrong number"),
                          policy, None, now, source="sms_free_text")


def _active_sms_revocation(session: Session, cp: ContactPoint) -> Revocation | None:
    return session.exec(select(Revocation).where(
        Revocation.contact_point_id == cp.id, col(Revocation.source).in_(SMS_SOURCES),
        col(Revocation.lifted_at).is_(None)).order_by(col(Revocation.id).desc())).first()


def _reassigned_since(session: Session, policy: LoadedPolicy, cp: ContactPoint) -> datetime | None:
    """The latest date from which the number is known to be someone else's (a suppression that
    voids earlier consent, e.g. ``reassigned`` after a "wrong number" reply), if any is in force."""
    kinds = [kind for kind, rule in policy.policy.suppressions.items() if rule.voids_consent_before_since]
    return session.exec(select(func.max(Suppression.since)).where(
        Suppression.contact_point_id == cp.id, col(Suppression.kind).in_(kinds),
        col(Suppression.lifted_at).is_(None))).one()


def _opt_in(session: Session, policy: LoadedPolicy, cp: ContactPoint, message: InboundMessage, now: datetime,
            outcome: Outcome, proof_base: str) -> None:
    """START undoes exactly what this number's SMS opt-outs took away, and nothing more."""
    lifted = list(session.exec(select(Revocation).where(
        Revocation.contact_point_id == cp.id, col(Revocation.source).in_(SMS_SOURCES),
        col(Revocation.lifted_at).is_(None))))
    if not lifted:
        return
    first_received = min(r.received_at for r in lifted)
    before = session.exec(select(ConsentEvent).where(
        ConsentEvent.contact_point_id == cp.id, ConsentEvent.recorded_at <= first_received)).all()
    reassigned = _reassigned_since(session, policy, cp)
    restored = [c for c in current_consents(consent_fact(e) for e in before).values()
                if any(matches(r.channels, c.channel) and matches(r.purposes, c.purpose) for r in lifted)
                and (c.expires_at is None or c.expires_at > now)
                # Given before the number changed hands, it was someone else's: START from the
                # number's new owner cannot bring it back.
                and (reassigned is None or c.captured_at >= reassigned)]
    for revocation in lifted:
        revocation.lifted_at, revocation.lifted_by_message_id = now, message.id
        session.add(revocation)
    session.flush()
    chain.append_amendments(session, chain.LIFT, lifted, now)
    for consent in restored:
        event = write_consent(session, ConsentIn(
            phone=cp.value, channel=consent.channel, purpose=consent.purpose, consent_type=consent.consent_type,
            captured_at=message.received_at, source="sms_keyword",
            proof_uri=f"{proof_base}/v1/inbound-messages/{message.id}", brand=consent.brand,
            consent_text=message.text, expires_at=consent.expires_at,
        ), policy, None, now, inbound_message_id=message.id)
        outcome.consent_ids.append(event.id or 0)
    outcome.revocation_id = lifted[-1].id
    # Once per lift: a second START finds nothing lifted and stays silent, as a second STOP does.
    outcome.reply = policy.policy.sms.opt_in_text
