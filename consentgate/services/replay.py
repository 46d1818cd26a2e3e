"""Decision replay: re-run a logged decision on the ledger as it stood, under the policy it used.

Evidence for litigation that the gate decided from the data it had: the ledger is append-only,
so the state at the decision's instant is the rows recorded up to it (lifts made later undone,
the decision's own reservation left out), and every policy version served is stored.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from consentgate.core.addresses import Address
from consentgate.core.eligibility import decide
from consentgate.core.facts import EligibilityRequest, Subject
from consentgate.core.policy import LoadedPolicy
from consentgate.core.timefmt import iso_z
from consentgate.errors import Conflict, NotFound
from consentgate.services.eligibility import PLACED, placement
from consentgate.services.identities import contact_point_for_channel, find_by_address, survivor
from consentgate.services.policies import policy_at_version
from consentgate.store.driver import Driver
from consentgate.store.models import ContactPoint, DecisionRecord, Identity, MergeEvent, MergeMove
from consentgate.store.subjects import IdentityRow, Person, group_ids, load_subject


def replay_decision(session: Session, secret: str, decision_id: int,
                    current: LoadedPolicy | None = None) -> dict[str, Any]:
    """The decision re-run under its own policy version and, when given, under today's policy."""
    record = session.get(DecisionRecord, decision_id)
    if record is None:
        raise NotFound(f"no decision {decision_id}")
    policy = policy_at_version(session, record.policy_version, current)
    request = dict(record.request or {})
    at = _instant(request.get("at")) or record.decided_at
    address = request.get("address")
    if isinstance(address, dict) and address.get("erased"):
        raise Conflict(f"decision {decision_id} was about a person since erased: the address is gone")
    identity, target = None, None
    kind = policy.channels[record.channel].kind if record.channel in policy.channels else None
    if isinstance(address, dict) and address.get("value"):
        found = find_by_address(session, Address(address["kind"], address["value"]))
        # An address given to someone after the decision was nobody's when the gate decided.
        if found is not None and found[1].created_at <= record.decided_at:
            identity, target = found[0], found[1] if kind is not None else None
    elif request.get("identity_id"):
        identity = survivor(session, int(request["identity_id"]))
        if identity is not None and identity.erased_at is not None:
            raise Conflict(f"decision {decision_id} was about a person since erased: their addresses are gone")
        if identity is not None and kind is not None:
            target = contact_point_for_channel(session, identity, kind, as_of=record.decided_at)
    if identity is not None and (identity.created_at > record.decided_at):
        identity, target = None, None     # the person was not known yet when the gate decided
    placed = request.get(PLACED)
    group = group_ids(session, identity.id) if identity is not None and identity.id is not None else []
    later = _merges_since(session, group, record.decided_at)
    if identity is not None and later and record.identity_id is not None:
        subject = _before_merges(session, policy, secret, record, identity, group, kind, address, placed, at, later)
    else:
        seen: Any = _as_placed(identity, placed) if identity is not None and isinstance(placed, dict) else identity
        subject = load_subject(Driver.of(session.connection()), policy, secret, identity=seen, target=target,
                               at=at, as_of=record.decided_at, exclude_decision=record.id)
    question = EligibilityRequest(
        channel=record.channel, purpose=record.purpose, at=at, program=request.get("program"),
        segment=request.get("segment"), campaign=request.get("campaign"), brand=request.get("brand"),
        asked_at=record.decided_at)
    decision = decide(subject, question, policy)
    replayed_codes = sorted({str(r.code) for r in decision.reasons})
    original_codes = sorted(c for c in record.codes.split(",") if c)
    under_current = None
    if current is not None:
        today = decide(subject, question, current)
        today_codes = sorted({str(r.code) for r in today.reasons})
        under_current = {
            "policy_version": current.version,
            "policy_changed": record.policy_version not in (current.version, current.legacy_version),
            "allowed": today.allowed, "codes": today_codes,
            "same": today.allowed == record.allowed and today_codes == original_codes,
        }
    return {
        "decision_id": record.id,
        "merged_since": [{"survivor_id": m.survivor_id, "absorbed_id": m.absorbed_id,
                          "merged_at": iso_z(m.created_at)} for m in later],
        "decided_at": iso_z(record.decided_at),
        "policy_version": record.policy_version,
        "original": {"allowed": record.allowed, "codes": original_codes, "consent_id": record.consent_id},
        "replayed": {"allowed": decision.allowed, "codes": replayed_codes,
                     "consent_id": decision.consent.id if decision.consent else None,
                     "next_allowed_at": iso_z(decision.next_allowed_at),
                     "reasons": [{"code": str(r.code), "message": r.message} for r in decision.reasons]},
        "same": decision.allowed == record.allowed and replayed_codes == original_codes,
        "under_current_policy": under_current,
    }


