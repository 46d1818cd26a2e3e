"""Consent events: provenance, validation, idempotency, batches."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.services.consents import _is_web_uri
from consentgate.store.models import ChainEntry, ConsentEvent, ContactPoint


def consent(clock, **over):  # type: ignore[no-untyped-def]
    body = {"phone": "(305) 555-0150", "channel": "sms", "purpose": "marketing",
            "consent_type": "express_written", "captured_at": (clock.now - timedelta(hours=1)).isoformat(),
            "source": "web_form", "proof_uri": "https://proof.example.com/forms/77",
            "proof_sha256": "a" * 64, "brand": "acme", "consent_text": "I agree to receive texts",
            "ip": "203.0.113.9", "user_agent": "Mozilla/5.0"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def test_records_every_provenance_field(client, keys, clock, rows) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/consents", json=consent(clock), headers=keys["writer"])
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["recorded_at"].endswith("Z")
    [event] = rows(ConsentEvent)
    assert (event.id, event.identity_id) == (body["consent_id"], body["identity_id"])
    assert event.proof_uri == "https://proof.example.com/forms/77" and event.ip == "203.0.113.9"
    assert event.api_key_id is not None
    assert [e.table_name for e in rows(ChainEntry)] == ["consent_event"]
    view = client.get(f"/v1/identities/{body['identity_id']}", headers=keys["auditor"]).get_json()
    assert view["consents"][0]["consent_type"] == "express_written"


@pytest.mark.parametrize("over, field", [
    ({"proof_uri": None}, "proof_uri"),
    ({"proof_uri": "ftp://x/y"}, "proof_uri"),
    ({"proof_uri": "https://[2001:db8::1/form"}, "proof_uri"),   # an IPv6 host left open
    ({"channel": "fax"}, "channel"),
    ({"purpose": "gossip"}, "purpose"),
    ({"consent_type": "telepathic"}, "consent_type"),
    ({"phone": "12"}, "phone"),
    ({"captured_at": "2020-01-01T00:00:00"}, "captured_at"),
    ({"proof_sha256": "xyz"}, "proof_sha256"),
])
def test_bad_consent_names_the_field(client, keys, clock, rows, over, field) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/consents", json=consent(clock, **over), headers=keys["writer"])
    assert answer.status_code == 422
    assert field in [e["field"] for e in answer.get_json()["errors"]]
    assert rows(ConsentEvent) == []


def test_future_capture_is_refused_but_small_skew_is_not(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    late = consent(clock, captured_at=(clock.now + timedelta(minutes=10)).isoformat())
    assert client.post("/v1/consents", json=late, headers=keys["writer"]).status_code == 422
    skew = consent(clock, captured_at=(clock.now + timedelta(minutes=2)).isoformat())
    assert client.post("/v1/consents", json=skew, headers=keys["writer"]).status_code == 201


def test_malformed_json_is_400(client, keys) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/consents", data="{nope", content_type="application/json", headers=keys["writer"])
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"


def test_idempotency_key(client, keys, clock, rows) -> None:  # type: ignore[no-untyped-def]
    headers = {**keys["writer"], "Idempotency-Key": "k-1"}
    first = client.post("/v1/consents", json=consent(clock), headers=headers)
    again = client.post("/v1/consents", json=consent(clock), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert len(rows(ConsentEvent)) == 1
    other = client.post("/v1/consents", json=consent(clock, brand="other"), headers=headers)
    assert other.status_code == 409
    assert len(rows(ConsentEvent)) == 1


def test_an_idempotency_key_is_honoured_for_thirty_days_then_forgotten(  # type: ignore[no-untyped-def]
        client, keys, clock, rows, runtime) -> None:
    from consentgate.jobs import run_once
    from consentgate.services.idempotency import purge_expired_keys
    from consentgate.store.models import IdempotencyRecord

    start = clock.now
    for n in range(5):
        client.post("/v1/consents", json=consent(clock, brand=f"b{n}"),
                    headers={**keys["writer"], "Idempotency-Key": f"old-{n}"})
    body = consent(clock)
    client.post("/v1/consents", json=body, headers={**keys["writer"], "Idempotency-Key": "late"})
    clock.set(start + timedelta(days=29))
    run_once(runtime, "idempotency_key_retention")
    assert len(rows(IdempotencyRecord)) == 6
    client.post("/v1/consents", json=body, headers={**keys["writer"], "Idempotency-Key": "late"})
    assert len(rows(ConsentEvent)) == 6          # a retry within the period writes nothing
    client.post("/v1/consents", json=body, headers={**keys["writer"], "Idempotency-Key": "new"})
    clock.set(start + timedelta(days=31))
    assert purge_expired_keys(runtime.store, clock.now, chunk=2, most=4) == 4   # in small steps
    run_once(runtime, "idempotency_key_retention")
    assert [r.key for r in rows(IdempotencyRecord)] == ["new"]


def test_batch_bad_items_fail_alone(client, keys, clock, rows) -> None:  # type: ignore[no-untyped-def]
    items = [consent(clock, phone=f"+1305555{1000 + i:04d}") for i in range(5)]
    items[1]["channel"] = "fax"
    items[3] = "not an object"
    answer = client.post("/v1/consents/batch", json={"items": items}, headers=keys["writer"])
    assert answer.status_code == 200
    body = answer.get_json()
    assert [r["status"] for r in body["results"]] == [201, 422, 201, 422, 201]
    assert body["results"][1]["errors"][0]["field"] == "items[1].channel"
    assert (body["created"], body["failed"]) == (3, 2)
    assert len(rows(ConsentEvent)) == 3


def _batch_world(clock, tag: str, known_phone: str, known_id: int):  # type: ignore[no-untyped-def]
    """Consent items of every kind a batch may hold, their addresses marked by ``tag`` ("1" or "2")."""
    n = f"0{tag}7"
    return [
        consent(clock, phone=f"(305) 555-{n}1"),                                           # a new person
        consent(clock, phone=f"+1 305 555 {n}1", purpose="informational", consent_type="express",
                proof_uri=None, brand=None),                                                  # the same, spelt apart
        consent(clock, phone=None, email=f"Jane.{tag}@Acme{tag}.com", channel="email",
                consent_type="double_opt_in", ip=None, user_agent=None),                      # a work email
        consent(clock, phone=None, email=f"jane.{tag}@acme{tag}.com", channel="email", brand="other",
                consent_type="double_opt_in"),                                                # the same, case apart
        consent(clock, phone=None, email=f"jane.{tag}@acme{tag}.com"),                        # sms on an email
        consent(clock, phone="12"),                                                           # not a number
        consent(clock, phone=known_phone, captured_at=(clock.now - timedelta(days=2)).isoformat(),
                expires_at=(clock.now + timedelta(days=300)).isoformat()),                    # someone known
        consent(clock, phone=None, identity_id=known_id, channel="email", consent_type="double_opt_in"),
        consent(clock, phone=None, identity_id=999_999),                                      # nobody
        consent(clock, phone=None, email=f"solo{tag}@gmail.com", channel="email",
                consent_type="double_opt_in"),                                                # free mail: no company
        consent(clock, phone=f"305.555.{n}2", brand=None),
    ]


def test_a_batch_writes_what_the_same_items_sent_one_by_one_write(  # type: ignore[no-untyped-def]
        client, keys, clock, rows) -> None:
    """Addresses go the bulk way (a few statements for all), identity ids one at a time: the
    answers, the people, their companies and the consent events must be what single POSTs give."""
    known = {}
    for tag in "12":
        made = client.post("/v1/consents", json=consent(clock, phone=f"+130555509{tag}9"), headers=keys["writer"])
        both = {"phone": f"+130555509{tag}9", "email": f"known{tag}@corp{tag}.com"}
        joined = client.post("/v1/identities", json=both, headers=keys["writer"])
        assert joined.get_json()["identity_id"] == made.get_json()["identity_id"]
        known[tag] = (f"+130555509{tag}9", made.get_json()["identity_id"])
    batch = client.post("/v1/consents/batch", json={"items": _batch_world(clock, "1", *known["1"])},
                        headers=keys["writer"]).get_json()["results"]
    singles = []
    for index, item in enumerate(_batch_world(clock, "2", *known["2"])):
        answer = client.post("/v1/consents", json=item, headers=keys["writer"])
        body = answer.get_json()
        if answer.status_code != 201:    # a batch names the item in each field
            body = {**body, "errors": [{**e, "field": f"items[{index}].{e['field']}"} for e in body.get("errors", [])]}
        singles.append({"index": index, "status": answer.status_code, **body})

    events = {e.id: e for e in rows(ConsentEvent)}

    def shape(results, tag):  # type: ignore[no-untyped-def]
        """What a user sees, with ids as first-seen labels and the tag taken out."""
        people: dict[int, int] = {known[tag][1]: 0}
        out = []
        for r in results:
            if r["status"] != 201:
                out.append((r["status"], sorted((e["field"], e["message"]) for e in r.get("errors", [])),
                            None if r.get("errors") else r.get("detail")))
                continue
            event = events[r["consent_id"]]
            person = people.setdefault(r["identity_id"], len(people))
            assert event.identity_id == r["identity_id"]
            out.append((201, person, r["recorded_at"], event.channel, event.purpose, event.consent_type,
                        event.captured_at, event.expires_at, event.source, event.proof_uri, event.proof_sha256,
                        event.brand, event.consent_text, event.ip, event.user_agent, event.api_key_id,
                        event.recorded_at, event.inbound_message_id))
        return out

    assert shape(batch, "1") == shape(singles, "2")
    assert [r["status"] for r in batch] == [201, 201, 201, 201, 422, 422, 201, 201, 404, 201, 201]
    for tag, results in (("1", batch), ("2", singles)):
        views = {r["identity_id"]: client.get(f"/v1/identities/{r['identity_id']}", headers=keys["auditor"]).get_json()
                 for r in results if r["status"] == 201}
        work = views[results[2]["identity_id"]]
        assert work["account_domain"] == f"acme{tag}.com"
        assert [cp["value"] for cp in work["contact_points"]] == [f"jane.{tag}@acme{tag}.com"]
        assert views[results[9]["identity_id"]]["account_domain"] is None
        assert [c["purpose"] for c in views[results[0]["identity_id"]]["consents"]].count("informational") == 1
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True


def test_a_batch_numbers_new_addresses_in_item_order_as_single_posts_would(  # type: ignore[no-untyped-def]
        client, keys, clock) -> None:
    """Ids of new addresses follow the items, whatever their alphabetical order: after a merge, the
    person's first email (the one a check naming only the identity reaches) is the one seen first."""
    items = [consent(clock, phone=None, email=email, channel="email", consent_type="double_opt_in")
             for email in ("zoe@corp.com", "ann@corp.com", "mia@corp.com")]
    results = client.post("/v1/consents/batch", json={"items": items}, headers=keys["writer"]).get_json()["results"]
    people = [r["identity_id"] for r in results]
    for other in people[1:]:
        client.post(f"/v1/identities/{people[0]}/merge", json={"other_identity_id": other}, headers=keys["writer"])
    view = client.get(f"/v1/identities/{people[0]}", headers=keys["auditor"]).get_json()
    assert [cp["value"] for cp in sorted(view["contact_points"], key=lambda cp: cp["id"])] == [
        "zoe@corp.com", "ann@corp.com", "mia@corp.com"]


