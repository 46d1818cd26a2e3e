"""The gate over HTTP: decisions from the ledger, quiet hours, caps, reservations, batches, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from consentgate.store.models import DecisionRecord, PolicyVersion, Touch

ROOT = Path(__file__).resolve().parents[2]
NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)      # Wednesday 12:00 in Miami
PHONE = "+13055550190"                                      # a Miami (FL) number


def consent(client, keys, phone=PHONE, **over):  # type: ignore[no-untyped-def]
    body = {"phone": phone, "channel": "sms", "purpose": "marketing", "consent_type": "express_written",
            "captured_at": (NOON_ET - timedelta(days=3)).isoformat(), "source": "web_form",
            "proof_uri": "https://proof.example.com/p/1"}
    body.update(over)
    answer = client.post("/v1/consents", json=body, headers=keys["writer"])
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def ask(client, keys, **over):  # type: ignore[no-untyped-def]
    body = {"phone": PHONE, "channel": "sms", "purpose": "marketing"}
    body.update(over)
    answer = client.post("/v1/eligibility", json=body, headers=keys["sender"])
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def codes(answer) -> set[str]:  # type: ignore[no-untyped-def]
    return {r["code"] for r in answer["reasons"]}


@pytest.fixture(autouse=True)
def _noon(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)


def test_unknown_person_is_never_allowed(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    answer = ask(client, keys)
    assert answer["allowed"] is False and codes(answer) == {"UNKNOWN_IDENTITY"}
    assert answer["identity_id"] is None
    assert [d.allowed for d in rows(DecisionRecord)] == [False]


def test_allowed_with_proven_consent_and_cites_it(client, keys, rows, runtime) -> None:  # type: ignore[no-untyped-def]
    made = consent(client, keys)
    answer = ask(client, keys, phone="(305) 555-0190")
    assert answer["allowed"] is True, answer
    assert answer["reasons"] == [] and answer["next_allowed_at"] is None
    assert answer["consent"]["consent_id"] == made["consent_id"]
    assert answer["consent"]["proof_uri"] == "https://proof.example.com/p/1"
    assert answer["policy_version"] == runtime.policy.version
    assert [p.version for p in rows(PolicyVersion)] == [runtime.policy.version]


def test_marketing_sms_without_written_consent_is_denied(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys, consent_type="express", proof_uri=None)
    consent(client, keys, consent_type="express", proof_uri=None, purpose="informational")
    assert codes(ask(client, keys)) == {"CONSENT_INSUFFICIENT"}
    assert ask(client, keys, purpose="informational")["allowed"] is True


def test_revocation_denies_from_the_write_on(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    assert "REVOKED" in codes(ask(client, keys))
    # A marketing-only revocation does not stop transactional messages; a revoke-all does.
    other = "+13055550191"
    consent(client, keys, phone=other)
    client.post("/v1/revocations", json={"phone": other, "channels": ["sms"], "purposes": ["marketing"],
                                         "source": "api"},
                headers=keys["writer"])
    assert ask(client, keys, phone=other, purpose="transactional")["allowed"] is True
    client.post("/v1/revocations", json={"phone": other, "channels": ["*"], "source": "api"}, headers=keys["writer"])
    assert "REVOKED" in codes(ask(client, keys, phone=other, purpose="transactional"))


def test_no_instant_in_the_past_gets_round_an_opt_out(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    """Asked for an earlier instant, the gate would weigh the send as if the opt-outs received since
    had not arrived: further back than a clock's skew is refused, within it is taken as now."""
    consent(client, keys)
    assert ask(client, keys)["allowed"] is True
    clock.set(NOON_ET + timedelta(minutes=30))
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "sms_keyword"},
                headers=keys["writer"])
    earlier = (NOON_ET + timedelta(minutes=10)).isoformat()
    for reserve in (False, True):
        refused = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                                       "at": earlier, "reserve": reserve}, headers=keys["sender"])
        assert refused.status_code == 422, refused.get_json()
        assert [e["field"] for e in refused.get_json()["errors"]] == ["at"]
    skewed = ask(client, keys, at=(NOON_ET + timedelta(minutes=27)).isoformat())
    assert skewed["allowed"] is False and "REVOKED" in codes(skewed)
    batch = client.post("/v1/eligibility/batch", json={"items": [
        {"phone": PHONE, "channel": "sms", "purpose": "marketing", "at": earlier},
        {"phone": PHONE, "channel": "sms", "purpose": "marketing"}]}, headers=keys["sender"]).get_json()["decisions"]
    assert batch[0]["allowed"] is False and batch[0]["status"] == 422
    assert [e["field"] for e in batch[0]["errors"]] == ["items[0].at"]
    assert "REVOKED" in codes(batch[1])
    # A later instant is still decided for then: the opt-out stands.
    assert "REVOKED" in codes(ask(client, keys, at=(NOON_ET + timedelta(days=2)).isoformat()))


