"""Instants a calculation cannot reach (before 1900, after 2999, or beyond Python's datetime once
in UTC) are refused naming the field, never a 500 or a broken report stream."""

from __future__ import annotations

import pytest

from consentgate.store.models import ConsentEvent

OUT_OF_RANGE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T23:59:59Z",
                "3000-01-01T00:00:00Z"]


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_a_body_instant_out_of_range_is_refused(client, keys, rows, instant: str) -> None:  # type: ignore[no-untyped-def]
    consent = client.post("/v1/consents", json={"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                                                "consent_type": "double_opt_in", "source": "web",
                                                "captured_at": instant}, headers=keys["writer"])
    assert consent.status_code == 422
    assert [e["field"] for e in consent.get_json()["errors"]] == ["captured_at"]
    assert rows(ConsentEvent) == []
    check = client.post("/v1/eligibility", json={"email": "a@corp.com", "channel": "email", "purpose": "marketing",
                                                 "at": instant}, headers=keys["sender"])
    assert check.status_code == 422
    assert [e["field"] for e in check.get_json()["errors"]] == ["at"]


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_a_report_bound_out_of_range_is_refused_before_streaming(client, keys, instant: str) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/v1/reports/consents", query_string={"since": instant}, headers=keys["auditor"])
    assert answer.status_code == 422
    assert [e["field"] for e in answer.get_json()["errors"]] == ["since"]


def test_a_check_late_in_the_range_still_finds_its_next_window(client, keys) -> None:  # type: ignore[no-untyped-def]
    # 03:00 on the last night of 2999 in New York: quiet hours, next window in the morning.
    client.post("/v1/consents", json={"phone": "+12125550123", "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "web",
                                      "captured_at": "2026-11-01T00:00:00Z",
                                      "proof_uri": "https://proof.example.com/1"}, headers=keys["writer"])
    answer = client.post("/v1/eligibility", json={"phone": "+12125550123", "channel": "sms", "purpose": "marketing",
                                                  "at": "2999-12-31T08:00:00Z"}, headers=keys["sender"])
    assert answer.status_code == 200
    assert answer.get_json()["next_allowed_at"] == "2999-12-31T13:00:00Z"
