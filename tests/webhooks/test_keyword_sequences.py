"""Any sequence of texts from a person: after an opt-out with no opt-in since, the gate never
allows a text to them, whatever came before, whatever the provider flagged, however it is asked."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhooks.test_sms_webhooks import NOON_ET, PHONE, twilio

OPT_OUTS = ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "quit", "please stop texting me", "wrong number", "STOP\x00"]
OPT_INS = ["START", "unstop", "Yes"]
OTHERS = ["HELP", "info", "hello", "what time is it?", "", "stopping by later", "YES please call"]
messages = st.lists(st.tuples(st.sampled_from(OPT_OUTS + OPT_INS + OTHERS),
                              st.sampled_from([{}, {"OptOutType": "STOP"}, {"OptOutType": "START"},
                                               {"OptOutType": "HELP"}])), min_size=1, max_size=8)


@given(sequence=messages)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_last_opt_out_holds(client, keys, clock, start_over, sequence) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    client.post("/v1/consents", json={"phone": PHONE, "channel": "sms", "purpose": "marketing",
                                      "consent_type": "express_written", "source": "web_form",
                                      "captured_at": (NOON_ET - timedelta(days=9)).isoformat(),
                                      "proof_uri": "https://proof.example.com/sms"}, headers=keys["writer"])
    opted_out = False
    for number, (text, flags) in enumerate(sequence):
        clock.set(NOON_ET + timedelta(minutes=number + 1))
        answer = twilio(client, text, f"SM-seq-{number}", **flags)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        if text in OPT_OUTS:
            opted_out = True
        elif text in OPT_INS:
            opted_out = False
        if opted_out:
            for purpose in ("marketing", "informational"):
                for ask in ({"phone": PHONE}, {"phone": "(305) 555-0133"}):
                    decision = client.post("/v1/eligibility", json={**ask, "channel": "sms", "purpose": purpose},
                                           headers=keys["sender"]).get_json()
                    assert decision["allowed"] is False, (sequence[:number + 1], decision)
            batch = client.post("/v1/eligibility/batch", json={"items": [
                {"phone": PHONE, "channel": "sms", "purpose": "marketing"}]}, headers=keys["sender"]).get_json()
            assert batch["decisions"][0]["allowed"] is False
