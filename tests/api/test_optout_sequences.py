"""Any sequence of opt-outs and consents for one person: after an opt-out, only the person's own
later consent with proof makes them contactable again on that channel; a CRM record of consent
(no proof), whenever it says it was captured, never does. And the gate says no no more often than
that: texts and calls go when the person's latest statement of consent (latest by when it was
captured) is written consent with proof and no opt-out is in force; email goes unless opted out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)   # inside calling hours in Miami
PHONE, EMAIL = "+13055550177", "robin@corp.com"
ADDRESS = {"sms": {"phone": PHONE}, "voice": {"phone": PHONE}, "email": {"email": EMAIL}}
steps = st.lists(st.one_of(
    st.tuples(st.just("revoke"), st.sampled_from([["*"], ["sms"], ["voice"], ["email"], ["sms", "voice"]])),
    st.tuples(st.just("crm_consent"), st.sampled_from(["sms", "voice", "email"]), st.integers(-30, 0)),
    st.tuples(st.just("proven_consent"), st.sampled_from(["sms", "voice", "email"]), st.just(0)),
), min_size=1, max_size=7)


@given(sequence=steps)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_only_a_later_proven_consent_undoes_an_opt_out(client, clock, start_over, sequence) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    client.post("/v1/identities", json={"phone": PHONE, "email": EMAIL}, headers=keys["writer"])
    opted_out = {"sms": False, "voice": False, "email": False}
    # Per channel, each consent as (captured at, order written, proven): the latest statement wins.
    consents: dict[str, list[tuple[datetime, int, bool]]] = {"sms": [], "voice": [], "email": []}
    for number, step in enumerate(sequence):
        now = NOON_ET + timedelta(minutes=number + 1)
        clock.set(now)
        if step[0] == "revoke":
            answer = client.post("/v1/revocations", json={"phone": PHONE, "channels": step[1], "source": "manual"},
                                 headers=keys["writer"])
            assert answer.status_code == 201, answer.get_json()
            for channel in opted_out:
                opted_out[channel] |= "*" in step[1] or channel in step[1]
        else:
            kind, channel, days = step
            body = {**ADDRESS[channel], "channel": channel, "purpose": "marketing",
                    "consent_type": "express_written" if kind == "proven_consent" else "express",
                    "source": "web_form" if kind == "proven_consent" else "crm_import",
                    "captured_at": (now + timedelta(days=days)).isoformat()}
            if kind == "proven_consent":
                body["proof_uri"] = f"https://proof.example.com/{number}"
                opted_out[channel] = False
            consents[channel].append((now + timedelta(days=days), number, kind == "proven_consent"))
            answer = client.post("/v1/consents", json=body, headers=keys["writer"])
            assert answer.status_code == 201, answer.get_json()
        for channel, stopped in opted_out.items():
            decision = client.post("/v1/eligibility", json={**ADDRESS[channel], "channel": channel,
                                                            "purpose": "marketing"},
                                   headers=keys["sender"]).get_json()
            written = bool(consents[channel]) and max(consents[channel])[2]
            expected = not stopped and (written or channel == "email")
            assert decision["allowed"] is expected, (sequence[:number + 1], channel, decision)
