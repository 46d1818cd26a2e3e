"""Rows to the plain facts the core decides over."""

from __future__ import annotations

from collections.abc import Iterable

from consentgate.core.facts import (
    ConsentFact,
    ContactPointFact,
    IdentityFact,
    RevocationFact,
    SuppressionFact,
    TouchFact,
)
from consentgate.store.models import ConsentEvent, ContactPoint, Identity, Revocation, Suppression, Touch


def identity_fact(row: Identity, merged_ids: Iterable[int] = ()) -> IdentityFact:
    assert row.id is not None
    return IdentityFact(id=row.id, account_domain=row.account_domain, timezone=row.timezone,
                        state=row.state, country=row.country, is_test=row.is_test,
                        merged_ids=tuple(i for i in merged_ids if i != row.id))


def contact_point_fact(row: ContactPoint) -> ContactPointFact:
    assert row.id is not None
    return ContactPointFact(id=row.id, identity_id=row.identity_id, kind=row.kind,  # type: ignore[arg-type]
                            value=row.value or "", status=row.status)


def consent_fact(row: ConsentEvent) -> ConsentFact:
    assert row.id is not None
    return ConsentFact(id=row.id, contact_point_id=row.contact_point_id, channel=row.channel,
                       purpose=row.purpose, consent_type=row.consent_type, captured_at=row.captured_at,
                       source=row.source, recorded_at=row.recorded_at, proof_uri=row.proof_uri,
                       brand=row.brand, expires_at=row.expires_at)


def revocation_fact(row: Revocation) -> RevocationFact:
    assert row.id is not None
    return RevocationFact(id=row.id, identity_id=row.identity_id, scope=row.scope,  # type: ignore[arg-type]
                          channels=tuple(row.channels or ("*",)), purposes=tuple(row.purposes or ("*",)),
                          brands=tuple(row.brands or ("*",)), received_at=row.received_at,
                          effective_at=row.effective_at, source=row.source,
                          account_domain=row.account_domain, contact_point_id=row.contact_point_id,
                          lifted_at=row.lifted_at)


def suppression_fact(row: Suppression) -> SuppressionFact:
    assert row.id is not None
    return SuppressionFact(id=row.id, kind=row.kind, contact_point_id=row.contact_point_id,
                           identity_id=row.identity_id, created_at=row.created_at, since=row.since,
                           lifted_at=row.lifted_at)


def touch_fact(row: Touch) -> TouchFact:
    assert row.id is not None
    return TouchFact(id=row.id, identity_id=row.identity_id, channel=row.channel, purpose=row.purpose,
                     at=row.at, state=row.state, contact_point_id=row.contact_point_id, program=row.program,
                     segment=row.segment, campaign=row.campaign, brand=row.brand, expires_at=row.expires_at)
