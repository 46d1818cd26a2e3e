"""Plain values the eligibility decision is made from.

The store loads these; the core decides over them. Nothing here knows about SQL or HTTP, so
``decide()`` can be unit- and property-tested in microseconds and replayed months later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from consentgate.core.reasons import ReasonCode

AddressKind = Literal["email", "phone"]
# Suppression kinds that stop the whole person, whichever address a sender targets.
IDENTITY_WIDE_SUPPRESSIONS = frozenset({"legal_hold", "litigator"})


@dataclass(frozen=True, slots=True)
class ContactPointFact:
    id: int
    identity_id: int
    kind: AddressKind
    value: str
    status: str = "active"          # active | bounced | complained | reassigned | invalid


@dataclass(frozen=True, slots=True)
class IdentityFact:
    id: int
    account_domain: str | None = None
    timezone: str | None = None     # IANA name, when known
    state: str | None = None        # two-letter US state, when known
    country: str | None = None
    is_test: bool = False
    merged_ids: tuple[int, ...] = ()   # people merged into this one: their ledger rows keep their ids

    def owns(self, identity_id: int | None) -> bool:
        """Whether a ledger row of ``identity_id`` is this person's (theirs, or of someone merged into them)."""
        return identity_id == self.id or identity_id in self.merged_ids


@dataclass(frozen=True, slots=True)
class ConsentFact:
    id: int
    contact_point_id: int | None   # None: a channel that reaches the person (policy ``address: none``)
    channel: str
    purpose: str
    consent_type: str
    captured_at: datetime
    source: str
    recorded_at: datetime
    proof_uri: str | None = None
    brand: str | None = None        # None: every brand of the organisation
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RevocationFact:
    """A do-not-contact statement by the person, or a tombstone left by an erasure.

    ``scope`` is ``identity`` (every contact point of the person) or ``account`` (everyone at
    ``account_domain``). Lists hold ``*`` for all. ``lifted_at`` is set when the same number
    re-opted in (START) and undoes exactly this revocation.
    """

    id: int
    identity_id: int | None
    scope: Literal["identity", "account"]
    channels: tuple[str, ...]
    purposes: tuple[str, ...]
    brands: tuple[str, ...]
    received_at: datetime
    effective_at: datetime
    source: str
    account_domain: str | None = None
    contact_point_id: int | None = None
    lifted_at: datetime | None = None
    tombstone: bool = False


@dataclass(frozen=True, slots=True)
class SuppressionFact:
    id: int
    kind: str                       # bounce | complaint | dnc_national | reassigned | legal_hold | litigator
    contact_point_id: int | None
    identity_id: int | None
    created_at: datetime
    since: datetime | None = None   # reassigned: consent captured before this is void
    lifted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TouchFact:
    id: int
    identity_id: int
    channel: str
    purpose: str
    at: datetime                    # sent_at, or reserved_at for a reservation
    state: str = "sent"             # reserved | sent | released | expired
    contact_point_id: int | None = None
    program: str | None = None
    segment: str | None = None
    campaign: str | None = None
    brand: str | None = None
    expires_at: datetime | None = None   # reservations only


@dataclass(frozen=True, slots=True)
class EligibilityRequest:
    channel: str
    purpose: str
    at: datetime
    program: str | None = None
    segment: str | None = None
    campaign: str | None = None
    brand: str | None = None
    # When the question is asked (None: ``at``). A reservation still held then counts at any
    # instant the send is judged for, later ones included: it may yet be confirmed.
    asked_at: datetime | None = None

    @property
    def asked(self) -> datetime:
        return self.at if self.asked_at is None else self.asked_at


@dataclass(frozen=True, slots=True)
class Subject:
    """Everything the store knows about the person a request is about.

    ``identity`` is None for an unknown address. ``target`` is the contact point the sender
    means to use (None when the request named an identity with no address for the channel).
    ``account_touches`` holds the touches of everyone at the account, for caps counted per account.
    """

    identity: IdentityFact | None
    target: ContactPointFact | None
    contact_points: tuple[ContactPointFact, ...] = ()
    consents: tuple[ConsentFact, ...] = ()
    revocations: tuple[RevocationFact, ...] = ()
    suppressions: tuple[SuppressionFact, ...] = ()
    touches: tuple[TouchFact, ...] = ()
    account_touches: tuple[TouchFact, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]
    next_allowed_at: datetime | None = None
    consent: ConsentFact | None = None

    @property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(r.code for r in self.reasons)
