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
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "raw_text": "stop now", "source": "api"},
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


def test_an_evidence_window_limits_touches_and_decisions_never_the_ledger(  # type: ignore[no-untyped-def]
        client, keys, clock, store, tmp_path, monkeypatch) -> None:
    answer = _setup(client, keys, clock)   # day 0: consent, a reserved check
    for day in (1, 2, 3):
        clock.set(NOON_ET + timedelta(days=day))
        checked = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                                       "reserve": True}, headers=keys["sender"]).get_json()
        assert checked["allowed"] is True, checked
    clock.set(NOON_ET + timedelta(days=3, hours=1))
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api"}, headers=keys["writer"])
    since, until = NOON_ET + timedelta(days=1), NOON_ET + timedelta(days=3)
    path = f"/v1/identities/{answer['identity_id']}/evidence"
    whole = client.get(path, headers=keys["auditor"]).get_json()
    window = client.get(path, query_string={"since": since.isoformat(), "until": until.isoformat()},
                        headers=keys["auditor"]).get_json()
    assert len(whole["decisions"]) == len(whole["touches"]) == 4
    assert [d["decided_at"] for d in window["decisions"]] == [
        (NOON_ET + timedelta(days=day)).isoformat().replace("+00:00", "Z") for day in (1, 2)]
    assert len(window["touches"]) == 2
    for part in ("consent_events", "revocations", "chain"):
        assert window[part] == whole[part]
    assert window["window"] == {"since": since.isoformat().replace("+00:00", "Z"),
                                "until": until.isoformat().replace("+00:00", "Z")}
    bad = client.get(path, query_string={"since": "last tuesday"}, headers=keys["auditor"])
    assert bad.status_code == 422 and [e["field"] for e in bad.get_json()["errors"]] == ["since"]

    from click.testing import CliRunner

    from consentgate.cli import cli

    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", store.url)
    monkeypatch.setenv("CONSENTGATE_SECRET_FILE", str(tmp_path / "secret"))
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(cli, ["evidence", str(answer["identity_id"]), "-o", str(out),
                                      "--since", "2026-11-26T17:00:00Z", "--until", "2026-11-28"])
    assert result.exit_code == 0, result.output
    import json

    assert len(json.loads(out.read_text())["decisions"]) == 2


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


