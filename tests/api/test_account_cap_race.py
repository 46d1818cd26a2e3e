"""Colleagues share an account cap: senders racing for its last slot never both get it."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_policy(tmp_path: Path) -> Path:
    """The default policy plus a cap counted per company: two reactivation touches a week."""
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    policy["fatigue_caps"].append({"name": "account_reactivation_weekly", "programs": ["reactivation"], "max": 2,
                                   "window": "7d", "per": "account"})
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def test_colleagues_racing_never_exceed_their_account_cap(live_server, client, keys) -> None:  # type: ignore[no-untyped-def]
    """Sixteen senders, single checks and batches, reserve for four people at one company; the
    cap counts the company's touches, so exactly two reservations are granted in all."""
    people = [f"colleague{i}@acme-racing.com" for i in range(4)]
    for email in people:
        assert client.post("/v1/identities", json={"email": email}, headers=keys["writer"]).status_code == 201
    barrier = threading.Barrier(16)
    granted: list[str] = []
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
                answer = http.post("/v1/eligibility/batch", json={"items": [{"email": people[i % 4], **ask}]})
                assert answer.status_code == 200, answer.text
                answers = answer.json()["decisions"]
            with lock:
                granted.extend(str(one["identity_id"]) for one in answers if one["allowed"])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 2
    after = httpx.post(f"{live_server}/v1/eligibility", json={"email": people[0], **ask}, headers=keys["sender"])
    assert after.json()["allowed"] is False
    assert {r["code"] for r in after.json()["reasons"]} == {"FATIGUE_CAP"}
