"""Whatever a person opted out of, and however they come back after being erased (one address
or both, through the API), every opt-out in force at the erasure still holds for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONE, EMAIL = "+13055550188", "drew.gone@corp.com"
ADDRESSES = {"phone": PHONE, "email": EMAIL}
KIND = {"sms": "phone", "voice": "phone", "email": "email", "postal": None}
channel_sets = st.sampled_from([["*"], ["sms"], ["voice"], ["email"], ["postal"], ["sms", "voice"],
                                ["email", "postal"]])


@given(opt_outs=st.lists(st.tuples(st.sampled_from(["phone", "email"]), channel_sets), min_size=1, max_size=3),
       comes_back=st.sampled_from([("phone",), ("email",), ("phone", "email")]))
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_opt_outs_outlive_erasure(client, clock, start_over, opt_outs, comes_back) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    made = client.post("/v1/identities", json={"phone": PHONE, "email": EMAIL}, headers=keys["writer"]).get_json()
    stopped: set[str] = set()
    for number, (kind, channels) in enumerate(opt_outs):
        clock.set(NOON_ET + timedelta(minutes=number + 1))
        answer = client.post("/v1/revocations", json={kind: ADDRESSES[kind], "channels": channels, "source": "manual"},
                             headers=keys["writer"])
        assert answer.status_code == 201, answer.get_json()
        stopped |= {c for c in KIND if "*" in channels or c in channels}
    clock.set(NOON_ET + timedelta(hours=1))
    erased = client.delete(f"/v1/identities/{made['identity_id']}", headers=keys["admin"])
    assert erased.status_code == 200, erased.get_json()

    clock.set(NOON_ET + timedelta(hours=2))
    again = {kind: ADDRESSES[kind] for kind in comes_back}
    assert client.post("/v1/identities", json=again, headers=keys["writer"]).status_code == 201
    # Written consent with proof, captured before any of the opt-outs: it undoes none of them.
    for channel in ("sms", "voice", "email", "postal"):
        kind = KIND[channel] or comes_back[0]
        if kind in again:
            client.post("/v1/consents", json={kind: again[kind], "channel": channel, "purpose": "marketing",
                                              "consent_type": "express_written", "source": "web_form",
                                              "captured_at": (NOON_ET - timedelta(days=30)).isoformat(),
                                              "proof_uri": "https://proof.example.com/old"}, headers=keys["writer"])
    for channel in stopped:
        for kind in comes_back:
            if KIND[channel] not in (None, kind):
                continue
            decision = client.post("/v1/eligibility", json={kind: again[kind], "channel": channel,
                                                            "purpose": "marketing"}, headers=keys["sender"]).get_json()
            assert decision["allowed"] is False, (opt_outs, comes_back, channel, kind, decision)
