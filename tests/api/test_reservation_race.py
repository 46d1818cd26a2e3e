"""Senders race for the last fatigue slots against a real server (4 worker processes): single
checks, batches, and colleagues sharing a cap counted per company."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


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


ASK = {"channel": "email", "purpose": "marketing", "program": "reactivation", "reserve": True}


@pytest.fixture
def live_policy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The default policy; with the parameter ``"account_cap"``, plus two reactivation touches a
    week per company."""
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    if getattr(request, "param", None) == "account_cap":
        policy["fatigue_caps"].append({"name": "account_reactivation_weekly", "programs": ["reactivation"],
                                       "max": 2, "window": "7d", "per": "account"})
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def race(live_server: str, keys: dict[str, dict[str, str]], emails: list[list[str]]) -> list[dict[str, Any]]:
    """Senders at once, one per list of ``emails``: a single check for a list of one, else a batch;
    every answer they got, after each asserts that it was answered."""
    barrier = threading.Barrier(len(emails))
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(asked: list[str]) -> None:
        with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
            barrier.wait()
            if len(asked) == 1:
                answer = http.post("/v1/eligibility", json={"email": asked[0], **ASK})
                assert answer.status_code == 200, answer.text
                got = [answer.json()]
            else:
                answer = http.post("/v1/eligibility/batch", json={"items": [{"email": e, **ASK} for e in asked]})
                assert answer.status_code == 200, answer.text
                got = answer.json()["decisions"]
            with lock:
                answers.extend(got)

    threads = [threading.Thread(target=send, args=(asked,)) for asked in emails]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_batches_and_single_senders_racing_never_exceed_a_cap(live_server, client, keys, rows) -> None:  # type: ignore[no-untyped-def]
    """Batches that reserve lock their people as a single reservation locks its person: eight
    batches (each asking for every person twice, in its own order) and eight single senders race
    for two weekly slots per person, and exactly two are granted per person."""
    from consentgate.store.models import Touch

    people = [f"batch-racer{i}@corp.com" for i in range(4)]
    ids = {client.post("/v1/identities", json={"email": email}, headers=keys["writer"]).get_json()["identity_id"]: email
           for email in people}
    senders = [[people[i % 4]] if i % 2 else (people[i % 4:] + people[:i % 4]) * 2 for i in range(16)]
    granted = [one for one in race(live_server, keys, senders) if one["allowed"]]
    assert all(one["reservation_id"] is not None for one in granted)
    assert Counter(ids[one["identity_id"]] for one in granted) == {email: 2 for email in people}
    reserved = [t for t in rows(Touch) if t.identity_id in ids]
    assert len(reserved) == 8 and all(t.state == "reserved" for t in reserved)


@pytest.mark.parametrize("live_policy", ["account_cap"], indirect=True)
def test_colleagues_racing_never_exceed_their_account_cap(live_server, client, keys) -> None:  # type: ignore[no-untyped-def]
    """Sixteen senders, single checks and batches, reserve for four people at one company; the
    cap counts the company's touches, so exactly two reservations are granted in all (three
    companies, one race each)."""
    for company in ("acme-racing.com", "zest-racing.com", "bolt-racing.com"):
        people = [f"colleague{i}@{company}" for i in range(4)]
        for email in people:
            assert client.post("/v1/identities", json={"email": email}, headers=keys["writer"]).status_code == 201
        senders = [[people[i % 4]] if i % 2 else [people[i % 4], people[(i + 1) % 4]] for i in range(16)]
        assert sum(one["allowed"] for one in race(live_server, keys, senders)) == 2, company
        after = httpx.post(f"{live_server}/v1/eligibility", json={"email": people[0], **ASK}, headers=keys["sender"])
        assert after.json()["allowed"] is False
        assert {r["code"] for r in after.json()["reasons"]} == {"FATIGUE_CAP"}
