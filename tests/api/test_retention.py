"""The decision log is kept for the policy's retention period, then let go by a scheduled job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consentgate.jobs import run_once
from consentgate.services.retention import purge_expired_decisions
from consentgate.store.models import DecisionRecord

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONE = "+13055550177"


def _decide(client, keys, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    items = [{"phone": PHONE, "channel": "sms", "purpose": "marketing"}] * n
    answers = client.post("/v1/eligibility/batch", json={"items": items}, headers=keys["sender"]).get_json()
    single = client.post("/v1/eligibility", json=items[0], headers=keys["sender"]).get_json()
    return [a["decision_id"] for a in answers["decisions"]] + [single["decision_id"]]


def test_decisions_past_retention_go_and_younger_ones_stay(client, keys, clock, runtime, rows) -> None:  # type: ignore[no-untyped-def]
    assert runtime.policy.policy.retention.decision_log_years == 5
    clock.set(NOON_ET)
    old = _decide(client, keys, 6)
    clock.set(NOON_ET + timedelta(days=3 * 365))
    young = _decide(client, keys, 1)
    auditor = keys["auditor"]

    clock.set(NOON_ET + timedelta(days=5 * 365 - 3))   # not yet five years
    run_once(runtime, "decision_log_retention")
    assert sorted(d.id for d in rows(DecisionRecord)) == sorted(old + young)

    clock.set(NOON_ET + timedelta(days=5 * 365 + 3))
    # In small transactions, a bounded number per run: a store catching up does so over several runs.
    assert purge_expired_decisions(runtime.store, runtime.policy, clock.now, chunk=2, most=4) == 4
    assert len(rows(DecisionRecord)) == len(old) + len(young) - 4
    run_once(runtime, "decision_log_retention")
    assert sorted(d.id for d in rows(DecisionRecord)) == sorted(young)
    assert client.post(f"/v1/decisions/{old[0]}/replay", headers=auditor).status_code == 404
    assert client.post(f"/v1/decisions/{young[0]}/replay", headers=auditor).status_code == 200
    assert purge_expired_decisions(runtime.store, runtime.policy, clock.now) == 0
