"""Downstream propagation through any sequence of opt-outs, senders subscribing and leaving, and
delivery runs against senders that fail, time out or answer: each opt-out reaches every sender
subscribed when it was written exactly until that sender acknowledges it (never again after),
a sender that left hears nothing more, and once senders answer, nothing is left waiting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.core.signatures import verify_outbound
from consentgate.services.propagation import MAX_BACKOFF, deliver_due
from consentgate.store.models import OutboxMessage

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
SENDERS = ["dialer", "crm", "sms-platform"]

steps = st.lists(st.one_of(
    st.tuples(st.just("revoke"), st.sampled_from(["+13055550161", "a@corp.com", "b@corp.com"])),
    st.tuples(st.just("subscribe"), st.sampled_from(SENDERS)),
    st.tuples(st.just("leave"), st.sampled_from(SENDERS)),
    st.tuples(st.just("deliver"), st.lists(st.sampled_from([200, 204, 503, 500, 404, 0]), min_size=1, max_size=6)),
    st.tuples(st.just("wait"), st.sampled_from([timedelta(seconds=20), timedelta(minutes=3), timedelta(hours=7)])),
), min_size=1, max_size=14)


@given(sequence=steps)
@settings(max_examples=20, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_opt_out_reaches_every_sender_until_it_answers(client, clock, runtime, rows, start_over,  # type: ignore[no-untyped-def]
                                                            sequence) -> None:
    keys = start_over(NOON_ET)
    now = NOON_ET
    subscribed: dict[str, dict[str, str]] = {}     # name -> subscription (id and secret)
    left: dict[str, datetime] = {}                  # url -> when its sender left
    expected: Counter[str] = Counter()              # url -> opt-outs written while it was subscribed
    acknowledged: set[str] = set()                  # delivery ids a sender answered 2xx
    posts: list[tuple[datetime, str, str]] = []     # (when, url, delivery id)
    answers: list[int] = []

    def sender(url: str, body: bytes, headers: dict[str, str]) -> int:
        delivery = headers["X-Consentgate-Delivery"]
        assert delivery not in acknowledged, "delivered again after the sender acknowledged it"
        assert verify_outbound(secrets[url], headers["X-Consentgate-Signature"], body)
        posts.append((now, url, delivery))
        status = answers.pop(0) if answers else 200
        if status == 0:
            raise TimeoutError("the sender did not answer")
        if 200 <= status < 300:
            acknowledged.add(delivery)
        return status

    secrets: dict[str, str] = {}
    for step in sequence:
        now += timedelta(seconds=1)
        clock.set(now)
        kind = step[0]
        if kind == "revoke":
            where = {"phone": step[1]} if step[1].startswith("+") else {"email": step[1]}
            assert client.post("/v1/revocations", json={**where, "channels": ["*"], "source": "manual"},
                               headers=keys["writer"]).status_code == 201
            for name in subscribed:
                expected[f"https://{name}.example.com/hook"] += 1
        elif kind == "subscribe" and step[1] not in subscribed and f"https://{step[1]}.example.com/hook" not in left:
            url = f"https://{step[1]}.example.com/hook"
            made = client.post("/v1/subscriptions", json={"name": step[1], "url": url}, headers=keys["admin"])
            assert made.status_code == 201, made.get_json()
            subscribed[step[1]] = made.get_json()
            secrets[url] = made.get_json()["secret"]
        elif kind == "leave" and step[1] in subscribed:
            gone = subscribed.pop(step[1])
            assert client.delete(f"/v1/subscriptions/{gone['subscription_id']}",
                                 headers=keys["admin"]).status_code == 204
            left[f"https://{step[1]}.example.com/hook"] = now
        elif kind == "deliver":
            answers[:] = step[1]
            deliver_due(runtime.store, now, sender)
        elif kind == "wait":
            now += step[1]
    # Senders answer from now on: every opt-out reaches each sender still subscribed, once acknowledged.
    answers.clear()
    for _ in range(12):
        now += MAX_BACKOFF
        clock.set(now)
        deliver_due(runtime.store, now, sender)
    messages = rows(OutboxMessage)
    assert all(m.status in ("acknowledged", "cancelled") for m in messages), [(m.id, m.status) for m in messages]
    for name in subscribed:
        url = f"https://{name}.example.com/hook"
        reached = {delivery for _, to, delivery in posts if to == url} & acknowledged
        assert len(reached) == expected[url], (sequence, name)
    for url, since in left.items():
        assert not [when for when, to, _ in posts if to == url and when > since], (sequence, url)
