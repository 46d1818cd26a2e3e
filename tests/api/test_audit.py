"""Decision replay and the identity evidence bundle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONE = "+13055550155"


def _setup(client, keys, clock):  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "web_form",
                                      "captured_at": (NOON_ET - timedelta(days=2)).isoformat(),
                                      "proof_uri": "https://proof.example.com/x"}, headers=keys["writer"])
    answer = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                                  "reserve": True}, headers=keys["sender"]).get_json()
    assert answer["allowed"] is True
    return answer


def test_replay_answers_from_the_ledger_as_it_stood(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    answer = _setup(client, keys, clock)
    clock.set(NOON_ET + timedelta(hours=1))
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api"}, headers=keys["writer"])
    now = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing"},
                      headers=keys["sender"]).get_json()
    assert now["allowed"] is False
    replay = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"])
    assert replay.status_code == 200
    body = replay.get_json()
    assert body["same"] is True and body["replayed"]["allowed"] is True
    assert body["replayed"]["consent_id"] == answer["consent"]["consent_id"]
    denied = client.post(f"/v1/decisions/{now['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert denied["same"] is True and denied["replayed"]["codes"] == ["REVOKED"]
    assert client.post("/v1/decisions/999999/replay", headers=keys["auditor"]).status_code == 404
    assert client.post(f"/v1/decisions/{now['decision_id']}/replay", headers=keys["sender"]).status_code == 403


def test_evidence_bundle_covers_everything_with_chain_links(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    answer = _setup(client, keys, clock)
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "raw_text": "stop now"},
                headers=keys["writer"])
    bundle = client.get(f"/v1/identities/{answer['identity_id']}/evidence", headers=keys["auditor"])
    assert bundle.status_code == 200
    body = bundle.get_json()
    assert len(body["consent_events"]) == 1 and body["consent_events"][0]["proof_uri"] == "https://proof.example.com/x"
    assert body["revocations"][0]["raw_text"] == "stop now"
    assert len(body["decisions"]) == 1 and len(body["touches"]) == 1
    assert {(e["table"], e["row_id"]) for e in body["chain"]} == {
        ("consent_event", body["consent_events"][0]["id"]), ("revocation", body["revocations"][0]["id"])}
    assert all(len(e["entry_hash"]) == 64 for e in body["chain"])
    assert "pii_salt" not in body["consent_events"][0]


def test_replay_names_a_policy_change(client, keys, clock, runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from consentgate.core.policy import parse_policy

    clock.set(NOON_ET)
    client.post("/v1/identities", json={"email": "reader@corp.com"}, headers=keys["writer"])
    answer = client.post("/v1/eligibility", json={"email": "reader@corp.com", "channel": "email",
                                                  "purpose": "marketing"}, headers=keys["sender"]).get_json()
    assert answer["allowed"] is True
    # The organisation tightens its policy: email marketing now needs double opt-in.
    text = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
    stricter = parse_policy(text.replace("purposes: [marketing, informational]\n    minimum: none",
                                         "purposes: [marketing, informational]\n    minimum: double_opt_in"))
    assert stricter.version != runtime.policy.version
    monkeypatch.setattr(runtime, "policy", stricter)
    body = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["policy_version"] == answer["policy_version"]
    today = body["under_current_policy"]
    assert today["policy_changed"] is True and today["same"] is False and today["codes"] == ["NO_CONSENT"]