def test_two_batches_racing_to_create_the_same_people_make_each_person_once(  # type: ignore[no-untyped-def]
        app, keys, clock, rows) -> None:
    """On PostgreSQL the second batch meets the first one's new addresses only when it inserts
    them (a unique violation): it writes those items one at a time instead, and loses none."""
    items = [consent(clock, phone=f"+1305555{3000 + i:04d}") for i in range(300)]
    barrier = threading.Barrier(2)
    answers: list[dict] = []  # type: ignore[type-arg]

    def send(order: int) -> None:
        own = app.test_client()
        barrier.wait()
        answer = own.post("/v1/consents/batch", json={"items": items[::order]}, headers=keys["writer"])
        answers.append(answer.get_json())

    threads = [threading.Thread(target=send, args=(order,)) for order in (1, -1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [(a["created"], a["failed"]) for a in answers] == [(300, 0), (300, 0)]
    people = {r["identity_id"] for a in answers for r in a["results"]}
    assert len(people) == 300
    assert len(rows(ConsentEvent)) == 600 and len(rows(ContactPoint)) == 300
    assert app.test_client().get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True


def test_batch_limit(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/consents/batch", json={"items": [{}] * 10_001}, headers=keys["writer"])
    assert answer.status_code == 422


def test_batch_limit_is_configurable(client, keys, clock, runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"max_batch": 2}))
    items = [consent(clock, phone=f"+1305555{2000 + i:04d}") for i in range(3)]
    answer = client.post("/v1/consents/batch", json={"items": items}, headers=keys["writer"])
    assert answer.status_code == 422 and answer.get_json()["errors"][0]["field"] == "items"
    assert client.post("/v1/eligibility/batch", json={"items": [{}] * 3}, headers=keys["sender"]).status_code == 422


proof_like = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}",
              st.sampled_from(["http", "https", "HTTP", "ftp", "https:", ""]),
              st.text(alphabet="abcXYZ09.-:[]@ ", max_size=15),
              st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=25)))


@given(proof_like)
@settings(max_examples=400)
def test_the_quick_proof_uri_check_agrees_with_splitting_it(value: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:
        assert not _is_web_uri(value)
        return
    assert _is_web_uri(value) == (parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value)
