"""Any sequence of unsubscribe links, clicks (RFC 8058's automatic POST and the page's button),
record-only consents, merges and waiting: once a link still in date was clicked, the email is
never allowed again for that brand and purpose, nor for a send naming no brand; clicks on links
out of date change nothing; and nothing else stops the email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
EMAIL = "reader@corp.com"
SPELLINGS = [EMAIL, "Reader@Corp.com", " READER@corp.com "]
BRANDS = [None, "acme", "Globex"]
MAX_AGE = timedelta(days=60)   # policies/default.yaml: email_unsubscribe.token_max_age_days

steps = st.lists(st.one_of(
    st.tuples(st.just("link"), st.sampled_from(SPELLINGS), st.sampled_from(BRANDS),
              st.sampled_from([None, "marketing", "informational"])),
    st.tuples(st.just("click"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("consent"), st.sampled_from(["express", "implied_ebr"])),
    st.tuples(st.just("merge"), st.sampled_from(["+13055550191", "other@corp.com"])),
    # Waits that never land a click on the last day of a link (ages stay clear of 60 days).
    st.tuples(st.just("wait"), st.sampled_from([25, 40])),
), min_size=1, max_size=10)


def _stopped(unsubscribed: list[tuple[str | None, str]], brand: str | None, purpose: str) -> bool:
    return any(p == purpose and (b is None or brand is None or b.casefold() == brand.casefold())
               for b, p in unsubscribed)


@given(sequence=steps)
@settings(max_examples=20, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_a_click_in_date_stops_the_email_for_good(client, clock, runtime, start_over, sequence) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    client.post("/v1/identities", json={"email": EMAIL}, headers=keys["writer"])
    now = NOON_ET
    links: list[tuple[str, datetime, str | None, str]] = []
    unsubscribed: list[tuple[str | None, str]] = []
    for step in sequence:
        now += timedelta(minutes=1)
        clock.set(now)
        if step[0] == "link":
            _, spelling, brand, purpose = step
            body = {"email": spelling, **({"brand": brand} if brand else {}),
                    **({"purpose": purpose} if purpose else {})}
            answer = client.post("/v1/unsubscribe-links", json=body, headers=keys["sender"])
            assert answer.status_code == 200, answer.get_json()
            links.append((answer.get_json()["url"].removeprefix(runtime.settings.public_url), now, brand,
                          purpose or "marketing"))
        elif step[0] == "click" and links:
            path, issued, brand, purpose = links[step[1] % len(links)]
            data = {"List-Unsubscribe": "One-Click"} if step[2] else {"confirm": "yes"}
            answer = client.post(path, data=data)
            if now - issued <= MAX_AGE:
                assert answer.status_code == 200, answer.get_data(as_text=True)
                unsubscribed.append((brand, purpose))
            else:
                assert answer.status_code == 400
        elif step[0] == "consent":
            client.post("/v1/consents", json={"email": EMAIL, "channel": "email", "purpose": "marketing",
                                              "consent_type": step[1], "source": "crm_import",
                                              "captured_at": now.isoformat()}, headers=keys["writer"])
        elif step[0] == "merge":
            # Someone else, then found to be the reader (by a number, or by a CRM id).
            other = {"email": step[1], "external_id": "crm-other"} if "@" in step[1] else {"phone": step[1]}
            client.post("/v1/identities", json=other, headers=keys["writer"])
            same = {"external_id": "crm-other"} if "@" in step[1] else other
            client.post("/v1/identities", json={"email": EMAIL, **same}, headers=keys["writer"])
        else:
            now += timedelta(days=step[1])
            clock.set(now)
        for brand in BRANDS:
            ask = {"email": EMAIL, "channel": "email", "purpose": "marketing", **({"brand": brand} if brand else {})}
            decision = client.post("/v1/eligibility", json=ask, headers=keys["sender"]).get_json()
            assert decision["allowed"] is not _stopped(unsubscribed, brand, "marketing"), (sequence, brand, decision)