def test_verify_names_each_kind_of_tampering_in_every_ledger_table(client, keys, clock, runtime) -> None:  # type: ignore[no-untyped-def]
    """A direct UPDATE or DELETE on any ledger table, on an address, or on the chain itself is
    named at the first row it breaks; putting the value back makes the chain whole again."""
    from sqlalchemy import text

    clock.set(NOON_ET)
    w = keys["writer"]
    made = client.post("/v1/consents/batch", json={"items": [
        {"phone": PHONE, "channel": "sms", "purpose": "marketing", "consent_type": "express_written",
         "source": "web_form", "captured_at": (NOON_ET - timedelta(days=2)).isoformat(), "ip": "203.0.113.9",
         "proof_uri": "https://proof.example.com/x"},
        {"email": "pat@corp.com", "channel": "email", "purpose": "marketing", "consent_type": "double_opt_in",
         "source": "crm", "captured_at": (NOON_ET - timedelta(days=2)).isoformat()}]}, headers=w).get_json()
    first, second = (r["identity_id"] for r in made["results"])
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "raw_text": "STOP", "source": "api"},
                headers=w)
    client.post("/v1/suppressions", json={"email": "pat@corp.com", "kind": "complaint", "note": "abuse desk"},
                headers=w)
    client.post(f"/v1/identities/{first}/merge", json={"other_identity_id": second}, headers=w)
    client.post("/v1/consents", json={"email": "gone@corp.com", "channel": "email", "purpose": "marketing",
                                      "consent_type": "double_opt_in", "source": "crm",
                                      "captured_at": NOON_ET.isoformat()}, headers=w)
    gone = client.get("/v1/identities?email=gone@corp.com", headers=keys["auditor"]).get_json()["identity_id"]
    assert client.delete(f"/v1/identities/{gone}", headers=keys["admin"]).status_code == 200

    def verify() -> dict:  # type: ignore[type-arg]
        return client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()  # type: ignore[no-any-return]

    def sql(statement: str) -> None:
        with runtime.store.engine.begin() as conn:
            conn.execute(text(statement))

    whole = verify()
    assert whole["ok"] is True and whole["first_broken"] is None
    with runtime.store.engine.connect() as conn:
        entries = {table: (seq, row_id) for seq, table, row_id in conn.execute(
            text("SELECT seq, table_name, row_id FROM chain_entry ORDER BY seq DESC"))}
        assert whole["checked"] == conn.execute(text("SELECT count(*) FROM chain_entry")).scalar_one()
        [[first_consent, cp]] = conn.execute(text(
            "SELECT id, contact_point_id FROM consent_event WHERE ip IS NOT NULL")).all()
        phone = conn.execute(text(f"SELECT value FROM contact_point WHERE id = {cp}")).scalar_one()
    assert set(entries) == {"consent_event", "revocation", "suppression", "merge_event", "erasure_event"}
    content = "the row's content no longer matches its hash"
    unchained = "the opt-out was lifted without a chained record of it"
    never = "the suppression was lifted, which the gate never does"
    personal = "the row's personal values no longer match their digest"
    cases = [
        ("consent_event", first_consent, "UPDATE consent_event SET consent_type = 'express' WHERE id = {id}",
         "UPDATE consent_event SET consent_type = 'express_written' WHERE id = {id}", content),
        ("consent_event", first_consent, "UPDATE consent_event SET ip = '198.51.100.1' WHERE id = {id}",
         "UPDATE consent_event SET ip = '203.0.113.9' WHERE id = {id}", personal),
        ("consent_event", first_consent, f"UPDATE contact_point SET value = '+13055550999' WHERE id = {cp}",
         f"UPDATE contact_point SET value = '{phone}' WHERE id = {cp}", personal),
        ("revocation", None, "UPDATE revocation SET raw_text = 'START' WHERE id = {id}",
         "UPDATE revocation SET raw_text = 'STOP' WHERE id = {id}", personal),
        ("revocation", None, "UPDATE revocation SET channels = '[\"voice\"]' WHERE id = {id}",
         "UPDATE revocation SET channels = '[\"sms\"]' WHERE id = {id}", content),
        # A reason is personal from chain scheme 2; the scheme itself is content.
        ("revocation", None, "UPDATE revocation SET reason = 'asked on a call' WHERE id = {id}",
         "UPDATE revocation SET reason = NULL WHERE id = {id}", personal),
        ("revocation", None, "UPDATE revocation SET chain_scheme = 1 WHERE id = {id}",
         "UPDATE revocation SET chain_scheme = 2 WHERE id = {id}", content),
        ("revocation", None, "UPDATE revocation SET lifted_at = CURRENT_TIMESTAMP WHERE id = {id}",
         "UPDATE revocation SET lifted_at = NULL WHERE id = {id}", unchained),
        ("suppression", None, "UPDATE suppression SET lifted_at = CURRENT_TIMESTAMP WHERE id = {id}",
         "UPDATE suppression SET lifted_at = NULL WHERE id = {id}", never),
        ("suppression", None, "UPDATE suppression SET kind = 'bounce' WHERE id = {id}",
         "UPDATE suppression SET kind = 'complaint' WHERE id = {id}", content),
        ("merge_event", None, f"UPDATE merge_event SET absorbed_id = {first} WHERE id = {{id}}",
         f"UPDATE merge_event SET absorbed_id = {second} WHERE id = {{id}}", content),
        ("erasure_event", None, "UPDATE erasure_event SET law = 'none' WHERE id = {id}", None, content),
    ]
    for table, row_id, tamper, undo, problem in cases:
        row_id = row_id or entries[table][1]
        before = None
        if undo is None:   # no known value to put back: read it first
            with runtime.store.engine.connect() as conn:
                before = conn.execute(text(f"SELECT law FROM erasure_event WHERE id = {row_id}")).scalar_one()
            undo = f"UPDATE erasure_event SET law = '{before}' WHERE id = {{id}}"
        sql(tamper.format(id=row_id))
        broken = verify()
        assert broken["ok"] is False, tamper
        assert (broken["first_broken"]["table"], broken["first_broken"]["row_id"],
                broken["first_broken"]["problem"]) == (table, row_id, problem), tamper
        sql(undo.format(id=row_id))
        assert verify() == whole, undo
    seq = entries["suppression"][0]
    sql(f"UPDATE chain_entry SET prev_hash = 'x' WHERE seq = {seq}")
    assert verify()["first_broken"]["problem"] == "the link does not follow the previous entry"
    with runtime.store.engine.connect() as conn:
        prev = conn.execute(text(f"SELECT entry_hash FROM chain_entry WHERE seq = {seq - 1}")).scalar_one()
    sql(f"UPDATE chain_entry SET prev_hash = '{prev}' WHERE seq = {seq}")
    assert verify() == whole
    sql(f"DELETE FROM suppression WHERE id = {entries['suppression'][1]}")
    gone_row = verify()["first_broken"]
    assert (gone_row["seq"], gone_row["problem"]) == (seq, "the ledger row is missing")