def test_quiet_hours_give_the_opening_time(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    late = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)          # 20:30 in Miami: FL closes at 20:00
    clock.set(late)
    answer = ask(client, keys)
    assert answer["allowed"] is False
    assert codes(answer) <= {"QUIET_HOURS", "STATE_RULE"} and codes(answer)
    opens = datetime.fromisoformat(answer["next_allowed_at"].replace("Z", "+00:00"))
    assert opens == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # 08:00 in Miami
    clock.set(opens)
    assert ask(client, keys)["allowed"] is True


def test_email_marketing_is_opt_out_based(client, keys) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "reader@corp.com"}, headers=keys["writer"])
    assert ask(client, keys, phone=None, email="reader@corp.com", channel="email")["allowed"] is True
    client.post("/v1/suppressions", json={"email": "reader@corp.com", "kind": "bounce"}, headers=keys["writer"])
    answer = ask(client, keys, phone=None, email="reader@corp.com", channel="email")
    assert codes(answer) == {"SUPPRESSED_BOUNCE"}


def test_weekly_reactivation_cap_and_reservations(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    first = ask(client, keys, program="reactivation", reserve=True)
    assert first["allowed"] and first["reservation_id"]
    assert client.post("/v1/touches", json={"reservation_id": first["reservation_id"]},
                       headers=keys["sender"]).status_code == 201
    second = ask(client, keys, program="reactivation", reserve=True)
    assert second["allowed"] and second["reservation_id"]
    # The reserved slot counts: the weekly cap of 2 is reached.
    third = ask(client, keys, program="reactivation", reserve=True)
    assert third["allowed"] is False and "FATIGUE_CAP" in codes(third) and third["reservation_id"] is None
    assert third["next_allowed_at"] is not None
    # Giving the slot back frees it.
    assert client.delete(f"/v1/reservations/{second['reservation_id']}", headers=keys["sender"]).status_code == 204
    assert ask(client, keys, program="reactivation")["allowed"] is True
    # A released reservation cannot be used for a send.
    used = client.post("/v1/touches", json={"reservation_id": second["reservation_id"]}, headers=keys["sender"])
    assert used.status_code == 409
    assert sorted(t.state for t in rows(Touch)) == ["released", "sent"]


def test_reservations_for_a_later_send_hold_until_it_is_made(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    later = (NOON_ET + timedelta(hours=2)).isoformat()
    held = [ask(client, keys, program="reactivation", reserve=True, at=later) for _ in range(2)]
    assert all(answer["allowed"] and answer["reservation_id"] for answer in held)
    # Both slots of the week are held, for a send now, at two o'clock, and at three (by when the
    # reservations would have run out, had they not been confirmed meanwhile).
    for at in (None, later, (NOON_ET + timedelta(hours=3)).isoformat()):
        assert codes(ask(client, keys, program="reactivation", at=at)) == {"FATIGUE_CAP"}
    # Made at two o'clock, long after the time to live counted from the question, the sends
    # are confirmed on their reservations; and they still fill the week.
    clock.set(NOON_ET + timedelta(hours=2, minutes=5))
    for answer in held:
        assert client.post("/v1/touches", json={"reservation_id": answer["reservation_id"]},
                           headers=keys["sender"]).status_code == 201
    assert codes(ask(client, keys, program="reactivation")) == {"FATIGUE_CAP"}


def test_a_batch_reservation_for_a_later_send_holds_until_it_is_made(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    item = {"phone": PHONE, "channel": "sms", "purpose": "marketing", "program": "reactivation", "reserve": True,
            "at": (NOON_ET + timedelta(hours=2)).isoformat()}
    answer = client.post("/v1/eligibility/batch", json={"items": [item]}, headers=keys["sender"])
    [decision] = answer.get_json()["decisions"]
    assert decision["allowed"] and decision["reservation_id"]
    clock.set(NOON_ET + timedelta(hours=2, minutes=5))
    assert client.post("/v1/touches", json={"reservation_id": decision["reservation_id"]},
                       headers=keys["sender"]).status_code == 201


def test_batch_answers_in_input_order(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    items = [{"phone": PHONE, "channel": "sms", "purpose": "marketing"},
             {"phone": "nonsense", "channel": "sms", "purpose": "marketing"},
             {"phone": "+13055550199", "channel": "sms", "purpose": "marketing"},
             {"phone": PHONE, "channel": "fax", "purpose": "marketing"}]
    answer = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"])
    assert answer.status_code == 200
    decisions = answer.get_json()["decisions"]
    assert [d["allowed"] for d in decisions] == [True, False, False, False]
    assert decisions[1]["status"] == 422 and decisions[1]["errors"][0]["field"] == "items[1].phone"
    assert codes(decisions[2]) == {"UNKNOWN_IDENTITY"}
    assert decisions[3]["errors"][0]["field"] == "items[3].channel"


def test_a_blank_brand_is_refused_not_read_as_another_brand(client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    client.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "brands": ["Acme"], "source": "api"},
                headers=keys["writer"])
    for blank in ("", "  "):
        answer = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                                      "brand": blank}, headers=keys["sender"])
        assert answer.status_code == 422 and answer.get_json()["errors"][0]["field"] == "brand"
    assert codes(ask(client, keys)) == {"REVOKED"}            # no brand: it may be Acme
    assert ask(client, keys, brand="Globex")["allowed"] is True


def test_channel_and_address_must_agree(client, keys) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/eligibility", json={"email": "a@b.com", "channel": "sms", "purpose": "marketing"},
                         headers=keys["sender"])
    assert answer.status_code == 422


