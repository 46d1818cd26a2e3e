"""The auditor reports as generators of plain rows, read through server-side cursors.

``yield_per`` makes SQLAlchemy stream results (a named cursor on PostgreSQL), so memory stays
flat however many rows a report has. Test records (``consentgate qa``) are left out of every
report; erased values are null with ``erased: true``, never the old values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, String, and_, func, select, type_coerce
from sqlmodel import Session, col

from consentgate.core.business_days import business_days_between
from consentgate.core.policy import LoadedPolicy
from consentgate.reports.pgcopy import csv_by_copy
from consentgate.reports.streaming import csv_tuples
from consentgate.services.identities import survivor
from consentgate.services.propagation import sla_status
from consentgate.services.revocations import REPERMISSION_CLOSED
from consentgate.store.models import (
    ConsentEvent,
    ContactPoint,
    DecisionRecord,
    Identity,
    OutboxMessage,
    Revocation,
    Suppression,
    Touch,
)

BATCH = 1000

CONSENT_COLUMNS = ["consent_id", "identity_id", "address_kind", "address", "erased", "channel", "purpose",
                   "consent_type", "captured_at", "recorded_at", "source", "proof_uri", "proof_sha256", "brand",
                   "consent_text", "ip", "user_agent", "expires_at", "api_key_id"]
REVOCATION_COLUMNS = ["revocation_id", "identity_id", "address_kind", "address", "erased", "scope", "account_domain",
                      "channels", "purposes", "brands", "source", "raw_text", "received_at", "effective_at",
                      "propagated_at", "deadline_at", "sla_status", "latency_business_days", "downstream"]
DECISION_COLUMNS = ["decision_id", "decided_at", "identity_id", "channel", "purpose", "program", "segment",
                    "campaign", "brand", "at", "allowed", "codes", "reasons", "consent_id", "next_allowed_at",
                    "reservation_id", "policy_version"]
OPTOUT_COLUMNS = ["group", "group_by", "touches", "optouts", "complaints", "optout_rate", "complaint_rate"]


# Any select statement: a window keeps its columns.
S = TypeVar("S", bound=Select)


def _real_people() -> Any:
    """Rows of real people only: no identity (unknown address) or one that is not a test record."""
    return Identity.is_test == False  # noqa: E712


def _window(statement: S, column: Any, since: datetime | None, until: datetime | None) -> S:
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column <= until)
    return statement


def _stream(session: Session, statement: Select[Any]) -> Iterator[Any]:
    yield from session.execute(statement.execution_options(yield_per=BATCH))


_INSTANTS = ("captured_at", "recorded_at", "expires_at")


def _iso_text(column: Any, dialect: str) -> Any:
    """An instant as RFC 3339 UTC text, formatted in SQL (no Python datetime per cell), spelled as
    every other report and the API spell it (``iso_z``): no fraction when it is zero."""
    text: Any
    if dialect == "postgresql":
        text = func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    else:
        # SQLite keeps naive UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'.
        text = func.replace(type_coerce(column, String), " ", "T").concat("Z")
    return func.replace(text, ".000000Z", "Z")


def _survivor_id(identity_id: Any) -> Any:
    """A row's person as they are now: the one they were merged into, if they were (the statement
    joins ``Identity`` on ``identity_id``)."""
    return func.coalesce(Identity.merged_into_id, identity_id)


def consents(session: Session, **filters: Any) -> Iterator[dict[str, Any]]:
    for row in _stream(session, _consent_statement(session, **filters)):
        yield row._asdict()


def consents_csv(session: Session, **filters: Any) -> Iterator[str]:
    """The consent report as CSV text; PostgreSQL writes the lines itself (COPY) for large exports."""
    statement = _consent_statement(session, **filters)
    if session.get_bind().dialect.name == "postgresql":
        return csv_by_copy(session, CONSENT_COLUMNS, statement)
    return csv_tuples(CONSENT_COLUMNS, _stream(session, statement))


def _consent_statement(session: Session, *, since: datetime | None = None, until: datetime | None = None,
                       channel: str | None = None, purpose: str | None = None, brand: str | None = None,
                       source: str | None = None) -> Select[Any]:
    # Plain columns, not ORM objects, and instants formatted by the database: the export runs at
    # the speed of the cursor.
    table = ConsentEvent.__table__.c  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    columns = {"consent_id": table.id, "identity_id": _survivor_id(table.identity_id),
               "address_kind": ContactPoint.kind, "address": ContactPoint.value,
               "erased": table.erased_at.is_not(None)}
    fields = [(_iso_text(table[name], dialect) if name in _INSTANTS else columns.get(name, table.get(name))).label(name)
              for name in CONSENT_COLUMNS]
    statement = (select(*fields)
                 # Outer: a consent to a channel without an address (postal) names no contact point.
                 .outerjoin(ContactPoint, ContactPoint.id == table.contact_point_id)  # type: ignore[arg-type]
                 .join(Identity, Identity.id == table.identity_id)  # type: ignore[arg-type]
                 .where(_real_people()).order_by(table.id))
    statement = _window(statement, table.recorded_at, since, until)
    for name, value in (("channel", channel), ("purpose", purpose), ("brand", brand), ("source", source)):
        if value is not None:
            statement = statement.where(table[name] == value)
    return statement


def revocations(session: Session, policy: LoadedPolicy, now: datetime, *, since: datetime | None = None,
                until: datetime | None = None, sla: str | None = None) -> Iterator[dict[str, Any]]:
    statement = (select(Revocation, col(ContactPoint.kind), col(ContactPoint.value),
                        _survivor_id(Revocation.identity_id).label("survivor_id"))
                 .outerjoin(ContactPoint, col(ContactPoint.id) == Revocation.contact_point_id)
                 .outerjoin(Identity, col(Identity.id) == Revocation.identity_id)
                 .where(_real_people()).order_by(col(Revocation.id)))
    statement = _window(statement, Revocation.received_at, since, until)
    calendar = policy.policy.revocation.calendar
    result = session.execute(statement.execution_options(yield_per=BATCH))
    for partition in result.partitions():
        ids = [row[0].id for row in partition]
        downstream: dict[int, list[OutboxMessage]] = {}
        for message in session.scalars(select(OutboxMessage).where(col(OutboxMessage.revocation_id).in_(ids))
                                       .order_by(col(OutboxMessage.subscription_id))):
            downstream.setdefault(message.revocation_id, []).append(message)
        for revocation, kind, value, survivor_id in partition:
            messages = downstream.get(revocation.id, [])
            status, propagated = sla_status(revocation, messages, policy, now)
            if sla is not None and status != sla:
                continue
            done_at = propagated or revocation.effective_at
            yield {
                "revocation_id": revocation.id, "identity_id": survivor_id, "address_kind": kind,
                "address": value, "erased": revocation.erased_at is not None, "scope": revocation.scope,
                "account_domain": revocation.account_domain, "channels": revocation.channels,
                "purposes": revocation.purposes, "brands": revocation.brands, "source": revocation.source,
                "raw_text": revocation.raw_text, "received_at": revocation.received_at,
                "effective_at": revocation.effective_at, "propagated_at": propagated,
                "deadline_at": revocation.deadline_at, "sla_status": status,
                "latency_business_days": business_days_between(
                    revocation.received_at, done_at, country=calendar.country, timezone=calendar.timezone)
                if propagated is not None else None,
                "downstream": [{"subscription_id": m.subscription_id, "status": m.status, "attempts": m.attempts,
                                "acknowledged_at": m.acknowledged_at} for m in messages],
            }


def decisions(session: Session, *, since: datetime | None = None, until: datetime | None = None,
              allowed: bool | None = None, code: str | None = None) -> Iterator[dict[str, Any]]:
    statement = (select(DecisionRecord, _survivor_id(DecisionRecord.identity_id))
                 .outerjoin(Identity, col(Identity.id) == DecisionRecord.identity_id)
                 .where(col(DecisionRecord.is_test).is_(False)).order_by(col(DecisionRecord.id)))
    statement = _window(statement, DecisionRecord.decided_at, since, until)
    if allowed is not None:
        statement = statement.where(col(DecisionRecord.allowed) == allowed)
    if code is not None:
        statement = statement.where(col(DecisionRecord.codes).contains(code))
    for record, survivor_id in _stream(session, statement):
        request = record.request or {}
        codes = [c for c in record.codes.split(",") if c]
        if code is not None and code not in codes:
            continue
        yield {"decision_id": record.id, "decided_at": record.decided_at, "identity_id": survivor_id,
               "channel": record.channel, "purpose": record.purpose, "program": request.get("program"),
               "segment": request.get("segment"), "campaign": request.get("campaign"),
               "brand": request.get("brand"), "at": request.get("at"), "allowed": record.allowed,
               "codes": codes, "reasons": record.reasons, "consent_id": record.consent_id,
               "next_allowed_at": record.next_allowed_at, "reservation_id": record.reservation_id,
               "policy_version": record.policy_version}


GroupBy = Literal["campaign", "segment", "channel"]


def optouts(session: Session, group_by: GroupBy, *, since: datetime | None = None,
            until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Touches, opt-outs and complaints per group; each attributed to the person's last touch before it."""
    group = getattr(Touch, group_by)
    real = and_(col(Touch.identity_id) == Identity.id, _real_people())
    touched = _window(select(group, func.count()).join(Identity, real).where(col(Touch.state) == "sent")
                      .group_by(group), Touch.at, since, until)
    touches = {key: n for key, n in session.execute(touched)}
    # A re-permission request closed for want of an answer is not the person opting out.
    opted = _window(select(group, func.count()).select_from(Revocation)
                    .join(Touch, col(Touch.id) == Revocation.attributed_touch_id)
                    .join(Identity, real).where(col(Revocation.reason).is_distinct_from(REPERMISSION_CLOSED))
                    .group_by(group), Revocation.received_at, since, until)
    opt_outs = {key: n for key, n in session.execute(opted)}
    complaints: Counter[Any] = Counter()
    complained = _window(select(Suppression).join(Identity, col(Identity.id) == Suppression.identity_id)
                         .where(col(Suppression.kind) == "complaint", _real_people()),
                         Suppression.created_at, since, until)
    for (suppression,) in session.execute(complained):
        # A merge moves the person's touches to the survivor; the chained suppression keeps its id.
        owner = survivor(session, suppression.identity_id)
        last = session.execute(select(group).where(
            col(Touch.identity_id) == (owner.id if owner else suppression.identity_id), col(Touch.channel) == "email",
            col(Touch.state) == "sent", col(Touch.at) <= suppression.created_at,
        ).order_by(col(Touch.at).desc()).limit(1)).first()
        if last is not None:
            complaints[last[0]] += 1
    for key in sorted(set(touches) | set(opt_outs) | set(complaints), key=lambda k: (k is None, str(k))):
        sent = touches.get(key, 0)
        yield {"group": key, "group_by": group_by, "touches": sent, "optouts": opt_outs.get(key, 0),
               "complaints": complaints.get(key, 0),
               "optout_rate": round(opt_outs.get(key, 0) / sent, 6) if sent else None,
               "complaint_rate": round(complaints.get(key, 0) / sent, 6) if sent else None}