def _as_placed(identity: Any, placed: dict[str, Any]) -> IdentityRow:
    """The person with the company and place logged with the decision (``eligibility.placement``),
    not today's: the identity keeps no history of them."""
    assert identity.id is not None
    return IdentityRow(identity.id, placed.get("account_domain"), placed.get("timezone"), placed.get("state"),
                       placed.get("country"), identity.is_test, None)


def _merges_since(session: Session, group: list[int], decided_at: datetime) -> list[MergeEvent]:
    """Merges of the person (``group``: as they are now) made after the decision."""
    if not group:
        return []
    return list(session.exec(select(MergeEvent).where(
        or_(col(MergeEvent.survivor_id).in_(group), col(MergeEvent.absorbed_id).in_(group)),
        MergeEvent.created_at > decided_at).order_by(col(MergeEvent.id))))


def _group_at(session: Session, root: int, instant: datetime) -> set[int]:
    """``root`` and everyone merged into them (directly or not) by ``instant``."""
    group, frontier = {root}, {root}
    while frontier:
        absorbed = set(session.exec(select(MergeEvent.absorbed_id).where(
            col(MergeEvent.survivor_id).in_(frontier), MergeEvent.created_at <= instant))) - group
        group |= absorbed
        frontier = absorbed
    return group


def _before_merges(session: Session, policy: LoadedPolicy, secret: str, record: DecisionRecord, now: Identity,
                   group_now: list[int], kind: str | None, address: Any, placed: Any, at: datetime,
                   later: list[MergeEvent]) -> Subject:
    """The facts about the person the decision was about, as they stood apart from the people
    merged with them since (``later``): each contact point and touch those merges moved counts as
    its earlier owner's (``merge_move``); ledger rows never move. Merges made before moves were
    recorded moved rows the replay then reads as the survivor's."""
    assert record.identity_id is not None and now.id is not None
    decided = record.decided_at
    then = _group_at(session, record.identity_id, decided)
    owner: dict[tuple[str, int], int] = {}
    moves = session.exec(select(MergeMove).join(MergeEvent, col(MergeEvent.id) == col(MergeMove.merge_event_id))
                         .where(col(MergeMove.merge_event_id).in_([m.id for m in later]))
                         .order_by(col(MergeEvent.created_at).desc(), col(MergeEvent.id).desc()))
    for move in moves:   # the latest first: the earliest merge after the decision says who had it then
        owner[(move.kind, move.row_id)] = move.from_identity_id
    addresses = [cp for cp in session.exec(
        select(ContactPoint).where(col(ContactPoint.identity_id).in_(group_now),
                                   col(ContactPoint.value).is_not(None), ContactPoint.created_at <= decided)
        .order_by(col(ContactPoint.id)))
        if owner.get(("contact_point", cp.id or 0), cp.identity_id) in then]
    target = None
    if kind is not None:   # the address named, else their first of the kind (as a check finds it)
        wanted = (address["kind"], address["value"]) if isinstance(address, dict) and address.get("value") else None
        target = next((cp for cp in addresses if ((cp.kind, cp.value) == wanted if wanted else cp.kind == kind)),
                      None)
    person = session.get(Identity, record.identity_id)
    assert person is not None
    identity = _as_placed(person, placed if isinstance(placed, dict) else placement(person))
    driver = Driver.of(session.connection())
    group = (identity.id, *sorted(then - {identity.id}))
    subject = load_subject(driver, policy, secret, identity=identity, target=target, at=at, as_of=decided,
                           exclude_decision=record.id, person=Person(identity, addresses, group))
    # Touches moved: read those of everyone merged with them now, and keep the ones theirs then.
    everyone = load_subject(driver, policy, secret, identity=now, target=target, at=at, as_of=decided,
                            exclude_decision=record.id)
    return replace(subject, touches=tuple(t for t in everyone.touches if owner.get(("touch", t.id), t.identity_id)
                                          in then))


def _instant(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
