"""Chain schemes: revocations chained before a reason was personal still verify as written, and
an erasure blanks a reason only where the chain covers it by its digest."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from consentgate.store import chain
from consentgate.store.models import CHAIN_SCHEME, Revocation

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONE = "+13055550188"
# How every ledger row was hashed before schemes: these columns were never content.
_FIRST_SKIP = {"pii_salt", "pii_digest", "erased_at", "lifted_at", "lifted_by_message_id", "confirmation_sent_at",
               "attributed_touch_id"}


def first_scheme_hash(row: dict) -> str:  # type: ignore[type-arg]
    """A revocation's content hash as the chain computed it when it began: every column but the
    skipped ones and raw_text (the reason included), times as ISO 8601, and the personal digest."""
    content = {name: value.isoformat() if isinstance(value, datetime) else value for name, value in row.items()
               if name not in _FIRST_SKIP and name not in ("raw_text", "chain_scheme")}
    content["pii_digest"] = row["pii_digest"]
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"revocation|{payload}".encode()).hexdigest()


def _legacy_revocation(runtime, identity_id: int, cp_id: int, reason: str) -> int:  # type: ignore[no-untyped-def]
    """A revocation written as a release before schemes wrote it (the column's default, 1)."""
    with runtime.store.transaction() as session:
        row = Revocation(identity_id=identity_id, contact_point_id=cp_id, channels=["voice"], purposes=["*"],
                         brands=["*"], source="api", reason=reason, raw_text="no calls", received_at=NOON_ET,
                         effective_at=NOON_ET, deadline_at=NOON_ET + timedelta(days=14), chain_scheme=1)
        chain.seal("revocation", row, PHONE)
        session.add(row)
        session.flush()
        chain.append(session, "revocation", [row], NOON_ET)
        assert row.id is not None
        return row.id


def _row(runtime, revocation_id: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from sqlalchemy import select

    table = Revocation.__table__  # type: ignore[attr-defined]
    with runtime.store.engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c.id == revocation_id)).mappings().one())


def test_a_first_scheme_revocation_hashes_as_the_chain_began_and_keeps_its_reason(  # type: ignore[no-untyped-def]
        client, keys, clock, runtime) -> None:
    clock.set(NOON_ET)
    made = client.post("/v1/identities", json={"phone": PHONE}, headers=keys["writer"]).get_json()
    person = made["identity_id"]
    with runtime.store.engine.connect() as conn:
        cp = conn.execute(text(f"SELECT id FROM contact_point WHERE identity_id = {person}")).scalar_one()
    legacy = _legacy_revocation(runtime, person, cp, "asked on a call by Dana Legacy")
    current = client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api",
                                                   "reason": "asked by Dana Current"},
                          headers=keys["writer"]).get_json()["revocation_id"]

    old, new = _row(runtime, legacy), _row(runtime, current)
    assert (old["chain_scheme"], new["chain_scheme"]) == (1, CHAIN_SCHEME)
    with runtime.store.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT row_id, content_hash FROM chain_entry WHERE table_name = 'revocation'")
                                   ).all())
    # The first scheme is the chain's original rule, byte for byte; the new one is not (the
    # reason left the content), so a row cannot be moved from one to the other unnoticed.
    assert stored[legacy] == first_scheme_hash(old) == chain.content_hash_of("revocation", old)
    assert stored[current] == chain.content_hash_of("revocation", new) != first_scheme_hash(new)
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True

    erased = client.delete(f"/v1/identities/{person}", headers=keys["admin"])
    assert erased.status_code == 200, erased.get_json()
    old, new = _row(runtime, legacy), _row(runtime, current)
    assert new["reason"] is None and new["raw_text"] is None
    # Chained as content, the first scheme's reason stays (blanking it would break the chain).
    assert old["reason"] == "asked on a call by Dana Legacy" and old["raw_text"] is None
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True


def test_a_first_scheme_erasure_hashes_as_the_chain_began(client, keys, clock, runtime) -> None:  # type: ignore[no-untyped-def]
    """Erasures chained before they covered their tombstones verify by the original rule; a new
    one covers them (and is no longer hashed by that rule)."""
    from sqlalchemy import select

    from consentgate.store.models import ErasureEvent

    clock.set(NOON_ET)
    person = client.post("/v1/identities", json={"phone": PHONE}, headers=keys["writer"]).get_json()["identity_id"]
    with runtime.store.transaction() as session:
        legacy = ErasureEvent(identity_id=person, requested_by="ops", law="GDPR Art. 17", reason="ticket 7",
                              erased_at=NOON_ET, tombstones=0, chain_scheme=1)
        session.add(legacy)
        session.flush()
        chain.append(session, "erasure_event", [legacy], NOON_ET)
        legacy_id = legacy.id
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api"}, headers=keys["writer"])
    current = client.delete(f"/v1/identities/{person}", headers=keys["admin"]).get_json()["erasure_id"]

    table = ErasureEvent.__table__  # type: ignore[attr-defined]
    with runtime.store.engine.connect() as conn:
        events = {row["id"]: dict(row) for row in conn.execute(select(table)).mappings()}
        stored = dict(conn.execute(text("SELECT row_id, content_hash FROM chain_entry WHERE table_name = "
                                        "'erasure_event'")).all())

    def first_rule(row: dict) -> str:  # type: ignore[type-arg]
        content = {name: value.isoformat() if isinstance(value, datetime) else value for name, value in row.items()
                   if name not in _FIRST_SKIP | {"chain_scheme", "tombstones_digest", "tombstones_expire_at"}}
        content["pii_digest"] = row.get("pii_digest", "")
        payload = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(f"erasure_event|{payload}".encode()).hexdigest()

    old = events[legacy_id]
    assert stored[legacy_id] == first_rule(old) == chain.content_hash_of("erasure_event", old)
    assert events[current]["tombstones_digest"] and events[current]["chain_scheme"] == CHAIN_SCHEME
    assert stored[current] == chain.content_hash_of("erasure_event", events[current]) != first_rule(events[current])
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True
