"""Replay through any sequence of ledger writes, checks (single and batched), reservations, texts,
changes of place and merges: every decision the gate logged, re-run later on the ledger as it
stood at its instant, gives the same answer, merged since or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.webhooks.test_sms_webhooks import twilio

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONES = ["+13055550171", "+13055550172"]
EMAILS = ["ash@corp.com", "bo@corp.com"]
ADDRESSES = [{"phone": p} for p in PHONES] + [{"email": e} for e in EMAILS]
CHANNELS = {"phone": ["sms", "voice"], "email": ["email"]}

address = st.sampled_from(ADDRESSES)
steps = st.lists(st.one_of(
    st.tuples(st.just("consent"), address, st.sampled_from(["express_written", "express", "uncertain"]),
              st.integers(-40, 0), st.booleans()),
    st.tuples(st.just("revoke"), address, st.sampled_from([["*"], ["sms"], ["email"], ["voice", "sms"]])),
    st.tuples(st.just("suppress"), address, st.sampled_from(["bounce", "dnc_national", "reassigned", "litigator"])),
    st.tuples(st.just("touch"), address, st.integers(-3, 0)),
    st.tuples(st.just("check"), address, st.booleans(), st.sampled_from([None, "reactivation"])),
    st.tuples(st.just("batch"), st.lists(st.tuples(address, st.booleans()), min_size=1, max_size=4)),
    st.tuples(st.just("use"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("person"), st.sampled_from(PHONES), st.sampled_from(EMAILS)),
    st.tuples(st.just("place"), address, st.sampled_from([{"state": "FL"}, {"timezone": "America/Los_Angeles"},
                                                         {"timezone": "Asia/Tokyo", "state": "NY"}])),
    st.tuples(st.just("text"), st.sampled_from(PHONES), st.sampled_from(["STOP", "START"])),
    st.tuples(st.just("wait"), st.integers(1, 3 * 24 * 60)),
), min_size=3, max_size=14)


@given(sequence=steps)
# A batch's later item reserves for the same person at the same instant: the earlier item's
# decision did not count that reservation, and neither may its replay.
@example(sequence=[("touch", {"phone": PHONES[1]}, 0), ("person", PHONES[1], EMAILS[1]),
                   ("batch", [({"phone": PHONES[1]}, False), ({"email": EMAILS[1]}, True)])])
@settings(max_examples=20, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_decision_replays_as_it_was_made(client, clock, start_over, sequence) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    writer, sender = keys["writer"], keys["sender"]
    now = NOON_ET
    decisions: list[int] = []
    reservations: list[int] = []
    for number, step in enumerate(sequence):
        now += timedelta(minutes=1)
        clock.set(now)
        kind = step[0]
        if kind == "consent":
            _, where, consent_type, days, proof = step
            for channel in CHANNELS[next(iter(where))]:
                client.post("/v1/consents", json={
                    **where, "channel": channel, "purpose": "marketing", "consent_type": consent_type,
                    "source": "web_form", "captured_at": (now + timedelta(days=days)).isoformat(),
                    "proof_uri": f"https://proof.example.com/{number}" if proof else None}, headers=writer)
        elif kind == "revoke":
            client.post("/v1/revocations", json={**step[1], "channels": step[2], "source": "manual"}, headers=writer)
        elif kind == "suppress":
            body = {**step[1], "kind": step[2]}
            if step[2] == "reassigned":
                body["since"] = (now - timedelta(days=5)).isoformat()
            client.post("/v1/suppressions", json=body, headers=writer)
        elif kind == "touch":
            where = step[1]
            client.post("/v1/touches", json={**where, "channel": CHANNELS[next(iter(where))][0],
                                             "purpose": "marketing", "program": "reactivation",
                                             "sent_at": (now + timedelta(days=step[2])).isoformat()}, headers=sender)
        elif kind == "check":
            _, where, reserve, program = step
            for channel in CHANNELS[next(iter(where))]:
                answer = client.post("/v1/eligibility", json={**where, "channel": channel, "purpose": "marketing",
                                                              "program": program, "reserve": reserve},
                                     headers=sender).get_json()
                decisions.append(answer["decision_id"])
                if answer.get("reservation_id"):
                    reservations.append(answer["reservation_id"])
        elif kind == "batch":
            items = [{**where, "channel": CHANNELS[next(iter(where))][0], "purpose": "marketing",
                      "program": "reactivation", "reserve": reserve} for where, reserve in step[1]]
            answers = client.post("/v1/eligibility/batch", json={"items": items}, headers=sender).get_json()
            for answer in answers["decisions"]:
                decisions.append(answer["decision_id"])
                if answer.get("reservation_id"):
                    reservations.append(answer["reservation_id"])
        elif kind == "use" and reservations:
            reservation = reservations[step[1] % len(reservations)]
            if step[2]:
                client.post("/v1/touches", json={"reservation_id": reservation}, headers=sender)
            else:
                client.delete(f"/v1/reservations/{reservation}", headers=sender)
        elif kind == "person":
            client.post("/v1/identities", json={"phone": step[1], "email": step[2]}, headers=writer)
        elif kind == "place":
            client.post("/v1/identities", json={**step[1], "attributes": step[2]}, headers=writer)
        elif kind == "text":
            twilio(client, step[2], f"SM-replay-{number}", phone=step[1])
        elif kind == "wait":
            now += timedelta(minutes=step[1])
    decisions += _batch_agrees_with_single_checks(client, sender)
    clock.set(now + timedelta(days=1))
    for decision_id in decisions:
        replay = client.post(f"/v1/decisions/{decision_id}/replay", headers=keys["auditor"]).get_json()
        assert replay.get("same") is True, (decision_id, replay)


def _batch_agrees_with_single_checks(client, sender) -> list[int]:  # type: ignore[no-untyped-def]
    """Every address on every channel, asked in one batch and one by one at the same instant:
    the batch reads its facts by other code (set-based, for many people at once) and must answer
    alike. The decision ids, for replay."""
    items = [{**where, "channel": channel, "purpose": "marketing", "program": program}
             for where in ADDRESSES for channel in CHANNELS[next(iter(where))]
             for program in (None, "reactivation")]
    batch = client.post("/v1/eligibility/batch", json={"items": items}, headers=sender).get_json()["decisions"]
    ids = []
    for item, from_batch in zip(items, batch, strict=True):
        single = client.post("/v1/eligibility", json=item, headers=sender).get_json()
        assert (from_batch["allowed"], _codes(from_batch), from_batch["identity_id"]) == (
            single["allowed"], _codes(single), single["identity_id"]), (item, from_batch, single)
        ids += [from_batch["decision_id"], single["decision_id"]]
    return ids


def _codes(answer) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted({reason["code"] for reason in answer["reasons"]})
