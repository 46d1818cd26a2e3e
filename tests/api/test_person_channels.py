"""Channels without an address of their own (postal mail, LinkedIn): consent, opt-outs and touches
are the person's, any address or the identity id finds them, and the same rules hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from consentgate.cli import cli
from consentgate.core.policy import LoadedPolicy, parse_policy
from consentgate.store.models import ConsentEvent, Touch

ROOT = Path(__file__).resolve().parents[2]
NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
EMAIL, PHONE = "paula.post@corp.com", "+13055550160"


def _policy_text() -> str:
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    # The default's postal and LinkedIn channels, with consent asked for marketing by post.
    assert policy["channels"]["postal"] == {"address": "none"} == policy["channels"]["linkedin"]
    policy["consent_requirements"].insert(0, {"channels": ["postal"], "purposes": ["marketing"],
                                              "minimum": "express"})
    return yaml.safe_dump(policy)


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return parse_policy(_policy_text())


@pytest.fixture(autouse=True)
def _noon(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)


@pytest.fixture
def person(client, keys) -> int:  # type: ignore[no-untyped-def]
    made = client.post("/v1/identities", json={"email": EMAIL, "phone": PHONE}, headers=keys["writer"])
    assert made.status_code == 201, made.get_json()
    return int(made.get_json()["identity_id"])


def ask(client, keys, **body):  # type: ignore[no-untyped-def]
    answer = client.post("/v1/eligibility", json={"channel": "postal", "purpose": "marketing", **body},
                         headers=keys["sender"])
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def codes(answer) -> set[str]:  # type: ignore[no-untyped-def]
    return {r["code"] for r in answer["reasons"]}


def postal_consent(client, keys, **ref):  # type: ignore[no-untyped-def]
    answer = client.post("/v1/consents", json={
        "channel": "postal", "purpose": "marketing", "consent_type": "express", "source": "reply_card",
        "captured_at": (NOON_ET - timedelta(days=2)).isoformat(), **ref}, headers=keys["writer"])
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_postal_consent_is_the_persons_whichever_way_they_are_named(client, keys, person, rows) -> None:  # type: ignore[no-untyped-def]
    before = ask(client, keys, email=EMAIL)
    assert before["allowed"] is False and codes(before) == {"NO_CONSENT"}

    made = postal_consent(client, keys, email=EMAIL)
    assert made["identity_id"] == person
    [event] = rows(ConsentEvent)
    assert event.contact_point_id is None

    for ref in ({"email": EMAIL}, {"phone": "(305) 555-0160"}, {"identity_id": person}):
        answer = ask(client, keys, **ref)
        assert answer["allowed"] is True, (ref, answer)
        assert answer["consent"]["consent_id"] == made["consent_id"]
        replay = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"]).get_json()
        assert replay["same"] is True, replay
    # Consent to the person by post says nothing of their texts.
    sms = ask(client, keys, phone=PHONE, channel="sms")
    assert sms["allowed"] is False and "NO_CONSENT" in codes(sms)

    shown = client.get(f"/v1/identities/{person}", headers=keys["writer"]).get_json()
    [current] = [c for c in shown["consents"] if c["channel"] == "postal"]
    assert current["contact_point"] is None and current["consent_id"] == made["consent_id"]
    timeline = client.get(f"/v1/identities/{person}/timeline", headers=keys["auditor"]).get_json()
    assert made["consent_id"] in [e.get("consent_id") for e in timeline["events"]]
    evidence = client.get(f"/v1/identities/{person}/evidence", headers=keys["auditor"])
    assert evidence.status_code == 200
    assert [c["id"] for c in evidence.get_json()["consent_events"]] == [made["consent_id"]]


def test_consent_by_identity_id_and_opt_out_of_post_only(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    postal_consent(client, keys, identity_id=person)
    assert ask(client, keys, identity_id=person)["allowed"] is True
    assert ask(client, keys, email=EMAIL, channel="linkedin")["allowed"] is True

    revoked = client.post("/v1/revocations", json={"email": EMAIL, "channels": ["postal"], "source": "manual"},
                          headers=keys["writer"])
    assert revoked.status_code == 201, revoked.get_json()
    after = ask(client, keys, identity_id=person)
    assert after["allowed"] is False and codes(after) == {"REVOKED"}
    assert ask(client, keys, email=EMAIL, channel="linkedin")["allowed"] is True
    assert ask(client, keys, email=EMAIL, channel="email")["allowed"] is True


def test_address_suppressions_do_not_reach_the_post_but_person_wide_ones_do(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    postal_consent(client, keys, email=EMAIL)
    bounced = client.post("/v1/suppressions", json={"email": EMAIL, "kind": "bounce"}, headers=keys["writer"])
    assert bounced.status_code == 201
    assert ask(client, keys, email=EMAIL, channel="email")["allowed"] is False
    assert ask(client, keys, email=EMAIL)["allowed"] is True

    held = client.post("/v1/suppressions", json={"email": EMAIL, "kind": "legal_hold"}, headers=keys["writer"])
    assert held.status_code == 201
    answer = ask(client, keys, email=EMAIL)
    assert answer["allowed"] is False and codes(answer) == {"LEGAL_HOLD"}


def test_postal_touches_and_reservations_count_towards_caps_across_channels(client, keys, person, rows) -> None:  # type: ignore[no-untyped-def]
    postal_consent(client, keys, email=EMAIL)
    reserved = ask(client, keys, identity_id=person, program="reactivation", reserve=True)
    assert reserved["allowed"] is True and reserved["reservation_id"] is not None
    sent = client.post("/v1/touches", json={"phone": PHONE, "channel": "linkedin", "purpose": "marketing",
                                            "program": "reactivation"}, headers=keys["sender"])
    assert sent.status_code == 201, sent.get_json()
    assert {t.contact_point_id for t in rows(Touch)} == {None}

    # The default policy allows two reactivation touches a week per person, across channels.
    email = ask(client, keys, email=EMAIL, channel="email", program="reactivation")
    assert email["allowed"] is False and codes(email) == {"FATIGUE_CAP"}
    assert email["next_allowed_at"] is not None


def test_batch_answers_as_single_checks(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    stranger = {"email": "nobody@corp.com"}
    items = [{"email": EMAIL}, {"phone": PHONE}, {"identity_id": person}, stranger,
             {"email": EMAIL, "channel": "linkedin"}]
    items = [{"channel": "postal", "purpose": "marketing", **item} for item in items]
    before = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()
    assert [d["allowed"] for d in before["decisions"]] == [False, False, False, False, True]
    made = postal_consent(client, keys, phone=PHONE)
    after = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()
    singles = [ask(client, keys, **item) for item in items]
    assert [d["allowed"] for d in after["decisions"]] == [s["allowed"] for s in singles] == [True, True, True,
                                                                                              False, True]
    assert [(d["consent"] or {}).get("consent_id") for d in after["decisions"][:3]] == [made["consent_id"]] * 3


def test_batches_imports_reports_and_the_chain_keep_postal_consents(client, keys, person, rows, runtime, tmp_path,  # type: ignore[no-untyped-def]
                                                                    cli_env, clock) -> None:
    item = {"channel": "postal", "purpose": "marketing", "consent_type": "express", "source": "reply_card",
            "captured_at": (NOON_ET - timedelta(days=1)).isoformat()}
    batch = client.post("/v1/consents/batch", json={"items": [{**item, "email": EMAIL},
                                                              {**item, "identity_id": person}]},
                        headers=keys["writer"])
    assert batch.status_code == 200 and all(r["status"] == 201 for r in batch.get_json()["results"]), batch.get_json()

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(_policy_text())
    cli_env(policy_file)
    csv_file = tmp_path / "mail.csv"
    csv_file.write_text("email,phone,channel,purpose,consent_type,captured_at,source\n"
                        f"new.reader@corp.com,,postal,marketing,express,{item['captured_at']},mail_house\n"
                        f",{PHONE},postal,marketing,express,{item['captured_at']},mail_house\n")
    result = CliRunner().invoke(cli, ["import", "consents", str(csv_file)])
    assert result.exit_code == 0, result.output
    events = rows(ConsentEvent)
    assert len(events) == 4 and {e.contact_point_id for e in events} == {None}
    clock.set(datetime.now(UTC))   # the import records with the real clock
    assert ask(client, keys, email="new.reader@corp.com")["allowed"] is True

    report = client.get("/v1/reports/consents", headers=keys["auditor"]).get_json()
    assert sorted(r["consent_id"] for r in report) == sorted(e.id for e in events)
    assert {r["address"] for r in report} == {None}
    receipt = client.get(f"/v1/consents/{events[0].id}/receipt", headers=keys["auditor"])
    assert receipt.status_code == 200, receipt.get_json()
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True


def test_a_postal_opt_out_outlives_the_erasure_of_the_person(client, keys, person) -> None:  # type: ignore[no-untyped-def]
    postal_consent(client, keys, email=EMAIL)
    client.post("/v1/revocations", json={"identity_id": person, "channels": ["postal"], "source": "manual"},
                headers=keys["writer"])
    erased = client.delete(f"/v1/identities/{person}?law=CCPA%201798.105", headers=keys["admin"])
    assert erased.status_code == 200, erased.get_json()
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True
    again = client.post("/v1/identities", json={"phone": PHONE}, headers=keys["writer"])
    assert again.status_code == 201
    postal_consent(client, keys, phone=PHONE)   # a CRM re-import: not the person's own proven opt-in
    answer = ask(client, keys, phone=PHONE)
    assert answer["allowed"] is False and codes(answer) == {"DNC_INTERNAL"}
