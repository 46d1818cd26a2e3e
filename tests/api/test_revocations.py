"""Revocations and suppressions: scope, deadlines, account scope, evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consentgate.store.models import ContactPoint, Revocation, Suppression


def test_revocation_is_recorded_with_business_day_deadline(client, keys, clock, rows) -> None:  # type: ignore[no-untyped-def]
    clock.set(datetime(2026, 12, 23, 15, 0, tzinfo=UTC))
    answer = client.post("/v1/revocations", json={"phone": "305-555-0160", "channels": ["sms"],
                                                  "source": "api", "raw_text": "stop please"},
                         headers=keys["writer"])
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["effective_at"] == "2026-12-23T15:00:00Z"
    # Christmas and New Year's Day do not count: the 10th business day is Friday 8 January.
    assert body["deadline_at"] == "2027-01-09T04:59:59.999999Z"
    [row] = rows(Revocation)
    assert row.raw_text == "stop please" and row.channels == ["sms"] and row.purposes == ["*"]


def test_account_scope_needs_a_company(client, keys) -> None:  # type: ignore[no-untyped-def]
    free = client.post("/v1/revocations", json={"email": "x@gmail.com", "channels": ["*"], "scope": "account",
                                                "source": "api"}, headers=keys["writer"])
    assert free.status_code == 422 and free.get_json()["errors"][0]["field"] == "scope"
    work = client.post("/v1/revocations", json={"email": "boss@acme.io", "channels": ["*"],
                                                "scope": "account", "source": "manual"}, headers=keys["writer"])
    assert work.status_code == 201
    colleague = client.post("/v1/identities", json={"email": "peer@acme.io"}, headers=keys["writer"]).get_json()
    view = client.get(f"/v1/identities/{colleague['identity_id']}", headers=keys["writer"]).get_json()
    assert [r["scope"] for r in view["revocations"]] == ["account"]


def test_an_account_stop_holds_for_its_author_after_a_merge_into_another_company(  # type: ignore[no-untyped-def]
        client, keys, clock) -> None:
    # Found by tests/api/test_ledger_invariants.py: the survivor's company is kim's, so the stop
    # pat made for all of corp.com had stopped holding for pat.
    noon = datetime(2026, 11, 25, 17, tzinfo=UTC)
    clock.set(noon)
    kim = client.post("/v1/identities", json={"email": "kim@other.org"}, headers=keys["writer"]).get_json()
    pat = client.post("/v1/identities", json={"email": "pat@corp.com", "phone": "+12125550101"},
                      headers=keys["writer"]).get_json()
    client.post("/v1/consents", json={"email": "pat@corp.com", "channel": "email", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "crm",
                                      "captured_at": (noon - timedelta(days=30)).isoformat(),
                                      "proof_uri": "https://proof.example.com/1"}, headers=keys["writer"])
    stop = client.post("/v1/revocations", json={"email": "pat@corp.com", "channels": ["*"], "scope": "account",
                                                "source": "api"},
                       headers=keys["writer"])
    assert stop.status_code == 201
    merged = client.post(f"/v1/identities/{kim['identity_id']}/merge",
                         json={"other_identity_id": pat["identity_id"]}, headers=keys["writer"])
    assert merged.status_code == 200 and merged.get_json()["identity_id"] == kim["identity_id"]
    ask = {"email": "pat@corp.com", "channel": "email", "purpose": "marketing"}
    single = client.post("/v1/eligibility", json=ask, headers=keys["sender"]).get_json()
    assert not single["allowed"] and [r["code"] for r in single["reasons"]] == ["ACCOUNT_DNC"]
    [batched] = client.post("/v1/eligibility/batch", json={"items": [ask]}, headers=keys["sender"]).get_json()[
        "decisions"]
    assert not batched["allowed"] and [r["code"] for r in batched["reasons"]] == ["ACCOUNT_DNC"]


def test_a_company_wide_stop_holds_for_its_people_after_they_merge_with_another_company(  # type: ignore[no-untyped-def]
        client, keys, clock) -> None:
    noon = datetime(2026, 11, 25, 17, tzinfo=UTC)
    clock.set(noon)
    w = keys["writer"]
    ann = client.post("/v1/identities", json={"email": "ann@acme.com"}, headers=w).get_json()
    clock.set(noon + timedelta(seconds=5))
    ben = client.post("/v1/identities", json={"email": "ben@beta.com"}, headers=w).get_json()
    client.post("/v1/identities", json={"email": "cy@beta.com"}, headers=w)
    client.post("/v1/identities", json={"email": "dee@acme.com"}, headers=w)
    stop = {"email": "cy@beta.com", "channels": ["*"], "scope": "account", "source": "manual"}
    assert client.post("/v1/revocations", json=stop, headers=w).status_code == 201

    def allowed(*emails: str) -> list[bool]:
        items = [{"email": e, "channel": "email", "purpose": "marketing"} for e in emails]
        one = [client.post("/v1/eligibility", json=item, headers=keys["sender"]).get_json()["allowed"]
               for item in items]
        batch = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()
        assert [d["allowed"] for d in batch["decisions"]] == one
        return one

    assert allowed("ben@beta.com", "dee@acme.com") == [False, True]
    # Ben is merged into Ann, who is at acme.com: the person keeps acme.com as their company,
    # but ben@beta.com is still an address at beta.com, and beta.com said nobody.
    merged = client.post(f"/v1/identities/{ann['identity_id']}/merge",
                         json={"other_identity_id": ben["identity_id"]}, headers=w)
    assert merged.status_code == 200, merged.get_json()
    assert allowed("ben@beta.com", "dee@acme.com") == [False, True]
    view = client.get(f"/v1/identities/{ann['identity_id']}", headers=w).get_json()
    assert [(r["scope"], r["account_domain"]) for r in view["revocations"]] == [("account", "beta.com")]
    bundle = client.get(f"/v1/identities/{ann['identity_id']}/evidence", headers=keys["auditor"]).get_json()
    assert [r["account_domain"] for r in bundle["account_revocations"]] == ["beta.com"]
    # A company-wide stop said through ben@beta.com now is beta.com's, not acme.com's.
    clock.set(noon + timedelta(minutes=1))
    client.post("/v1/revocations", json={"email": "ben@beta.com", "channels": ["email"], "scope": "account",
                                         "source": "manual"}, headers=w)
    assert allowed("dee@acme.com") == [True]


def test_a_person_with_work_emails_at_two_companies_is_at_both(client, keys) -> None:  # type: ignore[no-untyped-def]
    w = keys["writer"]
    pat = client.post("/v1/identities", json={"email": "pat@alpha.com", "external_id": "crm-pat"},
                      headers=w).get_json()
    client.post("/v1/identities", json={"email": "pat@gamma.com", "external_id": "crm-pat"}, headers=w)
    client.post("/v1/revocations", json={"email": "boss@gamma.com", "channels": ["*"], "scope": "account",
                                         "source": "manual"}, headers=w)
    answer = client.post("/v1/eligibility", json={"email": "pat@alpha.com", "channel": "email",
                                                  "purpose": "marketing"}, headers=keys["sender"]).get_json()
    assert [r["code"] for r in answer["reasons"]] == ["ACCOUNT_DNC"]
    bundle = client.get(f"/v1/identities/{pat['identity_id']}/evidence", headers=keys["auditor"]).get_json()
    assert [r["account_domain"] for r in bundle["account_revocations"]] == ["gamma.com"]


def test_unknown_channel_and_future_receipt_refused(client, keys, clock, rows) -> None:  # type: ignore[no-untyped-def]
    bad = client.post("/v1/revocations", json={"email": "a@b.com", "channels": ["fax"], "source": "api"},
                      headers=keys["writer"])
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "channels"
    future = client.post("/v1/revocations", json={"email": "a@b.com", "channels": ["email"],
                                                  "received_at": "2999-01-01T00:00:00Z", "source": "api"},
                         headers=keys["writer"])
    assert future.status_code == 422
    # Where the opt-out came from is part of its evidence: never guessed.
    unsourced = client.post("/v1/revocations", json={"email": "a@b.com", "channels": ["email"]},
                            headers=keys["writer"])
    assert unsourced.status_code == 422 and unsourced.get_json()["errors"][0]["field"] == "source"
    # A blank brand names no brand: an opt-out scoped to it would stop nothing anyone sends.
    blank = client.post("/v1/revocations", json={"email": "a@b.com", "channels": ["email"], "brands": ["Acme", " "],
                                                 "source": "api"}, headers=keys["writer"])
    assert blank.status_code == 422 and blank.get_json()["errors"][0]["field"].startswith("brands")
    assert rows(Revocation) == []
    # A sender's clock a minute ahead: the opt-out is taken, as received now.
    ahead = client.post("/v1/revocations", json={"email": "a@b.com", "channels": ["email"],
                                                 "received_at": (clock.now + timedelta(minutes=1)).isoformat(),
                                                 "source": "api"},
                        headers=keys["writer"])
    assert ahead.status_code == 201, ahead.get_json()
    [revocation] = rows(Revocation)
    assert revocation.received_at == clock.now == revocation.effective_at


def test_suppressions_mark_the_address(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/suppressions", json={"email": "b@corp.com", "kind": "bounce"},
                       headers=keys["writer"]).status_code == 201
    reassigned = client.post("/v1/suppressions", json={"phone": "+13055550170", "kind": "reassigned",
                                                       "since": "2026-01-01T00:00:00Z"}, headers=keys["writer"])
    assert reassigned.status_code == 201
    assert sorted(cp.status for cp in rows(ContactPoint)) == ["bounced", "reassigned"]
    wrong = client.post("/v1/suppressions", json={"phone": "+13055550171", "kind": "bounce"},
                        headers=keys["writer"])
    assert wrong.status_code == 422
    assert len(rows(Suppression)) == 2


def test_chain_verifies_and_catches_tampering(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/revocations", json={"phone": "+13055550180", "channels": ["sms"], "raw_text": "STOP",
                                         "source": "api"},
                headers=keys["writer"])
    client.post("/v1/suppressions", json={"email": "c@corp.com", "kind": "complaint"}, headers=keys["writer"])
    ok = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert ok == {"ok": True, "checked": 2, "first_broken": None, "after": 0, "next_after": None, "last_seq": 2}
    with runtime.store.transaction() as session:
        row = session.get(Revocation, 1) or next(iter(session.exec(__import__("sqlmodel").select(Revocation))))
        row.raw_text = "changed"
        session.add(row)
    broken = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert broken["ok"] is False and broken["first_broken"]["table"] == "revocation"


def test_a_ledger_row_slipped_in_beside_the_chain_is_named(client, keys, runtime, cli_env) -> None:  # type: ignore[no-untyped-def]
    # A consent written straight into the table, with no chain entry: the gate would rely on it.
    client.post("/v1/identities", json={"phone": "+13055550107"}, headers=keys["writer"])
    with runtime.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO consent_event (identity_id, contact_point_id, channel, purpose, consent_type, captured_at, "
            "recorded_at, source, pii_digest) SELECT identity_id, id, 'sms', 'marketing', 'express_written', "
            "created_at, created_at, 'forged', '' FROM contact_point")
    broken = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert broken["ok"] is False
    assert (broken["first_broken"]["table"], broken["first_broken"]["problem"]) == (
        "consent_event", "the ledger row has no chain entry")
    cli_env()
    from click.testing import CliRunner

    from consentgate.cli import cli
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1 and "no chain entry" in result.output


@pytest.mark.parametrize("hide", ["pii_salt = NULL", "erased_at = created_at"])
def test_an_address_changed_behind_a_blanked_salt_or_a_false_erasure_is_named(  # type: ignore[no-untyped-def]
        client, keys, runtime, hide) -> None:
    # A consent moved to another number by rewriting its contact point, the digest check dodged first.
    client.post("/v1/suppressions", json={"phone": "+13055550105", "kind": "litigator", "note": "sued us"},
                headers=keys["writer"])
    with runtime.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE suppression SET {hide}")
        conn.exec_driver_sql("UPDATE contact_point SET value = '+13055550106'")
    broken = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert broken["ok"] is False and broken["first_broken"]["table"] == "suppression", broken


def test_a_merge_undone_in_the_database_is_named(client, keys, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    w = keys["writer"]
    alice = client.post("/v1/identities", json={"email": "alice@corp.com"}, headers=w).get_json()["identity_id"]
    clock.set(clock.now + timedelta(seconds=5))
    bob = client.post("/v1/identities", json={"email": "bob@corp.com"}, headers=w).get_json()["identity_id"]
    client.post("/v1/suppressions", json={"email": "bob@corp.com", "kind": "complaint"}, headers=w)
    assert client.post(f"/v1/identities/{alice}/merge", json={"other_identity_id": bob}, headers=w).status_code == 200
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True
    with runtime.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE identity SET merged_into_id = NULL WHERE id = {bob}")
    broken = client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()
    assert broken["ok"] is False and broken["first_broken"]["table"] == "merge_event", broken


def test_an_opt_out_from_a_brand_holds_in_any_spelling(client, keys) -> None:  # type: ignore[no-untyped-def]
    # The CRM writes "Acme", the sending platform asks for "acme ": one brand.
    email = "brandy@corp.com"
    client.post("/v1/identities", json={"email": email}, headers=keys["writer"])
    made = client.post("/v1/revocations", json={"email": email, "channels": ["email"], "brands": ["Acme"],
                                                "source": "manual"}, headers=keys["writer"])
    assert made.status_code == 201, made.get_json()
    asks = [{"email": email, "channel": "email", "purpose": "marketing", "brand": brand}
            for brand in ("Acme", "acme ", "ACME", "Globex")]
    singles = [client.post("/v1/eligibility", json=ask, headers=keys["sender"]).get_json()["allowed"] for ask in asks]
    batch = client.post("/v1/eligibility/batch", json={"items": asks}, headers=keys["sender"]).get_json()
    assert singles == [d["allowed"] for d in batch["decisions"]] == [False, False, False, True]