def test_two_senders_never_both_take_the_last_slot(app, keys) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    consent(client, keys)
    ask(client, keys, program="reactivation", reserve=True)     # one of two weekly slots taken
    barrier = threading.Barrier(6)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        own = app.test_client()
        barrier.wait()
        answer = own.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                                   "program": "reactivation", "reserve": True},
                          headers=keys["sender"]).get_json()
        with lock:
            results.append(bool(answer["allowed"]))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_batch_answers_as_single_checks_do(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)                                               # PHONE: allowed
    consent(client, keys, phone="+13055550192")
    client.post("/v1/revocations", json={"phone": "+13055550192", "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    consent(client, keys, phone="+13055550193", consent_type="express", proof_uri=None)
    client.post("/v1/suppressions", json={"phone": "+13055550194", "kind": "dnc_national"}, headers=keys["writer"])
    client.post("/v1/identities", json={"email": "boss@acme.io"}, headers=keys["writer"])
    client.post("/v1/identities", json={"email": "peer@acme.io"}, headers=keys["writer"])
    client.post("/v1/revocations", json={"email": "boss@acme.io", "channels": ["*"], "scope": "account",
                                         "source": "api"},
                headers=keys["writer"])
    ident = client.post("/v1/identities", json={"email": "ok@corp.com"}, headers=keys["writer"]).get_json()
    items = [{"phone": p, "channel": c, "purpose": u}
             for p in (PHONE, "+13055550192", "+13055550193", "+13055550194", "+13055550195")
             for c in ("sms", "voice") for u in ("marketing", "transactional")]
    items += [{"email": e, "channel": "email", "purpose": "marketing", "program": "reactivation"}
              for e in ("peer@acme.io", "boss@acme.io", "ok@corp.com")]
    items += [{"identity_id": ident["identity_id"], "channel": "email", "purpose": "marketing"}]
    batch = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()["decisions"]
    for item, from_batch in zip(items, batch, strict=True):
        single = ask(client, keys, **{"phone": None, **item})
        assert (from_batch["allowed"], codes(from_batch)) == (single["allowed"], codes(single)), item
        assert from_batch["decision_id"] != single["decision_id"]
    assert sum(1 for d in batch if d["allowed"]) >= 3


def test_a_batch_decides_in_input_order_each_item_seeing_the_slots_reserved_before_it(  # type: ignore[no-untyped-def]
        client, keys, rows) -> None:
    """As if the items were asked one by one, in order: a reservation counts at once for the
    items after it, plain checks included, and never for the items before it."""
    consent(client, keys)
    item = {"phone": PHONE, "channel": "sms", "purpose": "marketing", "program": "reactivation"}
    items = [{**item, "reserve": True}, {**item, "reserve": True, "channel": "fax"}, item,
             {**item, "reserve": True}, {**item, "reserve": True}, item]
    answer = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"])
    assert answer.status_code == 200
    first, bad, plain, second, third, last = answer.get_json()["decisions"]
    assert first["allowed"] is True and first["reservation_id"] is not None
    assert bad["status"] == 422 and bad["errors"][0]["field"] == "items[1].channel"
    assert plain["allowed"] is True and plain["reservation_id"] is None      # one of two weekly slots taken
    assert second["allowed"] is True and second["reservation_id"] not in (None, first["reservation_id"])
    for refused in (third, last):                                            # both taken: no more
        assert refused["allowed"] is False and codes(refused) == {"FATIGUE_CAP"}
        assert refused["reservation_id"] is None and refused["next_allowed_at"] is not None
    touches = {t.id: t for t in rows(Touch)}
    assert sorted(touches) == sorted([first["reservation_id"], second["reservation_id"]])
    decisions = {d.id: d for d in rows(DecisionRecord)}
    assert len(decisions) == 5
    for answer_ in (first, second):
        touch = touches[answer_["reservation_id"]]
        assert (touch.state, touch.decision_id, touch.program) == ("reserved", answer_["decision_id"], "reactivation")
        assert decisions[answer_["decision_id"]].reservation_id == touch.id
        assert touch.expires_at is not None and touch.api_key_id is not None
    # The reservations are real: confirmed, one becomes a send; released, the other frees its slot.
    assert client.post("/v1/touches", json={"reservation_id": first["reservation_id"]},
                       headers=keys["sender"]).status_code == 201
    assert client.delete(f"/v1/reservations/{second['reservation_id']}", headers=keys["sender"]).status_code == 204
    assert ask(client, keys, program="reactivation")["allowed"] is True


def test_a_batch_of_plain_checks_holds_up_no_writer(app, client, keys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """While a batch decides, single checks log their decisions and an opt-out is written: the
    batch reads without the write lock (on SQLite there is one for the whole database). Its answers
    are those of the moment it read; the opt-out holds from its own write on."""
    from consentgate.services import eligibility

    consent(client, keys)
    deciding, go = threading.Event(), threading.Event()
    real = eligibility.decide

    def paused(*args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread() is batch_thread and not go.is_set():
            deciding.set()
            go.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(eligibility, "decide", paused)
    answers: dict[str, object] = {}

    def ask_batch() -> None:
        items = [{"phone": PHONE, "channel": "sms", "purpose": "marketing"}] * 3
        answers["batch"] = app.test_client().post("/v1/eligibility/batch", json={"items": items},
                                                  headers=keys["sender"])

    def write_meanwhile() -> None:
        own = app.test_client()
        answers["single"] = own.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms",
                                                              "purpose": "marketing"}, headers=keys["sender"])
        answers["stop"] = own.post("/v1/revocations", json={"phone": PHONE, "channels": ["sms"], "source": "api"},
                                   headers=keys["writer"])

    batch_thread = threading.Thread(target=ask_batch)
    batch_thread.start()
    try:
        assert deciding.wait(30)
        writer = threading.Thread(target=write_meanwhile)
        writer.start()
        writer.join(10)
        assert not writer.is_alive(), "a single check and an opt-out waited for the batch to finish"
    finally:
        go.set()
        batch_thread.join(30)
    assert answers["single"].status_code == 200 and answers["single"].get_json()["allowed"] is True  # type: ignore[attr-defined]
    assert answers["stop"].status_code == 201  # type: ignore[attr-defined]
    batch = answers["batch"].get_json()["decisions"]  # type: ignore[attr-defined]
    assert [d["allowed"] for d in batch] == [True, True, True]
    assert len({d["decision_id"] for d in batch} | {answers["single"].get_json()["decision_id"]}) == 4  # type: ignore[attr-defined]
    assert codes(ask(client, keys)) == {"REVOKED"}


def test_an_account_cap_counts_colleagues_alike_in_batches_and_single_checks(  # type: ignore[no-untyped-def]
        client, keys, runtime, monkeypatch) -> None:
    """With a cap counted per company, a colleague's touches count: a batch (which reads every
    company's touches at once) answers as the single checks do, and its reservations count for
    the colleagues after them."""
    with_account_cap(runtime, monkeypatch)
    staff = [f"staff{i}@acme-caps.com" for i in range(3)]
    for email in [*staff, "solo@other-caps.com"]:
        client.post("/v1/identities", json={"email": email}, headers=keys["writer"])
    item = {"channel": "email", "purpose": "marketing", "program": "reactivation"}
    client.post("/v1/touches", json={"email": staff[0], **item}, headers=keys["sender"])   # one of the two
    asked = [{"email": e, **item} for e in [*staff, "solo@other-caps.com"]]
    batch = client.post("/v1/eligibility/batch", json={"items": asked}, headers=keys["sender"]).get_json()["decisions"]
    singles = [ask(client, keys, phone=None, **one) for one in asked]
    assert [(d["allowed"], codes(d)) for d in batch] == [(d["allowed"], codes(d)) for d in singles]
    assert all(d["allowed"] for d in batch)
    reserving = [{**one, "reserve": True} for one in asked]
    made = client.post("/v1/eligibility/batch", json={"items": reserving}, headers=keys["sender"]).get_json()
    assert [d["allowed"] for d in made["decisions"]] == [True, False, False, True]
    assert codes(made["decisions"][1]) == {"FATIGUE_CAP"}
    assert made["decisions"][1]["reasons"][0]["per"] == "account"


def test_a_batch_replays_without_the_slots_its_later_items_reserved(  # type: ignore[no-untyped-def]
        client, keys, runtime, monkeypatch) -> None:
    """Every item of a batch is decided at one instant: a reservation by a later item, for the
    same person or a colleague, did not count for the items before it, and does not when their
    decisions are replayed."""
    with_account_cap(runtime, monkeypatch)
    for email in ("ann@acme-replay.com", "ben@acme-replay.com", "cat@acme-replay.com"):
        client.post("/v1/identities", json={"email": email}, headers=keys["writer"])
    client.post("/v1/identities", json={"phone": "+13055550196", "email": "dee@other-replay.com"},
                headers=keys["writer"])
    consent(client, keys, phone="+13055550196")
    item = {"channel": "email", "purpose": "marketing", "program": "reactivation"}
    client.post("/v1/touches", json={"email": "ann@acme-replay.com", **item}, headers=keys["sender"])
    client.post("/v1/touches", json={"phone": "+13055550196", **item, "channel": "sms"}, headers=keys["sender"])
    items = [{"email": "ben@acme-replay.com", **item}, {"email": "cat@acme-replay.com", **item, "reserve": True},
             {"phone": "+13055550196", **item, "channel": "sms"}, {"email": "dee@other-replay.com", **item,
                                                                   "reserve": True}]
    batch = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()["decisions"]
    assert [d["allowed"] for d in batch] == [True, True, True, True]
    for decided in batch:
        replay = client.post(f"/v1/decisions/{decided['decision_id']}/replay", headers=keys["auditor"]).get_json()
        assert replay["same"] is True, replay
    # The slots were taken all the same: the company's and Dee's are full now.
    assert codes(ask(client, keys, phone=None, email="ben@acme-replay.com", **item)) == {"FATIGUE_CAP"}
    assert codes(ask(client, keys, **{**item, "phone": "+13055550196", "channel": "sms"})) == {"FATIGUE_CAP"}


def test_merged_people_are_decided_as_one(client, keys) -> None:  # type: ignore[no-untyped-def]
    """An absorbed id resolves to the survivor, and a revocation made before the merge still holds."""
    consent(client, keys)
    survivor = ask(client, keys)["identity_id"]
    absorbed = client.post("/v1/identities", json={"email": "same.person@corp.com"},
                           headers=keys["writer"]).get_json()["identity_id"]
    revoke = {"email": "same.person@corp.com", "channels": ["*"], "source": "api"}
    assert client.post("/v1/revocations", json=revoke, headers=keys["writer"]).status_code == 201
    merged = client.post(f"/v1/identities/{survivor}/merge", json={"other_identity_id": absorbed},
                         headers=keys["writer"])
    assert merged.status_code == 200 and merged.get_json()["identity_id"] == survivor
    by_old_id = ask(client, keys, phone=None, identity_id=absorbed)
    assert by_old_id["identity_id"] == survivor and by_old_id["allowed"] is False
    assert "REVOKED" in codes(by_old_id)
    by_phone = ask(client, keys)
    assert by_phone["identity_id"] == survivor and "REVOKED" in codes(by_phone)
    items = [{"identity_id": i, "channel": "sms", "purpose": "marketing"} for i in (absorbed, survivor, 999_999)]
    batch = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()["decisions"]
    assert [d["identity_id"] for d in batch] == [survivor, survivor, None]
    for item, from_batch in zip(items, batch, strict=True):
        single = ask(client, keys, phone=None, **item)
        assert (from_batch["allowed"], codes(from_batch)) == (single["allowed"], codes(single))
    assert "REVOKED" in codes(batch[0]) and "UNKNOWN_IDENTITY" in codes(batch[2])


def test_metrics_count_decisions_by_outcome_and_reason(client, keys) -> None:  # type: ignore[no-untyped-def]
    consent(client, keys)
    ask(client, keys)                                                          # allowed
    ask(client, keys, phone="+13055550199")                                   # unknown
    items = [{"phone": PHONE, "channel": "sms", "purpose": "marketing"},
             {"phone": "+13055550198", "channel": "sms", "purpose": "marketing"},
             {"phone": "+13055550197", "channel": "sms", "purpose": "marketing"}]
    assert client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert 'consentgate_decisions_total{outcome="allowed"} 2.0' in text
    assert 'consentgate_decisions_total{outcome="denied"} 3.0' in text
    assert 'consentgate_decision_reasons_total{code="UNKNOWN_IDENTITY"} 3.0' in text


def with_account_cap(runtime, monkeypatch, most: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Serve the default policy plus a reactivation cap counted per company."""
    import yaml

    from consentgate.core.policy import parse_policy

    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    policy["fatigue_caps"].append({"name": "account_weekly", "programs": ["reactivation"], "max": most,
                                   "window": "7d", "per": "account"})
    monkeypatch.setattr(runtime, "policy", parse_policy(yaml.safe_dump(policy)))


@pytest.mark.parametrize("seed, account_cap", [(3, False), (8, False), (5, True)])
def test_batch_and_single_checks_agree_on_a_random_world(  # type: ignore[no-untyped-def]
        client, keys, clock, runtime, monkeypatch, seed, account_cap) -> None:
    """Single checks and the batch load their facts by different code (one person at a time, or a
    few set-based queries for everyone): on a random world of consents, revocations (identity and
    account), suppressions, touches, merges and erasures, they must answer alike (also under a
    cap counted per company)."""
    import random

    if account_cap:
        with_account_cap(runtime, monkeypatch)
    pick = random.Random(seed)
    phones = [f"+1{area}555{n:04d}" for area in ("305", "907", "212", "405", "808", "251") for n in range(100, 106)]
    emails = [f"p{i}@corp{i % 3}.com" for i in range(12)] + [f"q{i}@gmail.com" for i in range(4)]
    past = [NOON_ET - timedelta(hours=h) for h in (1, 5, 20, 30, 50, 100, 200, 400)]
    writer, admin = keys["writer"], keys["admin"]

    def address() -> dict[str, str]:
        return {"phone": pick.choice(phones)} if pick.random() < 0.6 else {"email": pick.choice(emails)}

    def channel_for(where: dict[str, str]) -> str:
        return "email" if "email" in where else pick.choice(["sms", "voice"])

    for _ in range(150):
        where, roll = address(), pick.random()
        if roll < 0.35:
            kind = pick.choice(["express_written", "express", "double_opt_in", "implied_ebr", "uncertain"])
            body = {**where, "channel": channel_for(where),
                    "purpose": pick.choice(["marketing", "informational", "repermission"]), "consent_type": kind,
                    "captured_at": pick.choice(past).isoformat(), "source": pick.choice(["web_form", "sms_keyword"]),
                    "proof_uri": "https://proof.example.com/x" if kind == "express_written" or pick.random() < 0.3
                    else None, "brand": pick.choice([None, None, "acme", "zest"])}
            if pick.random() < 0.1:
                body["expires_at"] = (NOON_ET - timedelta(hours=2)).isoformat()
            client.post("/v1/consents", json=body, headers=writer)
        elif roll < 0.45:
            body = {**where, "channels": pick.choice([["*"], ["sms"], ["voice", "email"], ["email"]]),
                    "purposes": pick.choice([["*"], ["marketing"]]), "brands": pick.choice([["*"], ["*"], ["acme"]]),
                    "received_at": pick.choice(past).isoformat(), "source": "api"}
            if "email" in where and pick.random() < 0.3:
                body["scope"] = "account"
            client.post("/v1/revocations", json=body, headers=writer)
        elif roll < 0.55:
            kind = pick.choice(["bounce", "complaint", "dnc_national", "reassigned", "legal_hold", "litigator"])
            body = {**where, "kind": kind}
            if kind == "reassigned":
                body["since"] = pick.choice(past).isoformat()
            client.post("/v1/suppressions", json=body, headers=writer)
        elif roll < 0.8:
            client.post("/v1/touches", json={
                **where, "channel": channel_for(where), "purpose": pick.choice(["marketing", "repermission"]),
                "program": pick.choice([None, "reactivation"]), "segment": pick.choice([None, "no_show", "stalled"]),
                "sent_at": pick.choice(past[:5]).isoformat()}, headers=keys["sender"])
        elif roll < 0.93:
            attributes = pick.choice([None, {"state": "RI"}, {"timezone": "America/Los_Angeles"},
                                      {"timezone": "Pacific/Honolulu", "state": "FL"}])
            client.post("/v1/identities", json={"email": pick.choice(emails), "phone": pick.choice(phones),
                                                **({"attributes": attributes} if attributes else {})},
                        headers=writer)
        else:
            found = client.get("/v1/identities", query_string=where, headers=writer)
            if found.status_code == 200 and pick.random() < 0.5:
                client.delete(f"/v1/identities/{found.get_json()['identity_id']}", headers=admin)

    # Some numbers are on the National DNC Registry (loaded as the registry file is).
    import io

    from consentgate.services.imports import import_dnc

    listed = [p for p in phones if pick.random() < 0.25]
    import_dnc(runtime.store, runtime.policy, io.StringIO("".join(p[2:] + "\n" for p in listed)), NOON_ET,
               NOON_ET.date())
    questions = []
    for _ in range(120):
        where = address()
        questions.append({**where, "channel": channel_for(where),
                          "purpose": pick.choice(["marketing", "informational", "transactional", "repermission"]),
                          "program": pick.choice([None, "reactivation"]), "brand": pick.choice([None, "acme", "zest"]),
                          "segment": pick.choice([None, "no_show", "stalled"]),
                          "at": (NOON_ET + timedelta(hours=pick.choice([0, 9, 14]))).isoformat()})
    batch = client.post("/v1/eligibility/batch", json={"items": questions},
                        headers=keys["sender"]).get_json()["decisions"]
    allowed = 0
    for question, from_batch in zip(questions, batch, strict=True):
        single = ask(client, keys, **{"phone": None, **question})
        assert (from_batch["allowed"], codes(from_batch), from_batch["next_allowed_at"], from_batch["identity_id"]) \
            == (single["allowed"], codes(single), single["next_allowed_at"], single["identity_id"]), question
        allowed += single["allowed"]
    assert 0 < allowed < len(questions)
    if account_cap:   # the world is dense enough that some company's cap is reached
        assert any(r.get("per") == "account" for d in batch for r in d["reasons"])
    if listed:
        assert any(r.get("kind") == "dnc_national" for d in batch for r in d["reasons"])

    # The same questions in a batch split among three processes (as a large batch is, on a
    # machine with cores to spare), bad items among them: each answer is the one-process answer,
    # each bad item answers with its own index, and every decision is logged once.
    from consentgate.services import eligibility

    parts: list[int] = []
    real_map = eligibility.forked_map
    monkeypatch.setattr(eligibility, "forked_map",
                        lambda work, spans: parts.append(len(spans)) or real_map(work, spans))
    monkeypatch.setattr(eligibility, "MIN_PER_PROCESS", 30)
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"batch_processes": 3}))
    mixed = [*questions[:50], {"phone": "12", "channel": "sms", "purpose": "marketing"}, *questions[50:], "what?"]

    def ask_mixed() -> list[dict]:  # type: ignore[type-arg]
        answer = client.post("/v1/eligibility/batch", json={"items": mixed}, headers=keys["sender"])
        return answer.get_json()["decisions"]  # type: ignore[no-any-return]

    # A process running a second thread decides the batch itself (a lock that thread held when
    # forking would stay held in the child), and answers alike.
    waiting = threading.Event()
    other = threading.Thread(target=waiting.wait, args=(30,))
    other.start()
    try:
        whole = ask_mixed()
    finally:
        waiting.set()
        other.join()
    assert parts == []
    # One thread, as in a gunicorn sync worker (tests that ran before may have left threads behind).
    monkeypatch.setattr(eligibility, "can_fork", lambda: True)
    split = ask_mixed()
    assert parts == [3]
    assert split[50]["index"] == 50 and "items[50].phone" in str(split[50]) and split[-1]["index"] == 121

    def unlogged(answer: dict) -> dict:  # type: ignore[type-arg]
        return {name: value for name, value in answer.items() if name != "decision_id"}

    assert [unlogged(a) for a in split] == [unlogged(a) for a in whole]
    del split[50], split[-1]
    assert [unlogged(a) for a in split] == [unlogged(a) for a in batch]
    with runtime.store.engine.connect() as conn:
        logged = dict(conn.execute(text("SELECT id, allowed FROM decision")).all())
    assert [logged[a["decision_id"]] for a in split] == [a["allowed"] for a in split]
    assert len({a["decision_id"] for a in split}) == len(split)


def test_a_dropped_database_connection_fails_closed_then_recovers(client, keys, store, db_kind) -> None:  # type: ignore[no-untyped-def]
    if db_kind != "postgresql":
        pytest.skip("a server that drops its connections is a PostgreSQL matter")
    consent(client, keys)
    assert ask(client, keys)["allowed"] is True
    with store.engine.connect() as conn:   # what a server restart looks like from the gate
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    answer = client.post("/v1/eligibility", json={"phone": PHONE, "channel": "sms", "purpose": "marketing"},
                         headers=keys["sender"])
    assert answer.status_code == 503 and answer.mimetype == "application/problem+json"
    assert answer.headers["Retry-After"] == "1"
    assert ask(client, keys)["allowed"] is True    # the dead connection was not put back


def test_a_batch_item_sees_the_touches_its_own_check_would(client, keys) -> None:  # type: ignore[no-untyped-def]
    # A batch reads touches from its earliest instant back; each item must still weigh only those
    # a check of its own would (here: a re-permission touch older than a later item's look-back).
    email = "u@corp.com"
    client.post("/v1/consents", json={"email": email, "channel": "email", "purpose": "repermission",
                                      "consent_type": "uncertain", "source": "crm",
                                      "captured_at": (NOON_ET - timedelta(days=200)).isoformat()},
                headers=keys["writer"])
    client.post("/v1/touches", json={"email": email, "channel": "email", "purpose": "repermission",
                                     "sent_at": (NOON_ET - timedelta(days=100)).isoformat()}, headers=keys["sender"])
    later = {"email": email, "channel": "email", "purpose": "repermission",
             "at": (NOON_ET + timedelta(days=20)).isoformat()}
    single = client.post("/v1/eligibility", json=later, headers=keys["sender"]).get_json()
    now = {k: v for k, v in later.items() if k != "at"}
    batch = client.post("/v1/eligibility/batch", json={"items": [later, now]}, headers=keys["sender"]).get_json()
    assert batch["decisions"][0]["allowed"] == single["allowed"]
    assert codes(batch["decisions"][0]) == codes(single)
