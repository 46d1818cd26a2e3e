"""Identities: upsert, dedupe by every key, merges that never widen consent, races."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from consentgate.store.models import Identity


def _post(client, keys, body, role="writer"):  # type: ignore[no-untyped-def]
    return client.post("/v1/identities", json=body, headers=keys[role])


def test_create_then_match_in_another_format(client, keys) -> None:  # type: ignore[no-untyped-def]
    first = _post(client, keys, {"phone": "(305) 555-0142", "email": "Jane.Doe@Example.COM"})
    assert first.status_code == 201
    body = first.get_json()
    assert {"kind": "phone", "value": "+13055550142"} in body["contact_points"]
    assert {"kind": "email", "value": "jane.doe@example.com"} in body["contact_points"]
    assert body["account_domain"] == "example.com"
    again = _post(client, keys, {"phone": "+1 305.555.0142"})
    assert again.status_code == 200
    assert again.get_json()["identity_id"] == body["identity_id"]


def test_free_mail_gives_no_account(client, keys) -> None:  # type: ignore[no-untyped-def]
    body = _post(client, keys, {"email": "someone@gmail.com"}).get_json()
    assert body["account_domain"] is None
    explicit = _post(client, keys, {"email": "someone@gmail.com", "company_domain": "WWW.Acme.io"}).get_json()
    assert explicit["account_domain"] == "acme.io"


def test_keys_of_two_people_merge_into_the_oldest(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    older = _post(client, keys, {"email": "a@corp.com"}).get_json()["identity_id"]
    clock.set(clock.now + timedelta(seconds=5))
    newer = _post(client, keys, {"phone": "+13055550100", "external_id": "crm-9"}).get_json()["identity_id"]
    merged = _post(client, keys, {"email": "a@corp.com", "phone": "305-555-0100"}).get_json()
    assert merged["identity_id"] == older
    assert merged["merged_identity_ids"] == [newer]
    # The absorbed id resolves to the survivor everywhere.
    read = client.get(f"/v1/identities/{newer}", headers=keys["auditor"]).get_json()
    assert read["identity_id"] == older
    assert read["external_id"] == "crm-9"
    timeline = client.get(f"/v1/identities/{newer}/timeline", headers=keys["auditor"]).get_json()
    assert any(e["type"] == "merge" and e["absorbed_id"] == newer for e in timeline["events"])


def test_merge_never_widens_consent_and_keeps_revocations(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    a = _post(client, keys, {"phone": "+13055550101"}).get_json()["identity_id"]
    b = _post(client, keys, {"phone": "+13055550102"}).get_json()["identity_id"]
    consent = {"phone": "+13055550101", "channel": "sms", "purpose": "marketing",
               "consent_type": "express_written", "captured_at": clock.now.isoformat(),
               "source": "web_form", "proof_uri": "https://proof.example.com/1"}
    assert client.post("/v1/consents", json=consent, headers=keys["writer"]).status_code == 201
    revoke = {"phone": "+13055550102", "channels": ["email"], "source": "api"}
    assert client.post("/v1/revocations", json=revoke, headers=keys["writer"]).status_code == 201
    merged = client.post(f"/v1/identities/{b}/merge", json={"other_identity_id": a}, headers=keys["writer"])
    assert merged.status_code == 200 and merged.get_json()["identity_id"] == a
    view = client.get(f"/v1/identities/{a}", headers=keys["writer"]).get_json()
    assert [c["contact_point"]["value"] for c in view["consents"]] == ["+13055550101"]
    assert [r["channels"] for r in view["revocations"]] == [["email"]]


def test_find_by_address(client, keys) -> None:  # type: ignore[no-untyped-def]
    made = _post(client, keys, {"email": "find@me.org", "attributes": {"timezone": "America/Chicago",
                                                                       "state": "tx", "name": "F M"}})
    found = client.get("/v1/identities?email=FIND@me.org", headers=keys["auditor"])
    assert found.status_code == 200
    assert found.get_json()["identity_id"] == made.get_json()["identity_id"]
    assert found.get_json()["attributes"] == {"timezone": "America/Chicago", "state": "TX", "country": None,
                                              "name": "F M"}
    assert client.get("/v1/identities?email=nobody@me.org", headers=keys["auditor"]).status_code == 404


def test_a_region_outside_the_us_is_kept_with_its_country(client, keys) -> None:  # type: ignore[no-untyped-def]
    made = _post(client, keys, {"email": "kim@example.com.au",
                                "attributes": {"country": "au", "state": "nsw", "timezone": "Australia/Sydney"}})
    assert made.status_code == 201, made.get_json()
    view = client.get(f"/v1/identities/{made.get_json()['identity_id']}", headers=keys["auditor"]).get_json()
    assert view["attributes"] | {"name": None} == {"timezone": "Australia/Sydney", "state": "NSW", "country": "AU",
                                                  "name": None}


@pytest.mark.parametrize("body, field", [
    ({"phone": "555"}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({}, "email"),
    ({"email": "x@y.com", "attributes": {"timezone": "Mars/Base"}}, "attributes.timezone"),
    # Without a country a state is a US one: a typo would match none of the state rules.
    ({"email": "x@y.com", "attributes": {"state": "FK"}}, "attributes.state"),
    ({"email": "x@y.com", "attributes": {"state": "NSW", "country": "US"}}, "attributes.state"),
    ({"email": "x@y.com", "attributes": {"state": "N-W", "country": "AU"}}, "attributes.state"),
    ({"email": "x@y.com", "last_touch_channel": "pigeon"}, "last_touch_channel"),
])
def test_bad_input_names_the_field_and_writes_nothing(client, keys, rows, body, field) -> None:  # type: ignore[no-untyped-def]
    answer = _post(client, keys, body)
    assert answer.status_code == 422
    assert answer.mimetype == "application/problem+json"
    assert field in [e["field"] for e in answer.get_json()["errors"]]
    assert rows(Identity) == []


def test_roles(client, keys) -> None:  # type: ignore[no-untyped-def]
    assert _post(client, keys, {"email": "r@x.com"}, role="sender").status_code == 403
    assert client.post("/v1/identities", json={"email": "r@x.com"}).status_code == 401


def test_racing_creates_end_as_one_identity(app, keys, rows) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def create(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        body = {"email": "race@corp.com"} if i % 2 else {"phone": "+13055550199", "email": "race@corp.com"}
        answers.append(client.post("/v1/identities", json=body, headers=keys["writer"]).status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers)[-1] in (200, 201) and all(a in (200, 201) for a in answers)
    live = [i for i in rows(Identity) if i.merged_into_id is None]
    assert len(live) == 1


def test_a_timeline_read_a_page_at_a_time_is_the_whole_timeline(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    """Pages (limit, then after=the last page's next) give every event once, in the order of the
    whole timeline, even where many events share one instant."""
    person = _post(client, keys, {"email": "pat@corp.com"}).get_json()["identity_id"]
    for step in range(3):   # every kind of event, several at each instant
        clock.set(clock.now + timedelta(minutes=step))
        captured = (clock.now - timedelta(days=1)).isoformat()
        client.post("/v1/consents", json={"email": "pat@corp.com", "channel": "email", "purpose": "marketing",
                                          "consent_type": "double_opt_in", "source": "crm", "captured_at": captured},
                    headers=keys["writer"])
        for _ in range(2):
            client.post("/v1/eligibility", json={"email": "pat@corp.com", "channel": "email", "purpose": "marketing"},
                        headers=keys["sender"])
        client.post("/v1/touches", json={"email": "pat@corp.com", "channel": "email", "purpose": "marketing",
                                         "sent_at": clock.now.isoformat()}, headers=keys["sender"])
    other = _post(client, keys, {"phone": "+13055550111"}).get_json()["identity_id"]
    client.post(f"/v1/identities/{person}/merge", json={"other_identity_id": other}, headers=keys["writer"])
    client.post("/v1/revocations", json={"email": "pat@corp.com", "channels": ["email"], "source": "api"},
                headers=keys["writer"])
    auditor = keys["auditor"]
    whole = client.get(f"/v1/identities/{person}/timeline", headers=auditor).get_json()
    assert whole["next"] is None and len(whole["events"]) >= 17
    assert {e["type"] for e in whole["events"]} >= {"identity_created", "contact_point_added", "consent",
                                                    "decision", "touch", "merge", "revocation"}
    instants = [datetime.fromisoformat(e["at"]) for e in whole["events"]]   # text order is not time order
    assert instants == sorted(instants)
    for limit in (1, 2, 5, 100):
        pages, after = [], None
        while True:
            query = {"limit": limit, **({"after": after} if after else {})}
            page = client.get(f"/v1/identities/{person}/timeline", query_string=query, headers=auditor).get_json()
            assert len(page["events"]) <= limit
            pages += page["events"]
            after = page["next"]
            if after is None:
                break
        assert pages == whole["events"], limit
    for query, field in [({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"), ({"after": "yesterday"}, "after"),
                         ({"after": "2026-11-25T17:00:00Z|decision|x"}, "after")]:
        refused = client.get(f"/v1/identities/{person}/timeline", query_string=query, headers=auditor)
        assert refused.status_code == 422 and field in refused.get_data(as_text=True), query


def test_a_real_person_cannot_be_made_a_test_record(client, keys) -> None:  # type: ignore[no-untyped-def]
    # Reports leave test records out: a writer could otherwise hide someone's consents and opt-outs.
    real = client.post("/v1/identities", json={"email": "real@corp.com"}, headers=keys["writer"])
    assert real.status_code == 201
    hidden = client.post("/v1/identities", json={"email": "real@corp.com", "test_record": True},
                         headers=keys["writer"])
    assert hidden.status_code == 422 and hidden.get_json()["errors"][0]["field"] == "test_record"
    assert client.get(f"/v1/identities/{real.get_json()['identity_id']}",
                      headers=keys["writer"]).get_json()["test_record"] is False
    synthetic = client.post("/v1/identities", json={"email": "qa@corp.com", "test_record": True},
                            headers=keys["writer"])
    assert synthetic.status_code == 201
