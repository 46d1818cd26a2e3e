"""The tables of consentgate.

Ledger tables (consent_event, revocation, suppression, merge_event, erasure_event) are
append-only: a row is never updated in place except for the columns named as mutable
(lifting a revocation, blanking personal values on erasure). Each ledger row is linked into
the tamper-evident chain (``chain_entry``) in the transaction that writes it.

Personal values (addresses, names, raw texts, IPs, user agents) are what an erasure blanks;
the chain covers salted digests of them (``pii_salt``/``pii_digest``), never the values.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from consentgate.store.types import JSONType, UTCDateTime

# Row ids are PostgreSQL ``integer``s: no row has a larger one, and a larger one in a query is
# an error there (SQLite fails above 2**63 - 1), so requests naming one are refused up front.
MAX_ID = 2**31 - 1
# The chain scheme ledger rows are written with (``chain._PERSONAL_FROM``).
CHAIN_SCHEME = 2


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=nullable))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class Identity(SQLModel, table=True):
    __tablename__ = "identity"
    # Both hold merged-away people only. By id: a batch checks whether any of its 10,000 people
    # was merged by probing this small index instead of reading each person's row again. By
    # survivor: who was merged into someone; new people, almost all unmerged, are not written
    # into it (an import creates them by the hundred thousand).
    __table_args__ = (Index("ix_identity_merged", "id", postgresql_where=text("merged_into_id IS NOT NULL"),
                            sqlite_where=text("merged_into_id IS NOT NULL")),
                      Index("ix_identity_merged_into", "merged_into_id",
                            postgresql_where=text("merged_into_id IS NOT NULL"),
                            sqlite_where=text("merged_into_id IS NOT NULL")))

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, max_length=200, unique=True)
    account_domain: str | None = Field(default=None, max_length=253)
    timezone: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=8)
    country: str | None = Field(default=None, max_length=2)
    name: str | None = Field(default=None, max_length=300)
    status_at_last_touch: str | None = Field(default=None, max_length=100)
    last_touch_channel: str | None = Field(default=None, max_length=32)
    last_touch_at: datetime | None = _ts(nullable=True)
    merged_into_id: int | None = Field(default=None, foreign_key="identity.id")
    merged_at: datetime | None = _ts(nullable=True)
    is_test: bool = Field(default=False)
    erased_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ContactPoint(SQLModel, table=True):
    __tablename__ = "contact_point"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_point_kind_value"),)

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int = Field(foreign_key="identity.id", index=True)
    kind: str = Field(max_length=8)
    # NULL once erased: the unique constraint then no longer holds the address.
    value: str | None = Field(default=None, max_length=320)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = _ts()
    erased_at: datetime | None = _ts(nullable=True)


class ConsentEvent(SQLModel, table=True):
    __tablename__ = "consent_event"
    __table_args__ = (
        Index("ix_consent_event_cp_channel", "contact_point_id", "channel", "purpose"),
        Index("ix_consent_event_recorded", "recorded_at"),
        # The hourly expiry report reads the consents that have an end, not the whole ledger.
        Index("ix_consent_event_expires", "expires_at", postgresql_where=text("expires_at IS NOT NULL"),
              sqlite_where=text("expires_at IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int = Field(foreign_key="identity.id", index=True)
    # None for a channel that reaches the person rather than an address (``address: none``).
    contact_point_id: int | None = Field(default=None, foreign_key="contact_point.id")
    channel: str = Field(max_length=32)
    purpose: str = Field(max_length=32)
    consent_type: str = Field(max_length=32)
    captured_at: datetime = _ts()
    recorded_at: datetime = _ts()
    source: str = Field(max_length=100)
    proof_uri: str | None = Field(default=None, max_length=2000)
    proof_sha256: str | None = Field(default=None, max_length=64)
    brand: str | None = Field(default=None, max_length=100)
    consent_text: str | None = Field(default=None)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1000)
    expires_at: datetime | None = _ts(nullable=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    inbound_message_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    pii_salt: str | None = Field(default=None, max_length=64)
    pii_digest: str = Field(default="", max_length=64)
    erased_at: datetime | None = _ts(nullable=True)


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    scope: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status: int
    response: Any = _json()
    created_at: datetime = _ts(index=True)   # kept for ``KEY_RETENTION``, then purged


class Revocation(SQLModel, table=True):
    __tablename__ = "revocation"
    # The re-permission job asks, for each of its touches, whether it has closed it already.
    __table_args__ = (Index("ix_revocation_attributed_touch", "attributed_touch_id",
                            postgresql_where=text("attributed_touch_id IS NOT NULL"),
                            sqlite_where=text("attributed_touch_id IS NOT NULL")),)

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int | None = Field(default=None, foreign_key="identity.id", index=True)
    contact_point_id: int | None = Field(default=None, foreign_key="contact_point.id")
    scope: str = Field(default="identity", max_length=16)
    account_domain: str | None = Field(default=None, max_length=253, index=True)
    channels: Any = _json()
    purposes: Any = _json()
    brands: Any = _json()
    source: str = Field(max_length=32)
    reason: str | None = Field(default=None)
    raw_text: str | None = Field(default=None)
    inbound_message_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    received_at: datetime = _ts(index=True)
    effective_at: datetime = _ts()
    deadline_at: datetime = _ts()
    lifted_at: datetime | None = _ts(nullable=True)
    lifted_by_message_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    confirmation_sent_at: datetime | None = _ts(nullable=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    attributed_touch_id: int | None = Field(default=None, foreign_key="touch.id")
    # How the row is chained (``chain.scheme_of``): rows written before the column existed are 1.
    chain_scheme: int = Field(default=CHAIN_SCHEME, sa_column_kwargs={"server_default": text("1")})
    pii_salt: str | None = Field(default=None, max_length=64)
    pii_digest: str = Field(default="", max_length=64)
    erased_at: datetime | None = _ts(nullable=True)


class Suppression(SQLModel, table=True):
    __tablename__ = "suppression"
    __table_args__ = (Index("ix_suppression_cp_kind", "contact_point_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int | None = Field(default=None, foreign_key="identity.id", index=True)
    contact_point_id: int | None = Field(default=None, foreign_key="contact_point.id")
    kind: str = Field(max_length=16)
    since: datetime | None = _ts(nullable=True)
    note: str | None = Field(default=None)
    source: str = Field(default="api", max_length=32)
    created_at: datetime = _ts()
    lifted_at: datetime | None = _ts(nullable=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    pii_salt: str | None = Field(default=None, max_length=64)
    pii_digest: str = Field(default="", max_length=64)
    erased_at: datetime | None = _ts(nullable=True)


class DncNumber(SQLModel, table=True):
    """The National DNC Registry as loaded: one row per number, without an identity."""

    __tablename__ = "dnc_number"

    phone: str = Field(primary_key=True, max_length=16)
    snapshot_date: date
    added_at: datetime = _ts()
    removed_at: datetime | None = _ts(nullable=True)


class MergeEvent(SQLModel, table=True):
    __tablename__ = "merge_event"

    id: int | None = Field(default=None, primary_key=True)
    survivor_id: int = Field(foreign_key="identity.id", index=True)
    absorbed_id: int = Field(foreign_key="identity.id", index=True)
    reason: str = Field(max_length=200)
    created_at: datetime = _ts()
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")


class MergeMove(SQLModel, table=True):
    """A contact point or touch a merge moved from the absorbed person to the survivor: what a
    replay of a decision made before the merge needs to tell who had it then."""

    __tablename__ = "merge_move"

    id: int | None = Field(default=None, primary_key=True)
    merge_event_id: int = Field(foreign_key="merge_event.id", index=True)
    kind: str = Field(max_length=16)          # contact_point | touch
    row_id: int
    from_identity_id: int


class ErasureEvent(SQLModel, table=True):
    __tablename__ = "erasure_event"

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int = Field(foreign_key="identity.id", index=True)
    requested_by: str = Field(max_length=200)
    law: str = Field(max_length=100)
    reason: str | None = Field(default=None)
    erased_at: datetime = _ts()
    tombstones: int = Field(default=0)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    # From chain scheme 2 the erasure covers its tombstones (``chain.tombstones_digest``) until
    # they expire; rows written before the columns existed are 1.
    tombstones_digest: str | None = Field(default=None, max_length=64)
    tombstones_expire_at: datetime | None = _ts(nullable=True)
    chain_scheme: int = Field(default=CHAIN_SCHEME, sa_column_kwargs={"server_default": text("1")})


class Tombstone(SQLModel, table=True):
    """What an erasure leaves of an opted-out address: a keyed hash, the scope and the dates."""

    __tablename__ = "tombstone"

    id: int | None = Field(default=None, primary_key=True)
    address_hash: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=8)
    reason_kind: str = Field(max_length=32)   # revocation source or suppression kind
    channels: Any = _json()
    purposes: Any = _json()
    brands: Any = _json()
    received_at: datetime = _ts()
    erased_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)
    lifted_at: datetime | None = _ts(nullable=True)
    erasure_event_id: int | None = Field(default=None, foreign_key="erasure_event.id")


class Touch(SQLModel, table=True):
    __tablename__ = "touch"
    __table_args__ = (
        Index("ix_touch_identity_at", "identity_id", "at"),
        # The scheduler's jobs read the touches of one purpose (re-permission requests) and the
        # reservations still open, a small part of a table that grows with every send.
        Index("ix_touch_purpose_at", "purpose", "at"),
        Index("ix_touch_reserved", "expires_at", postgresql_where=text("state = 'reserved'"),
              sqlite_where=text("state = 'reserved'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int = Field(foreign_key="identity.id")
    contact_point_id: int | None = Field(default=None, foreign_key="contact_point.id")
    account_domain: str | None = Field(default=None, max_length=253, index=True)
    channel: str = Field(max_length=32)
    purpose: str = Field(max_length=32)
    program: str | None = Field(default=None, max_length=100)
    segment: str | None = Field(default=None, max_length=100)
    campaign: str | None = Field(default=None, max_length=200, index=True)
    brand: str | None = Field(default=None, max_length=100)
    state: str = Field(default="sent", max_length=16)
    at: datetime = _ts()
    reserved_at: datetime | None = _ts(nullable=True)
    sent_at: datetime | None = _ts(nullable=True)
    expires_at: datetime | None = _ts(nullable=True)
    released_at: datetime | None = _ts(nullable=True)   # a replay must know when the slot came back
    decision_id: int | None = Field(default=None, index=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    created_at: datetime = _ts()


class DecisionRecord(SQLModel, table=True):
    __tablename__ = "decision"
    # Decisions about an address nobody had yet name it in ``request``; erasing the person who
    # later has that address finds them by this keyed hash of it (``tombstone_hash``).
    __table_args__ = (Index("ix_decision_unknown_address", "address_hash",
                            postgresql_where=text("address_hash IS NOT NULL"),
                            sqlite_where=text("address_hash IS NOT NULL")),)

    id: int | None = Field(default=None, primary_key=True)
    identity_id: int | None = Field(default=None, index=True)
    address_hash: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=32)
    purpose: str = Field(max_length=32)
    request: Any = _json()
    allowed: bool
    reasons: Any = _json()
    codes: str = Field(default="", max_length=400)
    next_allowed_at: datetime | None = _ts(nullable=True)
    consent_id: int | None = Field(default=None)
    reservation_id: int | None = Field(default=None)
    policy_version: str = Field(max_length=64)
    decided_at: datetime = _ts(index=True)
    api_key_id: int | None = Field(default=None)
    is_test: bool = Field(default=False)


class PolicyVersion(SQLModel, table=True):
    """Every policy the service has served, so a decision can be replayed under its own rules."""

    __tablename__ = "policy_version"

    version: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    canonical: str
    first_served_at: datetime = _ts()


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id", name="uq_inbound_provider_message"),
        # Erasing a person blanks every message they sent, found by their numbers.
        Index("ix_inbound_message_from", "from_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    provider_message_id: str = Field(max_length=200)
    from_number: str | None = Field(default=None, max_length=32)
    to_number: str | None = Field(default=None, max_length=32)
    text: str | None = Field(default=None)
    raw: str | None = Field(default=None)
    raw_sha256: str = Field(max_length=64)
    intent: str = Field(max_length=32)
    received_at: datetime = _ts()
    response_status: int = Field(default=200)
    response_content_type: str = Field(default="text/xml", max_length=100)
    response_body: str = Field(default="")
    reply_text: str | None = Field(default=None)
    revocation_id: int | None = Field(default=None)
    created_at: datetime = _ts()
    erased_at: datetime | None = _ts(nullable=True)


class Subscription(SQLModel, table=True):
    """A downstream sender that must hear of every revocation."""

    __tablename__ = "subscription"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=200)
    event_types: Any = _json()
    active: bool = Field(default=True)
    created_at: datetime = _ts()


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("revocation_id", "subscription_id", name="uq_outbox_revocation_sub"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    revocation_id: int = Field(foreign_key="revocation.id")
    subscription_id: int = Field(foreign_key="subscription.id")
    event_type: str = Field(max_length=64)
    payload: Any = _json()
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts()
    last_error: str | None = Field(default=None)
    acknowledged_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class JobLease(SQLModel, table=True):
    """One row per scheduler job: whoever holds an unexpired lease runs it."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True, max_length=100)
    holder: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = _ts(nullable=True)
    last_run_at: datetime | None = _ts(nullable=True)


class ChainEntry(SQLModel, table=True):
    """One link of the tamper-evident chain over every ledger row, in write order."""

    __tablename__ = "chain_entry"
    __table_args__ = (UniqueConstraint("table_name", "row_id", name="uq_chain_row"),)

    seq: int = Field(primary_key=True)
    table_name: str = Field(max_length=32)
    row_id: int
    content_hash: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)
    created_at: datetime = _ts()
