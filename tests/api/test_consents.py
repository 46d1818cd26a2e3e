"""Consent events: provenance, validation, idempotency, batches."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.services.consents import _is_web_uri
from consentgate.store.models import ChainEntry, ConsentEvent


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