def test_verifying_in_ranges_with_several_processes_finds_what_one_pass_finds(  # type: ignore[no-untyped-def]
        client, keys, clock, runtime) -> None:
    """``consentgate audit verify`` splits the chain among worker processes: whatever was broken,
    and wherever (inside a range, at its first or last entry), it reports what one pass reports."""
    from sqlalchemy import text

    from consentgate.services.verification import verify_chain
    from consentgate.store.chain import verify

    clock.set(NOON_ET)
    items = [{"phone": f"+1305555{1000 + i:04d}", "channel": "sms", "purpose": "marketing",
              "consent_type": "express_written", "source": "web_form", "ip": "203.0.113.9",
              "captured_at": (NOON_ET - timedelta(days=2)).isoformat(), "proof_uri": "https://proof.example.com/x"}
             for i in range(60)]
    assert client.post("/v1/consents/batch", json={"items": items}, headers=keys["writer"]).status_code == 200

    def both() -> tuple[object, object]:
        with runtime.store.transaction(write=False) as session:
            one_pass = verify(session, now=clock.now)
        return verify_chain(runtime.store, clock.now, workers=3, min_per_worker=1), one_pass

    def sql(statement: str) -> None:
        with runtime.store.engine.begin() as conn:
            conn.execute(text(statement))

    in_ranges, one_pass = both()
    assert in_ranges == one_pass and one_pass.ok and one_pass.checked == 60  # type: ignore[attr-defined]
    # The ranges are (0, 20], (20, 40], (40, 60]: break things inside one and at its edges.
    for seq in (30, 20, 21, 60, 1):
        with runtime.store.engine.connect() as conn:
            row_id, kind = conn.execute(text(f"SELECT row_id, consent_type FROM chain_entry JOIN consent_event "
                                             f"ON consent_event.id = row_id WHERE seq = {seq}")).one()
        sql(f"UPDATE consent_event SET consent_type = 'express' WHERE id = {row_id}")
        in_ranges, one_pass = both()
        assert in_ranges == one_pass and not one_pass.ok, seq  # type: ignore[attr-defined]
        assert one_pass.first_broken["seq"] == seq  # type: ignore[attr-defined]
        sql(f"UPDATE consent_event SET consent_type = '{kind}' WHERE id = {row_id}")
    sql("UPDATE chain_entry SET entry_hash = 'x' WHERE seq = 20")       # the last entry of a range
    in_ranges, one_pass = both()
    assert in_ranges == one_pass and one_pass.first_broken["seq"] == 20  # type: ignore[attr-defined]
    sql("DELETE FROM chain_entry WHERE seq IN (19, 20)")                # gone, at a range's edge
    in_ranges, one_pass = both()
    assert in_ranges == one_pass and one_pass.first_broken["seq"] == 21  # type: ignore[attr-defined]
    assert one_pass.first_broken["problem"] == "the link does not follow the previous entry"  # type: ignore[attr-defined]


