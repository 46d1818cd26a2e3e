"""Erasure that never re-enables contact: tombstones, blanked values, a chain that still verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import String, Text, inspect, text

from consentgate.cli import cli
from consentgate.jobs import run_once
from consentgate.store.models import DecisionRecord, ErasureEvent, Identity, Tombstone

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
PHONE, EMAIL = "+13055550177", "erin.erased@corp.com"


@pytest.fixture
def person(client, keys, clock, runtime):  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    ident = client.post("/v1/identities", json={"phone": PHONE, "email": EMAIL, "external_id": "crm-erase-1",
                                                "attributes": {"name": "Erin Erased", "timezone": "America/New_York"}},
                        headers=keys["writer"]).get_json()["identity_id"]
    for channel, address in (("sms", {"phone": PHONE}), ("email", {"email": EMAIL})):
        client.post("/v1/consents", json={**address, "channel": channel, "purpose": "marketing",
                                          "consent_type": "express_written", "source": "web_form",
                                          "captured_at": (NOON_ET - timedelta(days=30)).isoformat(),
                                          "proof_uri": "https://proof.example.com/erin", "ip": "198.51.100.23",
                                          "user_agent": "ErinBrowser/1.0"}, headers=keys["writer"])
    # An SMS STOP and an email unsubscribe, then the deletion request.
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms", "voice"], "source": "sms_keyword",
                                         "raw_text": "STOP texting Erin",
                                         "reason": "her husband Bob Erased called in"}, headers=keys["writer"])
    link = client.post("/v1/unsubscribe-links", json={"email": EMAIL}, headers=keys["sender"]).get_json()
    path = link["url"].removeprefix(runtime.settings.public_url)
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing"},
                headers=keys["sender"])
    return ident


def _allowed(client, keys, channel, **address):  # type: ignore[no-untyped-def]
    body = client.post("/v1/eligibility", json={**address, "channel": channel, "purpose": "marketing"},
                       headers=keys["sender"]).get_json()
    return body["allowed"], {r["code"] for r in body["reasons"]}


def _text_values(store) -> list[str]:  # type: ignore[no-untyped-def]
    """Every text value of every table: an erasure must leave none of the person's."""
    values = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(table)
                       if isinstance(c["type"], String | Text) or "JSON" in str(c["type"]).upper()]
            for column in columns:
                for (value,) in conn.execute(text(f'SELECT "{column}" FROM "{table}"')):
                    if value is not None:
                        values.append(str(value))
    return values


def test_erased_opt_out_stays_denied_and_nothing_personal_remains(client, keys, person, runtime, store, rows, clock,
                                                                  tmp_path, cli_env) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True
    # The decision log keeps where the person was (for replays) until they are erased.
    assert [d.request["placed"]["timezone"] for d in rows(DecisionRecord)] == ["America/New_York"]
    erased = client.delete(f"/v1/identities/{person}?law=CCPA%201798.105&reason=consumer%20request",
                           headers=keys["admin"])
    assert erased.status_code == 200, erased.get_json()
    assert erased.get_json()["tombstones"] >= 2
    assert [d.request.get("placed") for d in rows(DecisionRecord)] == [None]

    leftovers = "\n".join(_text_values(store))
    for secret in ("3055550177", "erin.erased", "Erin Erased", "crm-erase-1", "198.51.100.23",
                   "ErinBrowser", "STOP texting Erin", "Bob Erased"):
        assert secret.lower() not in leftovers.lower(), secret
    verify = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert verify["ok"] is True, verify
    [event] = rows(ErasureEvent)
    assert event.law == "CCPA 1798.105" and event.reason == "consumer request"

    # They come back through the API in another format, and through a CSV import.
    again = client.post("/v1/identities", json={"phone": "(305) 555-0177", "email": "ERIN.ERASED@corp.com"},
                        headers=keys["writer"])
    assert again.status_code == 201
    assert _allowed(client, keys, "sms", phone="305.555.0177")[0] is False
    assert _allowed(client, keys, "email", email=EMAIL)[0] is False
    cli_env()
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text("phone,email,channel,purpose,consent_type,captured_at,source\n"
                        f"1-305-555-0177,Erin.Erased@Corp.com,email,marketing,implied_ebr,"
                        f"{(NOON_ET - timedelta(days=1)).isoformat()},crm_import\n")
    result = CliRunner().invoke(cli, ["import", "consents", str(csv_file)])
    assert result.exit_code == 0, result.output
    sms_allowed, sms_codes = _allowed(client, keys, "sms", phone=PHONE)
    assert not sms_allowed and sms_codes & {"REVOKED", "DNC_INTERNAL"}
    email_allowed, email_codes = _allowed(client, keys, "email", email=EMAIL)
    assert not email_allowed and email_codes & {"REVOKED", "DNC_INTERNAL"}

    # A new, proven express written opt-in lifts the tombstone for that channel only.
    clock.set(NOON_ET + timedelta(hours=1))
    client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "web_form",
                                      "captured_at": clock.now.isoformat(),
                                      "proof_uri": "https://proof.example.com/erin-again"}, headers=keys["writer"])
    assert _allowed(client, keys, "sms", phone=PHONE)[0] is True
    assert _allowed(client, keys, "voice", phone=PHONE)[0] is False
    assert _allowed(client, keys, "email", email=EMAIL)[0] is False


