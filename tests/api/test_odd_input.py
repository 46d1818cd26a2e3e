"""Odd text in every free-form field of the API: refused with a problem naming the field, or
accepted; never a server error (a 500 there once came from a proof URI "https://[")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 25, 17, tzinfo=UTC)
odd = st.text(max_size=40) | st.sampled_from([
    "https://[", "http://[::1", "https://a:b@[x]/", "https://x:99999999/", "%", "%ZZ", "\\", "../..", "0", "-1",
    "9" * 30, "1e400", "NaN", "null", "[]", "{}", "https://x.com/" + "a" * 3000, "\u202e", "a\u0301",
    "\uff33\uff34\uff2f\uff30", "2026-13-45", "+1 (305) 555-0100 ext. 9", "x@[127.0.0.1]", "\"quoted\"@example.com"])
maybe = st.none() | odd


def _refused_or_done(response: Any, what: object, page: bool = False) -> None:
    """``page``: a link a person follows from an email, refused with an HTML page."""
    body = response.get_data()
    response.close()
    assert response.status_code < 500, (what, body[:300])
    if response.status_code >= 400:
        # A token that does not reach the page's route at all ("#", "..") is the API's 404.
        html = page and response.status_code == 400
        assert response.mimetype == ("text/html" if html else "application/problem+json"), (what, body[:300])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_odd_text_never_breaks_the_api(client, keys, clock, data) -> None:  # type: ignore[no-untyped-def]
    clock.set(NOW)
    when = (NOW - timedelta(days=1)).isoformat()
    draw = data.draw
    phone = draw(st.sampled_from(["+13055550100", draw(odd)]))
    posts = [
        ("/v1/consents", "writer", {
            "phone": phone, "channel": "sms", "purpose": "marketing", "consent_type": "express_written",
            "captured_at": when, "source": draw(odd), "proof_uri": draw(odd), "ip": draw(odd), "user_agent": draw(odd),
            "brand": draw(maybe), "consent_text": draw(odd), "proof_sha256": draw(maybe)}),
        ("/v1/identities", "writer", {
            "email": draw(odd), "phone": draw(maybe), "external_id": draw(odd), "company_domain": draw(maybe),
            "attributes": {"timezone": draw(maybe), "state": draw(maybe), "country": draw(maybe), "name": draw(odd)}}),
        ("/v1/revocations", "writer", {
            "phone": phone, "channels": [draw(odd)], "purposes": [draw(odd)], "brands": [draw(odd)],
            "reason": draw(odd), "raw_text": draw(odd), "source": draw(st.sampled_from(["api", "manual", draw(odd)]))}),
        ("/v1/suppressions", "writer", {
            "phone": phone, "kind": draw(st.sampled_from(["bounce", "reassigned", draw(odd)])), "note": draw(odd),
            "since": draw(st.none() | st.just(when) | odd)}),
        ("/v1/eligibility", "sender", {
            "phone": phone, "channel": draw(st.sampled_from(["sms", draw(odd)])), "purpose": "marketing",
            "program": draw(maybe), "segment": draw(maybe), "campaign": draw(maybe), "brand": draw(maybe)}),
        ("/v1/touches", "sender", {
            "phone": phone, "channel": "sms", "purpose": "marketing", "program": draw(odd), "segment": draw(odd),
            "campaign": draw(odd), "brand": draw(odd)}),
        ("/v1/unsubscribe-links", "sender", {"email": draw(odd), "brand": draw(maybe), "purpose": draw(maybe)}),
        ("/v1/subscriptions", "admin", {"name": draw(odd), "url": draw(odd), "event_types": [draw(odd)]}),
    ]
    for path, role, body in posts:
        _refused_or_done(client.post(path, json=body, headers=keys[role]), (path, body))
    for name in ("email", "phone"):
        _refused_or_done(client.get("/v1/identities", query_string={name: draw(odd)}, headers=keys["auditor"]), name)
    for report, extra in (("consents", "channel"), ("revocations", "sla_status"), ("decisions", "code"),
                          ("optouts", "group_by")):
        query = {extra: draw(odd), "since": draw(odd), "format": draw(st.sampled_from(["csv", "json", draw(odd)]))}
        _refused_or_done(client.get(f"/v1/reports/{report}", query_string=query, headers=keys["auditor"]),
                         (report, query))
    token = draw(odd).replace("/", "") or "x"
    _refused_or_done(client.get(f"/v1/unsubscribe/{token}"), token, page=True)
    _refused_or_done(client.post(f"/v1/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}), token,
                     page=True)