def test_walking_the_chain_a_stretch_at_a_time_checks_what_one_request_checks(  # type: ignore[no-untyped-def]
        client, keys, clock, runtime) -> None:
    """A ledger too long for one request is verified a stretch per request, each starting where
    the last stopped; a broken link is named in its stretch and ends the walk."""
    from sqlalchemy import text

    clock.set(NOON_ET)
    items = [{"phone": f"+1305555{2000 + i:04d}", "channel": "sms", "purpose": "marketing",
              "consent_type": "express_written", "source": "web_form",
              "captured_at": (NOON_ET - timedelta(days=2)).isoformat(), "proof_uri": "https://proof.example.com/x"}
             for i in range(60)]
    assert client.post("/v1/consents/batch", json={"items": items}, headers=keys["writer"]).status_code == 200
    auditor = keys["auditor"]

    def walk(limit: int) -> list[dict]:  # type: ignore[type-arg]
        stretches, after = [], 0
        while after is not None:
            answer = client.get(f"/v1/audit/verify?after={after}&limit={limit}", headers=auditor)
            assert answer.status_code == 200
            stretches.append(answer.get_json())
            after = stretches[-1]["next_after"]
        return stretches

    whole = client.get("/v1/audit/verify", headers=auditor).get_json()
    assert (whole["ok"], whole["checked"], whole["next_after"], whole["last_seq"]) == (True, 60, None, 60)
    stretches = walk(25)
    assert [(s["after"], s["checked"], s["next_after"]) for s in stretches] == [
        (0, 25, 25), (25, 25, 50), (50, 10, None)]
    assert all(s["ok"] and s["last_seq"] == 60 for s in stretches)
    assert client.get("/v1/audit/verify?after=60", headers=auditor).get_json()["checked"] == 0

    with runtime.store.engine.begin() as conn:
        row_id = conn.execute(text("SELECT row_id FROM chain_entry WHERE seq = 30")).scalar_one()
        conn.execute(text(f"UPDATE consent_event SET source = 'forged' WHERE id = {row_id}"))
    stretches = walk(25)
    assert [(s["ok"], s["checked"], s["next_after"]) for s in stretches] == [(True, 25, 25), (False, 4, None)]
    assert stretches[-1]["first_broken"] == client.get("/v1/audit/verify", headers=auditor).get_json()["first_broken"]
    assert stretches[-1]["first_broken"]["seq"] == 30

    for query, field in [("limit=0", "limit"), ("limit=200001", "limit"), ("after=-1", "after"),
                         ("after=ten", "after"), ("limit=", "limit")]:
        refused = client.get(f"/v1/audit/verify?{query}", headers=auditor)
        assert refused.status_code == 422, query
        assert refused.content_type == "application/problem+json"
        assert field in refused.get_data(as_text=True), query
    assert client.get("/v1/audit/verify?limit=10", headers=keys["sender"]).status_code == 403


def test_replay_ranks_consent_types_as_the_policy_did(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    # Stored policies once lost the order of their consent types (sorted keys): replayed, an
    # express consent then met the express_written requirement that had denied the text.
    clock.set(NOON_ET)
    client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express", "source": "web_form",
                                      "captured_at": (NOON_ET - timedelta(days=2)).isoformat()}, headers=keys["writer"])
    answer = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing"},
                         headers=keys["sender"]).get_json()
    assert [r["code"] for r in answer["reasons"]] == ["CONSENT_INSUFFICIENT"]
    body = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["replayed"]["codes"] == ["CONSENT_INSUFFICIENT"]


def test_a_version_stored_without_its_ranking_replays_only_as_the_policy_served(  # type: ignore[no-untyped-def]
        client, keys, clock, runtime, store, monkeypatch) -> None:
    from pathlib import Path

    from sqlalchemy import update

    from consentgate.core.policy import legacy_canonical_json, parse_policy
    from consentgate.store.models import DecisionRecord, PolicyVersion

    answer = _setup(client, keys, clock)
    # A decision logged by an earlier release, under the served policy's version as then hashed.
    legacy = runtime.policy.legacy_version
    with store.transaction() as session:
        session.add(PolicyVersion(version=legacy, name="default", canonical=legacy_canonical_json(
            runtime.policy.policy), first_served_at=NOON_ET))
        session.flush()
        session.execute(update(DecisionRecord).where(DecisionRecord.id == answer["decision_id"])
                        .values(policy_version=legacy))
    body = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["policy_version"] == legacy
    assert body["under_current_policy"]["policy_changed"] is False
    # Served another policy, the gate cannot tell how that version ranked its consent types.
    text = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
    monkeypatch.setattr(runtime, "policy", parse_policy(text.replace("ttl: 15m", "ttl: 20m")))
    refused = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"])
    assert refused.status_code == 409 and "ranking" in refused.get_json()["detail"]


def test_replay_of_an_unknown_address_stays_unknown_after_someone_gets_it(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["*"], "source": "manual"},
                headers=keys["writer"])
    asked = client.post("/v1/eligibility", json={"email": "later@corp.com", "channel": "email",
                                                 "purpose": "marketing"}, headers=keys["sender"]).get_json()
    assert [r["code"] for r in asked["reasons"]] == ["UNKNOWN_IDENTITY"]
    # An hour later the address is given to the person who had opted out of everything.
    clock.set(NOON_ET + timedelta(hours=1))
    client.post("/v1/identities", json={"phone": PHONE, "email": "later@corp.com"}, headers=keys["writer"])
    body = client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["replayed"]["codes"] == ["UNKNOWN_IDENTITY"]