def test_a_litigator_stays_stopped_on_every_address_after_erasure(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    """Litigator and legal hold stop the whole person however they were recorded (here by
    identity id): erased, every address they had keeps a tombstone."""
    clock.set(NOON_ET)
    phone, email = "+13055550178", "lit.igator@corp.com"
    person = client.post("/v1/identities", json={"phone": phone, "email": email},
                         headers=keys["writer"]).get_json()["identity_id"]
    made = client.post("/v1/suppressions", json={"identity_id": person, "kind": "litigator"}, headers=keys["writer"])
    assert made.status_code == 201, made.get_json()
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 200
    for address, channel in (({"phone": phone}, "sms"), ({"email": email}, "email")):
        client.post("/v1/consents", json={**address, "channel": channel, "purpose": "marketing",
                                          "consent_type": "double_opt_in" if channel == "email" else "express",
                                          "source": "crm", "captured_at": NOON_ET.isoformat()},
                    headers=keys["writer"])
        allowed, codes = _allowed(client, keys, channel, **address)
        assert not allowed and "DNC_INTERNAL" in codes, (channel, codes)


def test_an_opt_out_left_on_one_address_stops_sends_to_the_others(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    """Someone who opted out of everything by email and was erased comes back with that email
    and a number never seen before: the tombstone on the email stops a text to the new number,
    whichever address the check names."""
    clock.set(NOON_ET)
    email, new_phone = "otto.optout@corp.com", "+13055550179"
    first = client.post("/v1/identities", json={"email": email}, headers=keys["writer"]).get_json()["identity_id"]
    stop = client.post("/v1/revocations", json={"email": email, "channels": ["*"], "source": "email_link"},
                       headers=keys["writer"])
    assert stop.status_code == 201, stop.get_json()
    assert client.delete(f"/v1/identities/{first}", headers=keys["admin"]).status_code == 200

    again = client.post("/v1/identities", json={"phone": new_phone, "email": email}, headers=keys["writer"])
    assert again.status_code == 201
    client.post("/v1/consents", json={"phone": new_phone, "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "web_form",
                                      "captured_at": (NOON_ET - timedelta(days=1)).isoformat(),
                                      "proof_uri": "https://proof.example.com/otto"}, headers=keys["writer"])
    for address in ({"phone": new_phone}, {"identity_id": again.get_json()["identity_id"]}):
        allowed, codes = _allowed(client, keys, "sms", **address)
        assert not allowed and "DNC_INTERNAL" in codes, (address, codes)


def test_tombstones_are_chained_with_their_erasure_until_they_expire(  # type: ignore[no-untyped-def]
        client, keys, person, runtime, clock, rows) -> None:
    """A tombstone narrowed or removed in the database before it expires (the address contactable
    again) breaks verification at its erasure; once expired, the retention job may purge it."""
    from sqlalchemy import text as sql_text

    def verify() -> dict:  # type: ignore[type-arg]
        return client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()  # type: ignore[no-any-return]

    def sql(statement: str) -> None:
        with runtime.store.engine.begin() as conn:
            conn.execute(sql_text(statement))

    erased = client.delete(f"/v1/identities/{person}", headers=keys["admin"]).get_json()
    assert erased["tombstones"] >= 2 and verify()["ok"] is True
    first = min(t.id for t in rows(Tombstone))
    expected = ("erasure_event", erased["erasure_id"], "the erasure's tombstones were removed or changed before "
                "they expired")
    with runtime.store.engine.connect() as conn:
        channels = conn.execute(sql_text(f"SELECT channels FROM tombstone WHERE id = {first}")).scalar_one()
    sql(f"UPDATE tombstone SET channels = '[\"voice\"]' WHERE id = {first}")
    broken = verify()["first_broken"]
    assert (broken["table"], broken["row_id"], broken["problem"]) == expected
    stored = channels if isinstance(channels, str) else json.dumps(channels)   # SQLite gives the text back
    sql(f"UPDATE tombstone SET channels = '{stored}' WHERE id = {first}")
    assert verify()["ok"] is True
    sql(f"DELETE FROM tombstone WHERE id = {first}")
    broken = verify()["first_broken"]
    assert (broken["table"], broken["row_id"], broken["problem"]) == expected

    clock.set(NOON_ET + timedelta(days=365 * 5 + 10))
    run_once(runtime, "tombstone_retention")
    assert rows(Tombstone) == [] and verify()["ok"] is True


def test_retention_job_purges_expired_tombstones(client, keys, person, runtime, clock, rows) -> None:  # type: ignore[no-untyped-def]
    client.delete(f"/v1/identities/{person}", headers=keys["admin"])
    assert rows(Tombstone)
    clock.set(NOON_ET + timedelta(days=365 * 5 - 10))
    run_once(runtime, "tombstone_retention")
    assert rows(Tombstone)
    clock.set(NOON_ET + timedelta(days=365 * 5 + 10))
    run_once(runtime, "tombstone_retention")
    assert rows(Tombstone) == []


def test_erasure_needs_admin_and_an_existing_person(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    assert client.delete(f"/v1/identities/{person}", headers=keys["writer"]).status_code == 403
    assert client.delete("/v1/identities/999999", headers=keys["admin"]).status_code == 404
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 200
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 404
    view = client.get(f"/v1/identities/{person}", headers=keys["auditor"]).get_json()
    assert view["erased"] is True and all(cp["value"] is None for cp in view["contact_points"])


def test_checks_by_the_id_of_an_erased_person_are_denied(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    """An erased person has no address left: a check naming their id is a denial, not an error."""
    client.delete(f"/v1/identities/{person}", headers=keys["admin"])
    item = {"identity_id": person, "channel": "sms", "purpose": "marketing"}
    for body in (item, {**item, "reserve": True}):
        answer = client.post("/v1/eligibility", json=body, headers=keys["sender"])
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["allowed"] is False and answer.get_json()["reasons"]
    batch = client.post("/v1/eligibility/batch", json={"items": [item, {**item, "reserve": True}]},
                        headers=keys["sender"])
    assert batch.status_code == 200, batch.get_json()
    assert [d["allowed"] for d in batch.get_json()["decisions"]] == [False, False]


def test_reports_and_evidence_show_erased_records_as_erased(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    client.delete(f"/v1/identities/{person}", headers=keys["admin"])
    consents = client.get("/v1/reports/consents", headers=keys["auditor"]).get_json()
    assert consents and all(r["erased"] and r["address"] is None and r["ip"] is None for r in consents)
    revocations = client.get("/v1/reports/revocations?format=csv", headers=keys["auditor"]).get_data(as_text=True)
    assert "3055550177" not in revocations and "STOP texting" not in revocations
    bundle = client.get(f"/v1/identities/{person}/evidence", headers=keys["auditor"]).get_json()
    assert bundle["erasures"] and bundle["identity"]["erased"] is True
    assert all(cp["value"] is None and cp["erased"] for cp in bundle["contact_points"])
    assert all(r["raw_text"] is None and r["erased"] for r in bundle["revocations"])
    import json as _json
    text = _json.dumps(bundle).lower()
    for secret in ("erin.erased", "erin erased", "3055550177", "198.51.100.23", "erinbrowser"):
        assert secret not in text, text[max(0, text.find(secret) - 120):text.find(secret) + 60]


def test_decisions_made_before_anyone_had_the_address_lose_it_on_erasure(  # type: ignore[no-untyped-def]
        client, keys, clock, rows) -> None:
    """Senders asked about a number before anyone in the store had it; the person who later has
    it asks to be erased: those decisions (which have no identity) lose the number too, while
    decisions about other unknown numbers keep theirs."""
    from consentgate.store.models import DecisionRecord

    clock.set(NOON_ET)
    later, other = "+13055550181", "+13055550182"
    ask = {"channel": "sms", "purpose": "marketing"}
    client.post("/v1/eligibility", json={"phone": "(305) 555-0181", **ask}, headers=keys["sender"])
    client.post("/v1/eligibility/batch", json={"items": [{"phone": later, **ask}, {"phone": other, **ask}]},
                headers=keys["sender"])
    before = rows(DecisionRecord)
    assert len(before) == 3 and all(d.identity_id is None and d.address_hash for d in before)
    assert {d.address_hash for d in before if d.request["address"]["value"] == later} != {
        d.address_hash for d in before if d.request["address"]["value"] == other}

    made = client.post("/v1/identities", json={"phone": later}, headers=keys["writer"]).get_json()
    assert client.delete(f"/v1/identities/{made['identity_id']}", headers=keys["admin"]).status_code == 200
    after = {d.id: d for d in rows(DecisionRecord)}
    for decision in before:
        kept = after[decision.id]
        if decision.request["address"]["value"] == later:
            assert kept.request["address"] == {"kind": "phone", "value": None, "erased": True}
            assert kept.address_hash is None
            assert (kept.allowed, kept.codes) == (decision.allowed, decision.codes)
        else:
            assert kept.request == decision.request and kept.address_hash == decision.address_hash
    assert later not in str([d.request for d in after.values()])


def test_older_decisions_about_unknown_addresses_are_found_once_hashed(  # type: ignore[no-untyped-def]
        client, keys, clock, rows, runtime, store, cli_env) -> None:
    """Decisions logged before migration 0006 have no address hash; `consentgate db
    hash-decisions` gives them one (once, in small steps), and erasure then finds them."""
    from consentgate.services.erasure import hash_unknown_decisions
    from consentgate.store.models import DecisionRecord

    clock.set(NOON_ET)
    phones = [f"+1305555{300 + i:04d}" for i in range(7)]
    client.post("/v1/eligibility/batch", json={"items": [{"phone": p, "channel": "sms", "purpose": "marketing"}
                                                         for p in phones]}, headers=keys["sender"])
    client.post("/v1/eligibility", json={"identity_id": 999, "channel": "sms", "purpose": "marketing"},
                headers=keys["sender"])   # names no address: nothing to hash
    with store.engine.begin() as conn:   # as logged before 0006
        conn.execute(text("UPDATE decision SET address_hash = NULL"))
    cli_env()
    result = CliRunner().invoke(cli, ["db", "hash-decisions"])
    assert result.exit_code == 0, result.output
    assert "7 decisions" in result.output
    assert hash_unknown_decisions(runtime.store, runtime.secret_key, chunk=2) == 0   # done already
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE decision SET address_hash = NULL"))
    assert hash_unknown_decisions(runtime.store, runtime.secret_key, chunk=2) == 7   # chunk by chunk

    made = client.post("/v1/identities", json={"phone": phones[3]}, headers=keys["writer"]).get_json()
    assert client.delete(f"/v1/identities/{made['identity_id']}", headers=keys["admin"]).status_code == 200
    requests = [d.request for d in rows(DecisionRecord)]
    assert phones[3] not in str(requests)
    assert all(p in str(requests) for p in phones if p != phones[3])


def test_a_decision_by_identity_id_about_someone_since_erased_is_not_replayed(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    asked = client.post("/v1/eligibility", json={"identity_id": person, "channel": "sms", "purpose": "marketing"},
                        headers=keys["sender"]).get_json()
    assert client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).status_code == 200
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 200
    # Their addresses and consents are gone: a replay could only answer differently, as if the
    # gate could not reproduce its own decision.
    assert client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).status_code == 409


def test_erasure_takes_where_the_person_was_out_of_the_decisions_reasons(  # type: ignore[no-untyped-def]
        client, keys, person, clock, rows) -> None:
    clock.set(NOON_ET + timedelta(hours=10))      # 22:00 in New York: outside calling hours
    client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": "informational",
                                      "consent_type": "express", "source": "web_form",
                                      "captured_at": NOON_ET.isoformat()}, headers=keys["writer"])
    late = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "informational"},
                       headers=keys["sender"]).get_json()
    assert [r["zone"] for r in late["reasons"] if r["code"] == "QUIET_HOURS"] == ["America/New_York"]
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 200
    logged = {d.id: d for d in rows(DecisionRecord)}[late["decision_id"]]
    assert sorted(r["code"] for r in logged.reasons) == sorted(r["code"] for r in late["reasons"])
    text = str(logged.reasons)
    for personal in ("America/New_York", "-05:00", "22:00"):
        assert personal not in text, personal
    [identity] = [i for i in rows(Identity) if i.id == person]
    assert identity.account_domain is None
