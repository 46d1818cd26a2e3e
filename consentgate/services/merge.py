"""Merging duplicate people into one survivor.

The oldest identity survives. Contact points and touches move to it (``merge_move`` keeps who
had them, for replays of earlier decisions); ledger rows (consents, revocations, suppressions)
stay where they were written, because the tamper-evident chain covers them, and are read
through the survivor's identity group instead. Consent therefore never widens (it stays on its
contact point and channel) and no revocation is ever dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, literal, select, update
from sqlmodel import Session

from consentgate.errors import Conflict, NotFound
from consentgate.services.identities import survivor
from consentgate.services.keys import Actor
from consentgate.store import chain
from consentgate.store.models import ContactPoint, Identity, MergeEvent, MergeMove, Touch

_ATTRIBUTES = ("timezone", "state", "country", "name", "status_at_last_touch", "last_touch_channel",
               "last_touch_at", "account_domain")


_CONTACT_POINT = ContactPoint.__table__  # type: ignore[attr-defined]
_TOUCH = Touch.__table__  # type: ignore[attr-defined]


def oldest(identities: Iterable[Identity]) -> Identity:
    return min(identities, key=lambda i: (i.created_at, i.id or 0))


def merge_into(session: Session, keep: Identity, absorbed: Identity, reason: str, actor: Actor | None,
               now: datetime) -> MergeEvent | None:
    """Fold ``absorbed`` into ``keep`` in the caller's transaction (a no-op for the same person)."""
    if keep.id == absorbed.id:
        return None
    if keep.erased_at is not None or absorbed.erased_at is not None:
        raise Conflict("an erased identity cannot be merged")
    assert keep.id is not None and absorbed.id is not None
    for name in _ATTRIBUTES:
        if getattr(keep, name) is None and getattr(absorbed, name) is not None:
            setattr(keep, name, getattr(absorbed, name))
    if keep.external_id is None and absorbed.external_id is not None:
        external_id, absorbed.external_id = absorbed.external_id, None
        session.add(absorbed)
        session.flush()
        keep.external_id = external_id
    absorbed.merged_into_id = keep.id
    absorbed.merged_at = now
    absorbed.updated_at = now
    keep.updated_at = now
    session.add_all([keep, absorbed])
    event = MergeEvent(survivor_id=keep.id, absorbed_id=absorbed.id, reason=reason, created_at=now,
                       api_key_id=actor.key_id if actor else None)
    session.add(event)
    session.flush()
    session.execute(update(Identity).where(Identity.merged_into_id == absorbed.id)  # type: ignore[arg-type]
                    .values(merged_into_id=keep.id))
    for table, kind in ((_CONTACT_POINT, "contact_point"), (_TOUCH, "touch")):
        # Who had each row until now, for replays of decisions made before this merge.
        session.execute(insert(MergeMove).from_select(
            ["merge_event_id", "kind", "row_id", "from_identity_id"],
            select(literal(event.id), literal(kind), table.c.id, table.c.identity_id)
            .where(table.c.identity_id == absorbed.id)))
        session.execute(update(table).where(table.c.identity_id == absorbed.id).values(identity_id=keep.id))
    chain.append(session, "merge_event", [event], now)
    return event


def merge_all(session: Session, people: Iterable[Identity], reason: str, actor: Actor | None,
              now: datetime) -> tuple[Identity, list[int]]:
    """Merge several people into the oldest; returns the survivor and the absorbed ids."""
    distinct = {p.id: p for p in people}
    keep = oldest(distinct.values())
    absorbed = []
    for person in sorted(distinct.values(), key=lambda i: (i.created_at, i.id or 0)):
        if merge_into(session, keep, person, reason, actor, now) is not None:
            absorbed.append(person.id or 0)
    return keep, absorbed


def manual_merge(session: Session, identity_id: int, other_id: int, actor: Actor | None,
                 now: datetime) -> tuple[Identity, list[int]]:
    first, second = survivor(session, identity_id), survivor(session, other_id)
    if first is None:
        raise NotFound(f"no identity {identity_id}")
    if second is None:
        raise NotFound(f"no identity {other_id}")
    return merge_all(session, [first, second], "manual", actor, now)
