"""Reading a person and their facts for the gate, without a lock, against merges in between."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consentgate.store.subjects import PersonMoved, load_subject, read_person

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _noon(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)


def _identity(client, keys, body) -> int:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/identities", json=body, headers=keys["writer"])
    assert answer.status_code in (200, 201), answer.get_json()
    return int(answer.get_json()["identity_id"])


def test_facts_read_after_a_merge_are_refused_for_the_person_read_before(  # type: ignore[no-untyped-def]
        client, keys, runtime) -> None:
    older = _identity(client, keys, {"email": "first@corp.com"})
    newer = _identity(client, keys, {"phone": "+13055550177"})
    revoke = {"email": "first@corp.com", "channels": ["*"], "source": "api"}
    assert client.post("/v1/revocations", json=revoke, headers=keys["writer"]).status_code == 201
    store, policy = runtime.store, runtime.policy

    with store.driver() as driver:
        stale = read_person(driver, kind="phone", value="+13055550177")
    assert stale is not None and stale.group == (newer,)
    merged = client.post(f"/v1/identities/{older}/merge", json={"other_identity_id": newer},
                         headers=keys["writer"])
    assert merged.status_code == 200

    with store.driver() as driver:
        # The facts of the absorbed id alone would miss the survivor's revocation.
        with pytest.raises(PersonMoved):
            load_subject(driver, policy, runtime.secret_key, identity=stale.identity,
                         target=stale.address("phone"), at=NOON_ET, person=stale)
        fresh = read_person(driver, kind="phone", value="+13055550177")
        assert fresh is not None and fresh.group == (older, newer)
        subject = load_subject(driver, policy, runtime.secret_key, identity=fresh.identity,
                               target=fresh.address("phone"), at=NOON_ET, person=fresh)
    assert [r.channels for r in subject.revocations] == [("*",)]


def test_a_person_who_gains_a_merged_id_is_read_again(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    older = _identity(client, keys, {"email": "keep@corp.com"})
    newer = _identity(client, keys, {"phone": "+13055550178"})
    with runtime.store.driver() as driver:
        stale = read_person(driver, kind="email", value="keep@corp.com")
    assert stale is not None
    assert client.post(f"/v1/identities/{older}/merge", json={"other_identity_id": newer},
                       headers=keys["writer"]).status_code == 200
    with runtime.store.driver() as driver, pytest.raises(PersonMoved):
        load_subject(driver, runtime.policy, runtime.secret_key, identity=stale.identity,
                     target=stale.address("email"), at=NOON_ET, person=stale)


def test_a_batch_read_for_someone_merged_meanwhile_is_refused(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from consentgate.store.models import ContactPoint, Identity
    from consentgate.store.subjects import load_subjects

    older = _identity(client, keys, {"email": "batch@corp.com"})
    newer = _identity(client, keys, {"phone": "+13055550179"})
    with runtime.store.transaction() as session:
        stale_person, stale_target = session.get(Identity, newer), session.exec(
            select(ContactPoint).where(ContactPoint.identity_id == newer)).one()
    assert client.post(f"/v1/identities/{older}/merge", json={"other_identity_id": newer},
                       headers=keys["writer"]).status_code == 200
    with runtime.store.transaction() as session, pytest.raises(PersonMoved):
        load_subjects(session, runtime.policy, runtime.secret_key, [(stale_person, stale_target)], [NOON_ET])


def test_a_batch_naming_both_sides_of_a_merge_made_meanwhile_is_refused(  # type: ignore[no-untyped-def]
        client, keys, runtime) -> None:
    from sqlmodel import select

    from consentgate.store.models import ContactPoint, Identity
    from consentgate.store.subjects import load_subjects

    older = _identity(client, keys, {"email": "both@corp.com"})
    newer = _identity(client, keys, {"phone": "+13055550180"})
    with runtime.store.transaction() as session:
        stale = [(session.get(Identity, person), session.exec(
            select(ContactPoint).where(ContactPoint.identity_id == person)).one()) for person in (older, newer)]
    assert client.post(f"/v1/identities/{older}/merge", json={"other_identity_id": newer},
                       headers=keys["writer"]).status_code == 200
    # The absorbed person's facts now belong to the survivor: read as they were, they would be empty.
    with runtime.store.transaction() as session, pytest.raises(PersonMoved):
        load_subjects(session, runtime.policy, runtime.secret_key, stale, [NOON_ET, NOON_ET])
