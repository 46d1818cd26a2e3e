"""The gate's first promise end to end, through any sequence of writes: people created and
deduplicated, consents, revocations (per identity or per account), merges in either direction.
Whatever happened, an address whose person (or company) said stop is never allowed again, by a
single check or in a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

NOW = datetime(2026, 11, 25, 17, tzinfo=UTC)    # noon in New York: inside every calling window
EMAILS = ["pat@corp.com", "lee@corp.com", "kim@other.org"]
PHONES = ["+12125550100", "+12125550101"]
ADDRESSES = [("email", e) for e in EMAILS] + [("phone", p) for p in PHONES]
# Postal mail reaches the person: asked by either address, stopped by an opt-out through either.
CHANNELS = {"email": ["email", "postal"], "phone": ["sms", "voice", "postal"]}
Address = tuple[str, str]


def test_a_revoked_person_or_company_is_never_allowed(client, start_over) -> None:  # type: ignore[no-untyped-def]
    keys: dict[str, dict[str, str]] = {}

    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            keys.update(start_over(NOW))
            self.revoked: dict[Address, set[str]] = {}     # channels stopped through this address
            self.accounts: dict[str, set[str]] = {}        # channels stopped for a whole company

        def post(self, path: str, body: dict[str, Any], role: str = "writer") -> Any:
            answer = client.post(path, json=body, headers=keys[role])
            assert answer.status_code < 500, (path, body, answer.get_data()[:300])
            return answer

        def view(self, address: Address) -> dict[str, Any] | None:
            found = client.get("/v1/identities", query_string={address[0]: address[1]}, headers=keys["auditor"])
            return found.get_json() if found.status_code == 200 else None

        @rule(a=st.sampled_from(ADDRESSES), b=st.sampled_from(ADDRESSES))
        def person(self, a: Address, b: Address) -> None:
            self.post("/v1/identities", {a[0]: a[1]} | ({b[0]: b[1]} if b[0] != a[0] else {}))

        @rule(a=st.sampled_from(ADDRESSES))
        def consent(self, a: Address) -> None:
            # Enough for every channel, and captured before any revocation: it never undoes one here.
            for channel in CHANNELS[a[0]]:
                self.post("/v1/consents", {a[0]: a[1], "channel": channel, "purpose": "marketing",
                                           "consent_type": "express_written",
                                           "captured_at": (NOW - timedelta(days=30)).isoformat(), "source": "crm",
                                           "proof_uri": "https://proof.example.com/1"})

        @rule(a=st.sampled_from(ADDRESSES),
              channels=st.sampled_from([["*"], ["sms"], ["email"], ["voice"], ["postal"]]), account=st.booleans())
        def revoke(self, a: Address, channels: list[str], account: bool) -> None:
            body: dict[str, Any] = {a[0]: a[1], "channels": channels, "purposes": ["*"], "source": "api"}
            if account:
                body["scope"] = "account"
            before = self.view(a)
            if self.post("/v1/revocations", body).status_code >= 300:
                return
            self.revoked.setdefault(a, set()).update(channels)
            if account and before and before["account_domain"]:
                self.accounts.setdefault(before["account_domain"], set()).update(channels)

        @rule(a=st.sampled_from(ADDRESSES), b=st.sampled_from(ADDRESSES))
        def merge(self, a: Address, b: Address) -> None:
            people = [self.view(a), self.view(b)]
            if people[0] and people[1] and people[0]["identity_id"] != people[1]["identity_id"]:
                self.post(f"/v1/identities/{people[0]['identity_id']}/merge",
                          {"other_identity_id": people[1]["identity_id"]})

        @rule()
        def check(self) -> None:
            asks, singles, must_deny = [], [], []
            for a in ADDRESSES:
                person = self.view(a)
                stopped = set(self.revoked.get(a, set()))
                if person:
                    for cp in person["contact_points"]:
                        stopped |= self.revoked.get((cp["kind"], cp["value"]), set())
                    stopped |= self.accounts.get(person["account_domain"] or "", set())
                for channel in CHANNELS[a[0]]:
                    asks.append({a[0]: a[1], "channel": channel, "purpose": "marketing"})
                    singles.append(self.post("/v1/eligibility", asks[-1], "sender").get_json())
                    must_deny.append("*" in stopped or channel in stopped)
            # The batch reads everyone's facts by other code: it must answer as the single checks did.
            batch = self.post("/v1/eligibility/batch", {"items": asks}, "sender").get_json()["decisions"]
            def seen(answer: dict[str, Any]) -> tuple[bool, int | None, list[str]]:
                return answer["allowed"], answer["identity_id"], sorted(r["code"] for r in answer["reasons"])

            for ask, single, from_batch, deny in zip(asks, singles, batch, must_deny, strict=True):
                if deny:
                    assert not single["allowed"] and not from_batch["allowed"], (ask, single, from_batch)
                assert seen(from_batch) == seen(single), ask

    run_state_machine_as_test(Ledger, settings=settings(max_examples=12, stateful_step_count=15, deadline=None,
                                                         suppress_health_check=list(HealthCheck)))
