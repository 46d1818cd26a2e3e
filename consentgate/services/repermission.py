"""Closing the re-permission window: people who did not answer are not asked again.

A contact with only ``uncertain`` consent may get one ``repermission`` touch. When the policy's
window has passed without a new consent event from them on that channel, they are suppressed
for everything but transactional messages, with a revocation that names the touch it follows.
Someone whose consent on the channel was already of another kind (sent the request in passing)
loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from consentgate.core.consent import current_consents, is_expired
from consentgate.core.policy import LoadedPolicy
from consentgate.services.identities import identity_group
from consentgate.services.revocations import REPERMISSION_CLOSED, write_revocation
from consentgate.services.schemas import RevocationIn
from consentgate.store.db import Store
from consentgate.store.facts import consent_fact
from consentgate.store.models import ConsentEvent, Identity, Revocation, Touch


def close_repermission_windows(store: Store, policy: LoadedPolicy, now: datetime) -> int:
    """Suppress the people who did not answer a re-permission request within the policy's window.

    The touches to close are found in one statement: those whose window has ended, that no
    revocation of this job has closed, and after which the person (or anyone merged into them)
    gave no consent on the channel. Asked touch by touch, with every request ever sent asked again
    each hour, the job grew with the square of the history (28 s an hour with 2,000 closed
    requests on record), all of it holding SQLite's write lock.
    """
    spec = policy.policy.repermission
    purposes = [p for p in policy.policy.purposes if p != "transactional"]
    closed = 0
    with store.transaction() as session:
        due = session.execute(_unanswered(), {"purpose": spec.purpose, "ended": now - spec.window,
                                              "reason": REPERMISSION_CLOSED}).all()
        for touch_id, identity_id, channel in due:
            person = session.get(Identity, identity_id)
            if person is None or person.erased_at is not None or _consented(session, identity_id, channel, now):
                continue
            revocation = write_revocation(
                session, RevocationIn(identity_id=identity_id, channels=[channel], purposes=purposes,
                                      source="manual", reason=REPERMISSION_CLOSED), policy, None, now, identity=person)
            revocation.attributed_touch_id = touch_id
            session.add(revocation)
            closed += 1
    return closed


def _consented(session: Session, identity_id: int, channel: str, now: datetime) -> bool:
    """Whether consent of some other kind than ``uncertain`` is in force on the channel: someone
    who had it already was sent the request in passing, and not answering it takes nothing away."""
    events = session.exec(select_rows(ConsentEvent).where(
        col(ConsentEvent.identity_id).in_(identity_group(session, identity_id)), ConsentEvent.channel == channel)).all()
    return any(c.consent_type != "uncertain" and not is_expired(c, now)
               for c in current_consents(consent_fact(e) for e in events).values())


def _unanswered() -> Any:
    touch, revocation = Touch.__table__, Revocation.__table__  # type: ignore[attr-defined]
    consent, identity = ConsentEvent.__table__, Identity.__table__  # type: ignore[attr-defined]
    already = select(revocation.c.id).where(revocation.c.attributed_touch_id == touch.c.id,
                                            revocation.c.reason == bindparam("reason"))
    an_answer = (consent.c.channel == touch.c.channel, consent.c.recorded_at > touch.c.at,
                 consent.c.consent_type != "uncertain")
    # Two look-ups, each down an index: as one "id = x OR merged_into_id = x" PostgreSQL read
    # the whole identity table for every touch.
    answered = select(consent.c.id).where(consent.c.identity_id == touch.c.identity_id, *an_answer)
    answered_merged = (select(consent.c.id).join(identity, identity.c.id == consent.c.identity_id)
                       .where(identity.c.merged_into_id == touch.c.identity_id, *an_answer))
    return (select(touch.c.id, touch.c.identity_id, touch.c.channel)
            .where(touch.c.purpose == bindparam("purpose"), touch.c.state == "sent", touch.c.at <= bindparam("ended"),
                   ~exists(already.correlate(touch)), ~exists(answered.correlate(touch)),
                   ~exists(answered_merged.correlate(touch)))
            .order_by(touch.c.id))
