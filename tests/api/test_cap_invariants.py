"""Fatigue caps through any sequence of reservations, batches, releases, confirmations and sends.

A small model keeps, per person, the touches that count (reservations held or used, sends made
elsewhere) and says what the gate must answer; every single check and every batch item is held
to it. A batch is decided in input order, each item seeing the slots reserved before it, exactly
as if its items were asked one by one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

NOW = datetime(2026, 11, 25, 17, tzinfo=UTC)
PEOPLE = ["pat@corp.com", "lee@corp.com", "kim@other.org"]
CAP = 2                                   # reactivation_weekly in the default policy
ASK = {"channel": "email", "purpose": "marketing", "program": "reactivation"}


def test_a_cap_is_never_exceeded_and_batches_answer_as_one_by_one(client, start_over) -> None:  # type: ignore[no-untyped-def]
    keys: dict[str, dict[str, str]] = {}

    class Caps(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            keys.update(start_over(NOW))
            for person in PEOPLE:   # email marketing needs no consent here: only the cap decides
                assert client.post("/v1/identities", json={"email": person}, headers=keys["writer"]).status_code == 201
            self.held: dict[str, list[int | None]] = {p: [] for p in PEOPLE}    # counted touches (reservation ids)
            self.open: dict[str, list[int]] = {p: [] for p in PEOPLE}           # reservations not yet used

        def post(self, path: str, body: dict[str, Any], role: str = "sender") -> Any:
            answer = client.post(path, json=body, headers=keys[role])
            assert answer.status_code < 500, (path, body, answer.get_data()[:300])
            return answer

        def expect(self, person: str, reserve: bool, answer: dict[str, Any]) -> None:
            free = len(self.held[person]) < CAP
            assert answer["allowed"] is free, (person, self.held[person], answer)
            if not free:
                assert {r["code"] for r in answer["reasons"]} == {"FATIGUE_CAP"}
                assert answer["reservation_id"] is None
            elif reserve:
                assert answer["reservation_id"] is not None
                self.held[person].append(answer["reservation_id"])
                self.open[person].append(answer["reservation_id"])
            else:
                assert answer["reservation_id"] is None

        @rule(person=st.sampled_from(PEOPLE), reserve=st.booleans())
        def single(self, person: str, reserve: bool) -> None:
            answer = self.post("/v1/eligibility", {"email": person, **ASK, "reserve": reserve}).get_json()
            self.expect(person, reserve, answer)

        @rule(items=st.lists(st.tuples(st.sampled_from(PEOPLE), st.booleans()), min_size=1, max_size=7))
        def batch(self, items: list[tuple[str, bool]]) -> None:
            body = {"items": [{"email": person, **ASK, "reserve": reserve} for person, reserve in items]}
            answers = self.post("/v1/eligibility/batch", body).get_json()["decisions"]
            for (person, reserve), answer in zip(items, answers, strict=True):
                self.expect(person, reserve, answer)

        @rule(person=st.sampled_from(PEOPLE), confirm=st.booleans())
        def settle(self, person: str, confirm: bool) -> None:
            """Use a reservation for a send (it still counts), or give it back (it no longer does)."""
            if not self.open[person]:
                return
            reservation = self.open[person].pop(0)
            if confirm:
                assert self.post("/v1/touches", {"reservation_id": reservation}).status_code == 201
            else:
                assert client.delete(f"/v1/reservations/{reservation}", headers=keys["sender"]).status_code == 204
                self.held[person].remove(reservation)

        @rule(person=st.sampled_from(PEOPLE))
        def sent_elsewhere(self, person: str) -> None:
            assert self.post("/v1/touches", {"email": person, **ASK}).status_code == 201
            self.held[person].append(None)

    run_state_machine_as_test(Caps, settings=settings(max_examples=10, stateful_step_count=15, deadline=None,
                                                      suppress_health_check=list(HealthCheck)))
