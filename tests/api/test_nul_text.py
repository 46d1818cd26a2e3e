"""Text with NUL (U+0000), which PostgreSQL cannot store, is refused naming the field, on both stores."""

from __future__ import annotations

import json

import pytest

from consentgate.store.models import ConsentEvent, DecisionRecord, Identity, Revocation, Suppression, Touch

NUL = "cr\x00m"
WHEN = "2026-11-01T00:00:00Z"


def _post(client, path: str, body: dict, headers: dict):  # type: ignore[no-untyped-def, type-arg]
    return client.post(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize(("path", "role", "body", "field", "table"), [
    ("/v1/identities", "writer", {"email": "a@corp.com", "external_id": NUL}, "external_id", Identity),
    ("/v1/identities", "writer", {"email": "a@corp.com", "status_at_last_touch": NUL}, "status_at_last_touch",
     Identity),
    ("/v1/identities", "writer", {"email": "a@corp.com", "attributes": {"name": f"Ada{NUL}"}}, "attributes",
     Identity),
    ("/v1/consents", "writer", {"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                                "consent_type": "double_opt_in", "captured_at": WHEN, "source": NUL}, "source",
     ConsentEvent),
    ("/v1/consents", "writer", {"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                                "consent_type": "double_opt_in", "captured_at": WHEN, "source": "web",
                                "user_agent": NUL}, "user_agent", ConsentEvent),
    ("/v1/revocations", "writer", {"email": "a@corp.com", "channels": ["email", NUL], "source": "api"}, "channels",
     Revocation),
    ("/v1/suppressions", "writer", {"email": "a@corp.com", "kind": "bounce", "note": NUL}, "note", Suppression),
    ("/v1/eligibility", "sender", {"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                                   "campaign": NUL}, "campaign", DecisionRecord),
    ("/v1/touches", "sender", {"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                               "campaign": NUL}, "campaign", Touch),
])
def test_nul_in_a_body_is_refused_naming_the_field_and_nothing_is_written(  # type: ignore[no-untyped-def]
        client, keys, rows, path, role, body, field, table) -> None:
    answer = _post(client, path, body, keys[role])
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    assert [e["field"] for e in answer.get_json()["errors"]] == [field]
    assert rows(table) == []


def test_a_batch_item_with_nul_answers_alone(client, keys) -> None:  # type: ignore[no-untyped-def]
    answer = _post(client, "/v1/eligibility/batch", {"items": [
        {"email": "a@corp.com", "channel": "email", "purpose": "marketing", "campaign": NUL},
        {"email": "b@corp.com", "channel": "email", "purpose": "marketing"}]}, keys["sender"])
    first, second = answer.get_json()["decisions"]
    assert first["status"] == 422 and [e["field"] for e in first["errors"]] == ["items[0].campaign"]
    assert [r["code"] for r in second["reasons"]] == ["UNKNOWN_IDENTITY"]


def test_nul_in_a_report_filter_is_refused(client, keys) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/v1/reports/consents?channel=e%00mail", headers=keys["auditor"])
    assert answer.status_code == 422
    assert [e["field"] for e in answer.get_json()["errors"]] == ["channel"]
