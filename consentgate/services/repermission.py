"""Closing the re-permission window: people who did not answer are not asked again.

A contact with only ``uncertain`` consent may get one ``repermission`` touch. When the policy's
window has passed without a new consent event from them on that channel, they are suppressed
for everything but transactional messages, with a revocation that names the touch it follows.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from consentgate.core.policy import LoadedPolicy
from consentgate.services.identities import identity_group
from consentgate.services.revocations import write_revocation
from consentgate.services.schemas import RevocationIn
from consentgate.store.db import Store
from consentgate.store.models import ConsentEvent, Identity, Revocation, Touch

REASON = "no answer to the re-permission request within the policy's window"


def close_repermission_windows(store: Store, policy: LoadedPolicy, now: datetime) -> int:
    spec = policy.policy.repermission
    closed = 0
    with store.transaction() as session:
        touches = session.exec(select(Touch).where(
            Touch.purpose == spec.purpose, Touch.state == "sent", Touch.at <= now - spec.window)).all()
        for touch in touches:
            if session.exec(select(Revocation.id).where(Revocation.attributed_touch_id == touch.id,
                                                        Revocation.reason == REASON)).first() is not None:
                continue
            ids = identity_group(session, touch.identity_id)
            answered = session.exec(select(ConsentEvent.id).where(
                col(ConsentEvent.identity_id).in_(ids), ConsentEvent.channel == touch.channel,
                ConsentEvent.recorded_at > touch.at, ConsentEvent.consent_type != "uncertain")).first()
            person = session.get(Identity, touch.identity_id)
            if answered is not None or person is None or person.erased_at is not None:
                continue
            purposes = [p for p in policy.policy.purposes if p != "transactional"]
            revocation = write_revocation(
                session, RevocationIn(identity_id=touch.identity_id, channels=[touch.channel], purposes=purposes,
                                      source="manual", reason=REASON), policy, None, now, identity=person)
            revocation.attributed_touch_id = touch.id
            session.add(revocation)
            closed += 1
    return closed
