"""Ids no row can have (beyond PostgreSQL's integer range) are refused up front, never a 500."""

from __future__ import annotations

import json

import pytest

from consentgate.store.models import MAX_ID

TOO_BIG = [MAX_ID + 1, 2**63, 2**64]


def _post(client, path: str, body: dict, headers: dict):  # type: ignore[no-untyped-def, type-arg]
    # Serialised here: the test client's own JSON encoder stops at 64-bit integers.
    return client.post(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("big", TOO_BIG)
@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v1/identities/{}"), ("get", "/v1/identities/{}/timeline"), ("get", "/v1/identities/{}/evidence"),
    ("delete", "/v1/identities/{}"), ("delete", "/v1/reservations/{}"), ("get", "/v1/consents/{}/receipt"),
    ("post", "/v1/decisions/{}/replay"), ("delete", "/v1/subscriptions/{}"),
])
def test_an_id_in_a_path_beyond_any_row_is_not_found(client, keys, method: str, path: str, big: int) -> None:  # type: ignore[no-untyped-def]
    answer = getattr(client, method)(path.format(big), headers=keys["admin"])
    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"


@pytest.mark.parametrize("big", TOO_BIG)
def test_an_id_in_a_body_beyond_any_row_is_refused_naming_the_field(client, keys, big: int) -> None:  # type: ignore[no-untyped-def]
    check = _post(client, "/v1/eligibility", {"identity_id": big, "channel": "sms", "purpose": "marketing"},
                  keys["sender"])
    assert check.status_code == 422
    assert [e["field"] for e in check.get_json()["errors"]] == ["identity_id"]

    touch = _post(client, "/v1/touches", {"reservation_id": big}, keys["sender"])
    assert touch.status_code == 422
    assert [e["field"] for e in touch.get_json()["errors"]] == ["reservation_id"]

    person = _post(client, "/v1/identities", {"email": "ids@corp.com"}, keys["writer"]).get_json()["identity_id"]
    merge = _post(client, f"/v1/identities/{person}/merge", {"other_identity_id": big}, keys["writer"])
    assert merge.status_code == 422
    assert [e["field"] for e in merge.get_json()["errors"]] == ["other_identity_id"]

    batch = _post(client, "/v1/eligibility/batch", {"items": [
        {"identity_id": big, "channel": "sms", "purpose": "marketing"},
        {"identity_id": person, "channel": "email", "purpose": "marketing"}]}, keys["sender"])
    assert batch.status_code == 200
    first, second = batch.get_json()["decisions"]
    assert first["status"] == 422 and [e["field"] for e in first["errors"]] == ["items[0].identity_id"]
    assert "decision_id" in second


def test_the_largest_id_is_still_looked_up(client, keys) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/v1/identities/{MAX_ID}", headers=keys["admin"]).status_code == 404
    check = _post(client, "/v1/eligibility", {"identity_id": MAX_ID, "channel": "sms", "purpose": "marketing"},
                  keys["sender"])
    assert check.status_code == 200
    assert [r["code"] for r in check.get_json()["reasons"]] == ["UNKNOWN_IDENTITY"]


def test_the_openapi_document_gives_path_ids_their_range(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").get_json()
    [param] = spec["paths"]["/v1/identities/{identity_id}"]["get"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}