def test_replay_by_id_sends_to_the_address_the_person_had_then(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    person = client.post("/v1/identities", json={"email": "nophone@corp.com"},
                         headers=keys["writer"]).get_json()["identity_id"]
    asked = client.post("/v1/eligibility", json={"identity_id": person, "channel": "sms", "purpose": "transactional"},
                        headers=keys["sender"]).get_json()
    assert asked["allowed"] is False
    clock.set(NOON_ET + timedelta(hours=1))
    client.post("/v1/identities", json={"email": "nophone@corp.com", "phone": PHONE}, headers=keys["writer"])
    body = client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["replayed"]["codes"] == body["original"]["codes"]


def test_replay_knows_when_a_reservation_gave_its_slot_back(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    ask = {"email": "slots@corp.com", "channel": "email", "purpose": "marketing", "program": "reactivation"}
    client.post("/v1/identities", json={"email": "slots@corp.com"}, headers=keys["writer"])
    held = [client.post("/v1/eligibility", json={**ask, "reserve": True}, headers=keys["sender"]).get_json()
            for _ in range(2)]   # the weekly reactivation cap is 2
    assert all(answer["reservation_id"] for answer in held)
    clock.set(NOON_ET + timedelta(minutes=1))
    assert client.delete(f"/v1/reservations/{held[0]['reservation_id']}", headers=keys["sender"]).status_code == 204
    clock.set(NOON_ET + timedelta(minutes=2))
    after = client.post("/v1/eligibility", json=ask, headers=keys["sender"]).get_json()
    assert after["allowed"] is True
    for answer in (*held, after):
        body = client.post(f"/v1/decisions/{answer['decision_id']}/replay", headers=keys["auditor"]).get_json()
        assert body["same"] is True and body["replayed"]["allowed"] is True


def test_replay_reads_a_person_as_they_stood_before_a_later_merge(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    # Merged later with someone who had said stop to everything: the decision did not know them
    # as one person, and the replay does not either; it names the merge.
    clock.set(NOON_ET)
    first = client.post("/v1/identities", json={"phone": PHONE}, headers=keys["writer"]).get_json()["identity_id"]
    other = client.post("/v1/identities", json={"email": "twin@corp.com"},
                        headers=keys["writer"]).get_json()["identity_id"]
    client.post("/v1/revocations", json={"email": "twin@corp.com", "channels": ["*"], "source": "manual"},
                headers=keys["writer"])
    asked = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "voice", "purpose": "transactional"},
                        headers=keys["sender"]).get_json()
    assert "REVOKED" not in [r["code"] for r in asked["reasons"]]
    body = client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["merged_since"] == []
    clock.set(NOON_ET + timedelta(hours=1))
    client.post(f"/v1/identities/{first}/merge", json={"other_identity_id": other}, headers=keys["writer"])
    body = client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["merged_since"] == [{"survivor_id": first, "absorbed_id": other,
                                     "merged_at": "2026-11-25T18:00:00Z"}]
    assert body["same"] is True and "REVOKED" not in body["replayed"]["codes"]
    # Today the two are one, and their stop holds.
    assert "REVOKED" in [r["code"] for r in client.post("/v1/eligibility", json={
        "phone": PHONE, "channel": "voice", "purpose": "transactional"}, headers=keys["sender"]).get_json()["reasons"]]


def test_replay_places_the_person_where_the_decision_did(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    # 8:30 pm in Miami: outside Florida's calling window (8 am to 8 pm), inside the federal one.
    clock.set(datetime(2026, 11, 26, 1, 30, tzinfo=UTC))
    client.post("/v1/identities", json={"phone": PHONE}, headers=keys["writer"])
    asked = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "voice", "purpose": "informational"},
                        headers=keys["sender"]).get_json()
    assert "STATE_RULE" in [r["code"] for r in asked["reasons"]]
    # Later the person is known to live in California, where it was 5:30 pm.
    clock.set(datetime(2026, 11, 27, 17, 0, tzinfo=UTC))
    client.post("/v1/identities", json={"phone": PHONE, "attributes": {"timezone": "America/Los_Angeles"}},
                headers=keys["writer"])
    body = client.post(f"/v1/decisions/{asked['decision_id']}/replay", headers=keys["auditor"]).get_json()
    assert body["same"] is True and body["replayed"]["codes"] == body["original"]["codes"]
