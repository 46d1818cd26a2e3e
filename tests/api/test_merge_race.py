"""Checks, single and in batches, racing merges against a real server (4 worker processes).

Each pair is someone who opted in to email and someone who said stop to everything; merging
the two makes one person whose stop covers the email. Checks asked while the merges land may
answer either way for a pair still being merged, but once a merge has answered, no check asked
after it may let that email through.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

PAIRS = 24


def test_no_check_lets_a_stop_through_once_its_merge_has_answered(live_server, client, keys) -> None:  # type: ignore[no-untyped-def]
    writer = keys["writer"]
    captured = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    pairs: list[tuple[int, int]] = []
    for i in range(PAIRS):
        email, phone = f"racer{i}@corp.com", f"+1305555{1000 + i:04d}"

        def consent(email: str = email) -> int:
            answer = client.post("/v1/consents", json={
                "email": email, "channel": "email", "purpose": "marketing", "consent_type": "double_opt_in",
                "captured_at": captured, "source": "web_form"}, headers=writer)
            assert answer.status_code == 201, answer.get_json()
            return int(answer.get_json()["identity_id"])

        def stop(phone: str = phone) -> int:
            answer = client.post("/v1/revocations", json={"phone": phone, "channels": ["*"],
                                                          "source": "sms_keyword"}, headers=writer)
            assert answer.status_code == 201, answer.get_json()
            return int(answer.get_json()["identity_id"])

        # The older person survives a merge: every other pair has the stop on the survivor, the
        # others on the person absorbed.
        if i % 2:
            pairs.append((consent(), stop()))
        else:
            stopped = stop()
            pairs.append((consent(), stopped))
    items = [{"email": f"racer{i}@corp.com", "channel": "email", "purpose": "marketing"} for i in range(PAIRS)]

    merged_at: dict[int, float] = {}
    done = threading.Event()
    failures: list[str] = []
    outcomes: list[int] = []

    def merge() -> None:
        with httpx.Client(base_url=live_server, headers=writer, timeout=30) as http:
            try:
                for i, (consented, stopped) in enumerate(pairs):
                    answer = http.post(f"/v1/identities/{consented}/merge", json={"other_identity_id": stopped})
                    if answer.status_code != 200:
                        failures.append(f"merge {i}: {answer.status_code} {answer.text}")
                    merged_at[i] = time.monotonic()
                    time.sleep(0.01)
            finally:
                done.set()

    def ask() -> None:
        with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
            while not done.is_set():
                before = dict(merged_at)
                answer = http.post("/v1/eligibility/batch", json={"items": items})
                outcomes.append(answer.status_code)
                if answer.status_code == 503:
                    continue      # merges kept landing while it read: a "no" for every item, asked again
                if answer.status_code != 200:
                    failures.append(f"batch: {answer.status_code} {answer.text}")
                    continue
                for i, decision in enumerate(answer.json()["decisions"]):
                    if i in before and decision["allowed"]:
                        failures.append(f"racer{i}@corp.com allowed after its merge had answered")

    def ask_one_by_one() -> None:
        with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
            while not done.is_set():
                for i, item in enumerate(items):
                    merged_before = i in merged_at
                    answer = http.post("/v1/eligibility", json=item)
                    outcomes.append(answer.status_code)
                    if answer.status_code not in (200, 503):
                        failures.append(f"check: {answer.status_code} {answer.text}")
                    elif answer.status_code == 200 and merged_before and answer.json()["allowed"]:
                        failures.append(f"racer{i}@corp.com allowed by a single check after its merge had answered")

    with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
        first = http.post("/v1/eligibility/batch", json={"items": items}).json()["decisions"]
    assert all(d["allowed"] for d in first)      # before any merge, every email may be sent to

    threads = [threading.Thread(target=merge), threading.Thread(target=ask_one_by_one)]
    threads += [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert outcomes.count(200) >= 3         # batches did run while the merges landed

    with httpx.Client(base_url=live_server, headers=keys["sender"], timeout=60) as http:
        last = http.post("/v1/eligibility/batch", json={"items": items}).json()["decisions"]
        one_by_one = [http.post("/v1/eligibility", json=item) for item in items]
    assert [answer.status_code for answer in one_by_one] == [200] * PAIRS
    for answers in (last, [answer.json() for answer in one_by_one]):
        assert not any(d["allowed"] for d in answers)
        assert all("REVOKED" in {r["code"] for r in d["reasons"]} for d in answers)
