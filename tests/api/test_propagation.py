"""Downstream propagation: signed deliveries, retries with backoff, acknowledgements, SLA status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from consentgate.core.signatures import verify_outbound
from consentgate.services.propagation import MAX_BACKOFF, backoff, deliver_due, sla_summary
from consentgate.store.models import OutboxMessage

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


class Downstream:
    """A downstream sender that fails a given number of times, then acknowledges."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.received = failures, []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.received.append((url, body, headers))
        if self.failures:
            self.failures -= 1
            return 503
        return 200


def test_revocations_reach_every_subscriber_signed(client, keys, runtime, clock, rows) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    sub = client.post("/v1/subscriptions", json={"name": "dialer", "url": "https://dialer.example.com/hook"},
                      headers=keys["admin"]).get_json()
    client.post("/v1/revocations", json={"phone": "+13055550144", "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    [pending] = rows(OutboxMessage)
    assert pending.status == "pending"
    downstream = Downstream(failures=2)
    first = deliver_due(runtime.store, clock.now, downstream)
    assert (first.attempted, first.failed) == (1, 1)
    [retry] = rows(OutboxMessage)
    assert retry.next_attempt_at > clock.now and retry.last_error == "HTTP 503"
    # Not due yet: nothing is sent.
    assert deliver_due(runtime.store, clock.now, downstream).attempted == 0
    clock.set(retry.next_attempt_at)
    assert deliver_due(runtime.store, clock.now, downstream).failed == 1
    [again] = rows(OutboxMessage)
    # Exponential backoff: the second wait is twice the first.
    assert again.next_attempt_at - clock.now == 2 * (retry.next_attempt_at - NOON_ET)
    clock.set(again.next_attempt_at)
    assert deliver_due(runtime.store, clock.now, downstream).acknowledged == 1
    [done] = rows(OutboxMessage)
    assert done.status == "acknowledged" and done.acknowledged_at == clock.now
    url, body, headers = downstream.received[-1]
    assert url == "https://dialer.example.com/hook"
    assert verify_outbound(sub["secret"], headers["X-Consentgate-Signature"], body)
    payload = json.loads(body)
    assert payload["address"] == {"kind": "phone", "value": "+13055550144"} and payload["channels"] == ["sms"]


def test_a_receiver_down_for_weeks_is_retried_every_six_hours_and_holds_nobody_up(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock, rows) -> None:
    clock.set(NOON_ET)
    client.post("/v1/subscriptions", json={"name": "dead", "url": "https://dead.example.com/hook"},
                headers=keys["admin"])
    client.post("/v1/revocations", json={"phone": "+13055550144", "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    assert backoff(43) == backoff(10_000) == MAX_BACKOFF
    with runtime.store.transaction() as session:
        [message] = session.exec(select(OutboxMessage)).all()
        message.attempts = 60     # two weeks of failures
        session.add(message)
    assert deliver_due(runtime.store, clock.now, Downstream(failures=1)).failed == 1
    [message] = rows(OutboxMessage)
    assert message.attempts == 61 and message.next_attempt_at == clock.now + MAX_BACKOFF


def test_a_long_run_claims_signs_and_acknowledges_each_message_at_its_own_moment(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock, rows) -> None:
    clock.set(NOON_ET)
    sub = client.post("/v1/subscriptions", json={"name": "slow", "url": "https://slow.example.com/hook"},
                      headers=keys["admin"]).get_json()
    for n in range(6):
        client.post("/v1/revocations", json={"phone": f"+1305555014{n}", "channels": ["sms"], "source": "api"},
                    headers=keys["writer"])
    moments = iter(NOON_ET + timedelta(seconds=25 * n) for n in range(100))   # each receiver takes 25 s
    downstream = Downstream()
    run = deliver_due(runtime.store, NOON_ET, downstream, clock=lambda: next(moments))
    # Two minutes in, the run stops taking messages: the next run (and its lease) takes the rest.
    assert run.acknowledged == 3
    acked = sorted(m.acknowledged_at for m in rows(OutboxMessage) if m.acknowledged_at is not None)
    assert acked == [NOON_ET + timedelta(seconds=s) for s in (25, 75, 125)]
    # Signed when sent, so each is fresh when it arrives, however long the run.
    for (_, body, headers), sent in zip(downstream.received, (0, 50, 100), strict=True):
        assert verify_outbound(sub["secret"], headers["X-Consentgate-Signature"], body,
                               now=NOON_ET + timedelta(seconds=sent + 1), tolerance_s=5)


def test_a_deadline_missed_stays_missed_when_the_sender_unsubscribes_later(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock) -> None:
    clock.set(NOON_ET)
    sub = client.post("/v1/subscriptions", json={"name": "down", "url": "https://down.example.com/hook"},
                      headers=keys["admin"]).get_json()
    client.post("/v1/revocations", json={"phone": "+13055550144", "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    clock.set(NOON_ET + timedelta(days=25))          # long past the 10th business day, never acknowledged

    def report() -> list[tuple[str, object]]:
        rows = client.get("/v1/reports/revocations", headers=keys["auditor"]).get_json()
        return [(r["sla_status"], r["propagated_at"]) for r in rows]

    assert report() == [("missed", None)]
    assert client.delete(f"/v1/subscriptions/{sub['subscription_id']}", headers=keys["admin"]).status_code == 204
    assert report() == [("missed", None)]


def test_sla_alerts_near_and_past_the_deadline(client, keys, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    client.post("/v1/subscriptions", json={"name": "crm", "url": "https://crm.example.com/hook"}, headers=keys["admin"])
    deadline = client.post("/v1/revocations", json={"email": "a@corp.com", "channels": ["email"], "source": "api"},
                           headers=keys["writer"]).get_json()["deadline_at"]
    assert sla_summary(runtime.store, runtime.policy, clock.now) == {"pending": 1, "at_risk": 0, "missed": 0}
    due = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    assert sla_summary(runtime.store, runtime.policy, due - timedelta(days=1)) == {
        "pending": 0, "at_risk": 1, "missed": 0}
    assert sla_summary(runtime.store, runtime.policy, due + timedelta(seconds=1)) == {
        "pending": 0, "at_risk": 0, "missed": 1}


def test_an_unsubscribed_sender_is_told_nothing_more_and_holds_up_no_deadline(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock, rows) -> None:
    clock.set(NOON_ET)
    _, gone = (client.post("/v1/subscriptions", json={"name": name, "url": f"https://{name}.example.com/hook"},
                           headers=keys["admin"]).get_json() for name in ("dialer", "old-crm"))
    client.post("/v1/revocations", json={"email": "a@corp.com", "channels": ["email"], "source": "api"},
                headers=keys["writer"])
    assert client.delete(f"/v1/subscriptions/{gone['subscription_id']}", headers=keys["admin"]).status_code == 204
    downstream = Downstream()
    assert deliver_due(runtime.store, clock.now, downstream).acknowledged == 1
    assert [url for url, _, _ in downstream.received] == ["https://dialer.example.com/hook"]
    assert sorted(m.status for m in rows(OutboxMessage)) == ["acknowledged", "cancelled"]
    assert sla_summary(runtime.store, runtime.policy, clock.now) == {"pending": 0, "at_risk": 0, "missed": 0}
    clock.set(NOON_ET + timedelta(days=30))
    assert deliver_due(runtime.store, clock.now, downstream).attempted == 0
    # Erased, the person's address goes from the cancelled message too.
    person = client.get("/v1/identities?email=a@corp.com", headers=keys["auditor"]).get_json()["identity_id"]
    assert client.delete(f"/v1/identities/{person}", headers=keys["admin"]).status_code == 200
    assert [m.payload["address"]["value"] for m in rows(OutboxMessage)] == [None, None]


def test_subscriptions_need_admin_and_a_web_url(client, keys) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/subscriptions", json={"name": "x", "url": "https://x.example.com"},
                       headers=keys["writer"]).status_code == 403
    bad = client.post("/v1/subscriptions", json={"name": "x", "url": "ftp://x"}, headers=keys["admin"])
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "url"


def test_metrics_show_revocations_at_risk(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOON_ET)
    client.post("/v1/subscriptions", json={"name": "crm", "url": "https://crm.example.com/hook"}, headers=keys["admin"])
    client.post("/v1/revocations", json={"email": "m@corp.com", "channels": ["email"], "source": "api"},
                headers=keys["writer"])
    clock.set(datetime(2026, 12, 9, 15, 0, tzinfo=UTC))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'consentgate_revocation_sla{status="at_risk"} 1.0' in text


def test_an_erased_persons_opt_outs_reach_senders_then_keep_no_address(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock, rows) -> None:
    """Erasure blanks the address in opt-outs already delivered downstream; one still to deliver
    keeps it until the sender has it (the opt-out must still reach them), then loses it."""
    clock.set(NOON_ET)
    for name in ("dialer", "crm"):
        client.post("/v1/subscriptions", json={"name": name, "url": f"https://{name}.example.com/hook"},
                    headers=keys["admin"])
    client.post("/v1/revocations", json={"phone": "+13055550146", "channels": ["sms"], "source": "api"},
                headers=keys["writer"])
    dialer_only = Downstream()
    deliver_due(runtime.store, clock.now, lambda url, body, headers: dialer_only(url, body, headers)
                if "dialer" in url else 503)
    found = client.get("/v1/identities?phone=%2B13055550146", headers=keys["writer"]).get_json()
    assert client.delete(f"/v1/identities/{found['identity_id']}", headers=keys["admin"]).status_code == 200

    by_state = {m.status: m for m in rows(OutboxMessage)}
    assert by_state["acknowledged"].payload["address"] == {"kind": "phone", "value": None, "erased": True}
    assert by_state["pending"].payload["address"] == {"kind": "phone", "value": "+13055550146"}
    clock.set(by_state["pending"].next_attempt_at)
    crm = Downstream()
    assert deliver_due(runtime.store, clock.now, crm).acknowledged == 1
    assert json.loads(crm.received[0][1])["address"]["value"] == "+13055550146"
    assert [m.payload["address"]["value"] for m in rows(OutboxMessage)] == [None, None]
