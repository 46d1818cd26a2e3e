"""Fatigue caps through any sequence of asks, confirmations, releases and waiting: the gate
grants a slot only while fewer than the cap count in the window (sends, and reservations still
alive), denies for the cap only when the cap is reached, and a reservation can be used only
while it is alive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

START = datetime(2026, 11, 25, 17, tzinfo=UTC)
EMAIL = "pat@corp.com"
TTL = timedelta(minutes=15)       # policies/default.yaml: reservations.ttl
WEEK, CAP = timedelta(days=7), 2  # policies/default.yaml: reactivation_weekly


def test_caps_hold_through_reservations_sends_releases_and_expiry(client, clock, start_over) -> None:  # type: ignore[no-untyped-def]
    keys: dict[str, dict[str, str]] = {}

    class Gate(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            keys.update(start_over(START))
            given = client.post("/v1/consents", json={
                "email": EMAIL, "channel": "email", "purpose": "marketing", "consent_type": "double_opt_in",
                "captured_at": (START - timedelta(days=60)).isoformat(), "source": "crm"}, headers=keys["writer"])
            assert given.status_code == 201, given.get_data()
            self.touches: list[dict[str, Any]] = []   # what the gate handed out: id, at, state, expires

        def counted(self, now: datetime) -> list[dict[str, Any]]:
            return [t for t in self.touches if now - WEEK < t["at"] <= now
                    and (t["state"] == "sent" or (t["state"] == "reserved" and t["expires"] > now))]

        @rule(minutes=st.integers(0, 3 * 24 * 60))
        def wait(self, minutes: int) -> None:
            clock.set(clock() + timedelta(minutes=minutes))

        @rule(segment=st.sampled_from([None, "stalled", "churned"]))
        def ask(self, segment: str | None) -> None:
            now = clock()
            answer = client.post("/v1/eligibility", json={
                "email": EMAIL, "channel": "email", "purpose": "marketing", "program": "reactivation",
                "segment": segment, "reserve": True}, headers=keys["sender"]).get_json()
            if answer["allowed"]:
                assert len(self.counted(now)) < CAP, (now, self.counted(now), answer)
                self.touches.append({"id": answer["reservation_id"], "at": now, "state": "reserved",
                                     "expires": now + TTL})
                return
            if segment is None and len(self.counted(now)) < CAP:
                assert {r["code"] for r in answer["reasons"]} != {"FATIGUE_CAP"}, (now, self.counted(now), answer)
            if answer["next_allowed_at"]:
                assert datetime.fromisoformat(answer["next_allowed_at"]) >= now

        @rule(pick=st.integers(0, 50))
        def confirm(self, pick: int) -> None:
            if not self.touches:
                return
            touch, now = self.touches[pick % len(self.touches)], clock()
            made = client.post("/v1/touches", json={"reservation_id": touch["id"]}, headers=keys["sender"])
            alive = touch["state"] == "reserved" and touch["expires"] > now
            assert (made.status_code == 201) == alive, (touch, now, made.get_data()[:200])
            if alive:
                touch["state"], touch["at"] = "sent", now

        @rule(pick=st.integers(0, 50))
        def release(self, pick: int) -> None:
            if not self.touches:
                return
            touch = self.touches[pick % len(self.touches)]
            given_back = client.delete(f"/v1/reservations/{touch['id']}", headers=keys["sender"])
            assert given_back.status_code == (409 if touch["state"] == "sent" else 204), given_back.get_data()
            if touch["state"] == "reserved":
                touch["state"] = "released"

    run_state_machine_as_test(Gate, settings=settings(max_examples=30, stateful_step_count=25, deadline=None,
                                                      suppress_health_check=list(HealthCheck)))
