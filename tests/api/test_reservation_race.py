"""Sixteen senders race for the last fatigue slot against a real server (4 worker processes)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx


def test_sixteen_senders_never_share_the_last_slot(live_server, client, keys) -> None:  # type: ignore[no-untyped-def]
    # Email marketing has no quiet hours, so the race is about the weekly cap (2 reactivation touches) only.
    people = [f"racer{i}@corp.com" for i in range(3)]
    for email in people:
        client.post("/v1/identities", json={"email": email}, headers=keys["writer"])
    client.post("/v1/touches", json={"email": people[0], "channel": "email", "purpose": "marketing",
                                     "program": "reactivation",
                                     "sent_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
                headers=keys["sender"])
    barrier = threading.Barrier(16)
    granted: dict[str, int] = {email: 0 for email in people}
    lock = threading.Lock()

    def race(i: int) -> None:
        email = people[i % len(people)]
        with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=30) as http:
            barrier.wait()
            answer = http.post("/v1/eligibility", json={"email": email, "channel": "email", "purpose": "marketing",
                                                        "program": "reactivation", "reserve": True})
            assert answer.status_code == 200, answer.text
            if answer.json()["allowed"]:
                with lock:
                    granted[email] += 1

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # One slot was left for the first person, two for each of the others; never more.
    assert granted == {people[0]: 1, people[1]: 2, people[2]: 2}


def test_batches_and_single_senders_racing_never_exceed_a_cap(live_server, client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    """Batches that reserve lock their people as a single reservation locks its person: eight
    batches (each asking for every person twice, in its own order) and eight single senders race
    for two weekly slots per person, and exactly two are granted per person."""
    from consentgate.store.models import Touch

    people = [f"batch-racer{i}@corp.com" for i in range(4)]
    ids = {client.post("/v1/identities", json={"email": email}, headers=keys["writer"]).get_json()["identity_id"]: email
           for email in people}
    barrier = threading.Barrier(16)
    granted: dict[str, int] = {email: 0 for email in people}
    lock = threading.Lock()
    ask = {"channel": "email", "purpose": "marketing", "program": "reactivation", "reserve": True}

    def race(i: int) -> None:
        with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
            barrier.wait()
            if i % 2:
                answer = http.post("/v1/eligibility", json={"email": people[i % 4], **ask})
                assert answer.status_code == 200, answer.text
                answers = [answer.json()]
            else:
                order = people[i % 4:] + people[:i % 4]
                answer = http.post("/v1/eligibility/batch", json={"items": [{"email": e, **ask} for e in order * 2]})
                assert answer.status_code == 200, answer.text
                answers = answer.json()["decisions"]
            with lock:
                for one in answers:
                    if one["allowed"]:
                        assert one["reservation_id"] is not None
                        granted[ids[one["identity_id"]]] += 1

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted == {email: 2 for email in people}
    reserved = [t for t in rows(Touch) if t.identity_id in ids]
    assert len(reserved) == 8 and all(t.state == "reserved" for t in reserved)
