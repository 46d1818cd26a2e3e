"""Auditor reports: every format, filters, formula safety, SLA states, opt-out attribution."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from consentgate.store.models import OutboxMessage, Touch

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def consent(client, keys, **over):  # type: ignore[no-untyped-def]
    body = {"email": "a@corp.com", "channel": "email", "purpose": "marketing", "consent_type": "double_opt_in",
            "captured_at": (NOON_ET - timedelta(days=1)).isoformat(), "source": "web_form"}
    body.update(over)
    assert client.post("/v1/consents", json=body, headers=keys["writer"]).status_code == 201


def report(client, keys, name, **params):  # type: ignore[no-untyped-def]
    answer = client.get(f"/v1/reports/{name}", query_string=params, headers=keys["auditor"])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    fmt = params.get("format", "json")
    text = answer.get_data(as_text=True)
    if fmt == "csv":
        assert answer.mimetype == "text/csv" and text.startswith(text.split("\r\n")[0] + "\r\n")
        return list(csv.DictReader(io.StringIO(text)))
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text)


@pytest.fixture(autouse=True)
def _noon(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)


def test_consent_report_in_every_format_with_filters(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys, ip="203.0.113.7", brand="acme")
    consent(client, keys, email="b@corp.com", source="=HYPERLINK(\"http://evil\")", consent_text="+1 call me")
    rows = report(client, keys, "consents")
    assert [r["address"] for r in rows] == ["a@corp.com", "b@corp.com"]
    assert rows[0]["ip"] == "203.0.113.7" and rows[0]["recorded_at"].endswith("Z")
    assert len(report(client, keys, "consents", format="jsonl")) == 2
    assert [r["brand"] for r in report(client, keys, "consents", brand="acme")] == ["acme"]
    as_csv = report(client, keys, "consents", format="csv")
    assert as_csv[1]["source"] == "'=HYPERLINK(\"http://evil\")" and as_csv[1]["consent_text"] == "'+1 call me"
    assert report(client, keys, "consents", since=(NOON_ET + timedelta(seconds=1)).isoformat()) == []


def test_test_records_stay_out(client, keys) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "qa@example.com", "test_record": True}, headers=keys["writer"])
    consent(client, keys, email="qa@example.com")
    client.post("/v1/eligibility", json={"email": "qa@example.com", "channel": "email", "purpose": "marketing"},
                headers=keys["sender"])
    assert report(client, keys, "consents") == [] and report(client, keys, "decisions") == []


def test_revocation_sla_states(client, keys, clock, runtime) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/subscriptions", json={"name": "crm", "url": "https://crm.example.com/h"}, headers=keys["admin"])
    for email in ("met@corp.com", "late@corp.com", "open@corp.com"):
        client.post("/v1/revocations", json={"email": email, "channels": ["email"], "source": "api"},
                    headers=keys["writer"])
    deadline = datetime.fromisoformat(report(client, keys, "revocations")[0]["deadline_at"].replace("Z", "+00:00"))
    from consentgate.services.propagation import deliver_due

    deliver_due(runtime.store, NOON_ET, lambda url, body, headers: 200 if b"met@" in body else 500)
    with runtime.store.transaction() as session:
        from sqlmodel import select

        for message in session.exec(select(OutboxMessage)):
            if b"late@" in json.dumps(message.payload).encode():
                message.status, message.acknowledged_at = "acknowledged", deadline + timedelta(hours=1)
                session.add(message)
    rows = {r["address"]: r for r in report(client, keys, "revocations")}
    assert rows["met@corp.com"]["sla_status"] == "met"
    assert rows["met@corp.com"]["latency_business_days"] == 0
    assert rows["met@corp.com"]["downstream"][0]["status"] == "acknowledged"
    assert rows["late@corp.com"]["sla_status"] == "missed"
    assert rows["open@corp.com"]["sla_status"] == "pending"
    # Thanksgiving (26 Nov) does not count: two business days before 10 December is 8 December.
    clock.set(datetime(2026, 12, 8, 15, 0, tzinfo=UTC))
    assert {r["address"]: r["sla_status"] for r in report(client, keys, "revocations")}["open@corp.com"] == "at_risk"
    clock.set(datetime(2026, 12, 4, 15, 0, tzinfo=UTC))
    assert report(client, keys, "revocations", sla_status="pending")[0]["address"] == "open@corp.com"
    clock.set(deadline + timedelta(seconds=1))
    assert [r["address"] for r in report(client, keys, "revocations", sla_status="missed")] == [
        "late@corp.com", "open@corp.com"]


def test_decision_report_filters(client, keys) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "d@corp.com"}, headers=keys["writer"])
    for email in ("d@corp.com", "nobody@corp.com"):
        client.post("/v1/eligibility", json={"email": email, "channel": "email", "purpose": "marketing",
                                             "campaign": "c1"}, headers=keys["sender"])
    rows = report(client, keys, "decisions")
    assert [r["allowed"] for r in rows] == [True, False]
    assert rows[0]["campaign"] == "c1" and rows[0]["policy_version"]
    assert [r["codes"] for r in report(client, keys, "decisions", code="UNKNOWN_IDENTITY")] == [["UNKNOWN_IDENTITY"]]
    assert len(report(client, keys, "decisions", allowed="true")) == 1
    assert report(client, keys, "decisions", format="csv")[1]["codes"] == "UNKNOWN_IDENTITY"


def test_optout_attribution(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    ids = {}
    for i in range(4):
        ids[i] = client.post("/v1/identities", json={"email": f"p{i}@corp.com"},
                             headers=keys["writer"]).get_json()["identity_id"]
    with runtime.store.transaction() as session:
        for i, campaign in enumerate(["spring", "spring", "spring", "winback"]):
            at = NOON_ET - timedelta(hours=3)
            session.add(Touch(identity_id=ids[i], channel="email", purpose="marketing", campaign=campaign,
                              segment="churned", state="sent", at=at, sent_at=at, created_at=at))
    client.post("/v1/revocations", json={"email": "p0@corp.com", "channels": ["email"], "source": "api"},
                headers=keys["writer"])
    client.post("/v1/suppressions", json={"email": "p3@corp.com", "kind": "complaint"}, headers=keys["writer"])
    rows = {r["group"]: r for r in report(client, keys, "optouts", group_by="campaign")}
    assert rows["spring"] == {"group": "spring", "group_by": "campaign", "touches": 3, "optouts": 1, "complaints": 0,
                              "optout_rate": round(1 / 3, 6), "complaint_rate": 0.0}
    assert rows["winback"]["complaints"] == 1 and rows["winback"]["complaint_rate"] == 1.0
    by_segment = report(client, keys, "optouts", group_by="segment")
    assert [(r["group"], r["touches"], r["optouts"]) for r in by_segment] == [("churned", 4, 1)]


def test_an_opt_out_is_blamed_on_the_touch_it_answers_and_a_closed_repermission_on_none(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock) -> None:
    """A STOP answers a text: it is attributed to the last SMS, not to a later call, though it
    stops calls too. A re-permission request closed for want of an answer is no opt-out."""
    from consentgate.jobs import run_once

    clock.set(NOON_ET)
    phone, silent = "+13055550160", "quiet@corp.com"
    person = client.post("/v1/identities", json={"phone": phone}, headers=keys["writer"]).get_json()["identity_id"]
    with runtime.store.transaction() as session:
        for channel, campaign, hours in (("sms", "text-blast", 5), ("voice", "call-list", 2)):
            at = NOON_ET - timedelta(hours=hours)
            session.add(Touch(identity_id=person, channel=channel, purpose="marketing", campaign=campaign,
                              state="sent", at=at, sent_at=at, created_at=at))
    client.post("/v1/revocations", json={"phone": phone, "channels": ["sms", "voice"], "source": "sms_keyword",
                                         "raw_text": "STOP"}, headers=keys["writer"])
    client.post("/v1/consents", json={"email": silent, "channel": "email", "purpose": "repermission",
                                      "consent_type": "uncertain", "source": "legacy_crm",
                                      "captured_at": (NOON_ET - timedelta(days=400)).isoformat()},
                headers=keys["writer"])
    client.post("/v1/touches", json={"email": silent, "channel": "email", "purpose": "repermission",
                                     "campaign": "ask-again", "sent_at": NOON_ET.isoformat()}, headers=keys["sender"])
    clock.set(NOON_ET + runtime.policy.policy.repermission.window + timedelta(hours=1))
    run_once(runtime, "repermission_window")
    assert client.get(f"/v1/identities?email={silent}", headers=keys["auditor"]).get_json()["revocations"]

    rows = {r["group"]: r for r in report(client, keys, "optouts", group_by="campaign")}
    assert {group: row["optouts"] for group, row in rows.items()} == {"text-blast": 1, "call-list": 0,
                                                                      "ask-again": 0}


def test_an_opt_out_is_blamed_on_a_reservation_only_while_it_holds(client, keys, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    """A STOP may answer a text whose reservation the sender has yet to confirm as sent; a
    reservation that lapsed before the reply never went out, and the text before it gets the blame."""
    clock.set(NOON_ET)
    people = {}
    for phone, (label, state, expires) in {"+13055550161": ("live", "reserved", timedelta(minutes=5)),
                                           "+13055550162": ("lapsed", "reserved", -timedelta(minutes=5)),
                                           "+13055550163": ("released", "released", timedelta(minutes=5))}.items():
        people[phone] = client.post("/v1/identities", json={"phone": phone},
                                    headers=keys["writer"]).get_json()["identity_id"]
        with runtime.store.transaction() as session:
            sent = NOON_ET - timedelta(hours=5)
            session.add(Touch(identity_id=people[phone], channel="sms", purpose="marketing", campaign="older-text",
                              state="sent", at=sent, sent_at=sent, created_at=sent))
            at = NOON_ET - timedelta(minutes=30)
            session.add(Touch(identity_id=people[phone], channel="sms", purpose="marketing", campaign=label,
                              state=state, at=at, reserved_at=at, expires_at=NOON_ET + expires, created_at=at))
    for phone in people:
        client.post("/v1/revocations", json={"phone": phone, "channels": ["sms"], "source": "sms_keyword",
                                             "raw_text": "STOP"}, headers=keys["writer"])

    rows = {r["group"]: r["optouts"] for r in report(client, keys, "optouts", group_by="campaign")}
    # The live reservation answers the first STOP; the lapsed and the released ones answer none
    # (a group with neither sends nor opt-outs is not listed).
    assert rows == {"live": 1, "older-text": 2}


def test_a_complaint_is_blamed_on_the_last_email_even_after_a_merge(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    """A merge moves the absorbed person's touches to the survivor; their complaint, chained under
    the old id, is still attributed to the email that drew it."""
    older = client.post("/v1/identities", json={"email": "old@corp.com"}, headers=keys["writer"]).get_json()
    newer = client.post("/v1/identities", json={"email": "new@corp.com"}, headers=keys["writer"]).get_json()
    with runtime.store.transaction() as session:
        at = NOON_ET - timedelta(hours=3)
        session.add(Touch(identity_id=newer["identity_id"], channel="email", purpose="marketing", campaign="fall",
                          state="sent", at=at, sent_at=at, created_at=at))
    client.post("/v1/suppressions", json={"email": "new@corp.com", "kind": "complaint"}, headers=keys["writer"])
    merged = client.post(f"/v1/identities/{older['identity_id']}/merge",
                         json={"other_identity_id": newer["identity_id"]}, headers=keys["writer"])
    assert merged.status_code == 200, merged.get_json()
    [row] = report(client, keys, "optouts", group_by="campaign")
    assert (row["group"], row["touches"], row["complaints"]) == ("fall", 1, 1)


def test_reports_name_a_merged_person_by_the_one_they_were_merged_into(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    w = keys["writer"]
    kept = client.post("/v1/identities", json={"email": "kept@corp.com"}, headers=w).get_json()["identity_id"]
    clock.set(NOON_ET + timedelta(seconds=5))
    consent(client, keys, email="gone@corp.com")
    gone = client.get("/v1/identities", query_string={"email": "gone@corp.com"}, headers=w).get_json()["identity_id"]
    client.post("/v1/revocations", json={"email": "gone@corp.com", "channels": ["sms"], "source": "manual"}, headers=w)
    client.post("/v1/eligibility", json={"email": "gone@corp.com", "channel": "email", "purpose": "marketing"},
                headers=keys["sender"])
    assert client.post(f"/v1/identities/{kept}/merge", json={"other_identity_id": gone},
                       headers=w).status_code == 200
    for name in ("consents", "revocations", "decisions"):
        for fmt in ("json", "csv"):
            rows = report(client, keys, name, format=fmt)
            assert [str(row["identity_id"]) for row in rows] == [str(kept)], (name, fmt, rows)


def test_report_access_and_validation(client, keys) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/reports/consents").status_code == 401
    assert client.get("/v1/reports/consents", headers=keys["sender"]).status_code == 403
    bad = client.get("/v1/reports/consents?format=xml", headers=keys["auditor"])
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "format"
    assert client.get("/v1/reports/optouts?group_by=planet", headers=keys["auditor"]).status_code == 422
    assert client.get("/v1/reports/decisions?since=yesterday", headers=keys["auditor"]).status_code == 422


AWKWARD = ["plain", "comma, inside", 'a "quoted" word', "two\nlines", "crlf\r\nend", "back\\slash\\n not a newline",
           "tab\tinside", "=1+2", "-3", "@SUM(A1)", "\ttab first", "ünïcødé ✓", "   "]


def test_consent_csv_matches_json_cell_for_cell(client, keys) -> None:  # type: ignore[no-untyped-def]
    """Whichever way the store builds the CSV, it parses back to the JSON report's values, formula-safe."""
    for i, text in enumerate(AWKWARD):
        consent(client, keys, email=f"p{i}@corp.com", consent_text=text, user_agent=text, brand=None if i % 2 else "b")
    first = report(client, keys, "consents")[0]["identity_id"]
    assert client.delete(f"/v1/identities/{first}", headers=keys["admin"]).status_code == 200
    as_json = report(client, keys, "consents")
    assert as_json[0]["erased"] and not as_json[1]["erased"]
    answer = client.get("/v1/reports/consents", query_string={"format": "csv"}, headers=keys["auditor"])
    raw = answer.get_data(as_text=True)
    assert raw.count("\r\n") == len(AWKWARD) + 1 + 2   # one per row end, header included, plus the one embedded CRLF
    as_csv = list(csv.DictReader(io.StringIO(raw, newline="")))
    def safe(value: str | None) -> str:
        return "'" + value if value and value[0] in "=+-@\t" else value or ""

    stored = [j["consent_text"] for j in as_json]
    assert "two\nlines" in stored and "crlf\r\nend" in stored and "=1+2" in stored
    assert [r["consent_text"] for r in as_csv] == [safe(t) for t in stored]
    assert [r["user_agent"] for r in as_csv] == [safe(j["user_agent"]) for j in as_json]
    for j, c in zip(as_json, as_csv, strict=True):
        assert c["erased"] == ("true" if j["erased"] else "false")
        assert c["consent_id"] == str(j["consent_id"]) and c["captured_at"] == j["captured_at"]
        assert c["brand"] == (j["brand"] or "") and c["expires_at"] == ""


def test_report_instants_are_spelled_as_the_api_spells_them(client, keys) -> None:  # type: ignore[no-untyped-def]
    # One spelling per instant everywhere (no ".000000" in one column and none in the next), so
    # an auditor's text comparison of an export with an API answer holds.
    whole, fraction = NOON_ET - timedelta(days=1), NOON_ET - timedelta(days=1, microseconds=500000)
    consent(client, keys, captured_at=whole.isoformat(), expires_at=(NOON_ET + timedelta(days=30)).isoformat())
    consent(client, keys, email="b@corp.com", captured_at=fraction.isoformat())
    expected = ["2026-11-24T17:00:00Z", "2026-11-24T16:59:59.500000Z"]
    for fmt in ("json", "jsonl", "csv"):
        rows = report(client, keys, "consents", format=fmt)
        assert [r["captured_at"] for r in rows] == expected
        assert [r["recorded_at"] for r in rows] == ["2026-11-25T17:00:00Z"] * 2
        assert rows[0]["expires_at"] == "2026-12-25T17:00:00Z"
    view = client.get("/v1/identities", query_string={"email": "a@corp.com"}, headers=keys["auditor"]).get_json()
    assert [c["captured_at"] for c in view["consents"]] == expected[:1]
