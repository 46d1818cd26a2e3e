"""Email one-click unsubscribe (RFC 8058): signed links, a page on GET, revocation on POST."""

from __future__ import annotations

from datetime import timedelta

from consentgate.store.models import Revocation


def _link(client, keys, runtime, **body):  # type: ignore[no-untyped-def]
    answer = client.post("/v1/unsubscribe-links", json={"email": "Reader@Corp.com", **body}, headers=keys["sender"])
    assert answer.status_code == 200
    link = answer.get_json()
    assert link["headers"]["List-Unsubscribe"] == f"<{link['url']}>"
    assert link["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link["url"].startswith(runtime.settings.public_url)
    return link["url"].removeprefix(runtime.settings.public_url)


def _email_allowed(client, keys, brand=None) -> bool:  # type: ignore[no-untyped-def]
    body = {"email": "reader@corp.com", "channel": "email", "purpose": "marketing"}
    if brand:
        body["brand"] = brand
    return client.post("/v1/eligibility", json=body, headers=keys["sender"]).get_json()["allowed"]


def test_get_shows_a_page_and_changes_nothing(client, keys, runtime, rows) -> None:  # type: ignore[no-untyped-def]
    path = _link(client, keys, runtime)
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "reader@corp.com" in page.get_data(as_text=True) and "<form" in page.get_data(as_text=True)
    assert rows(Revocation) == []


def test_one_click_post_revokes_at_once_and_only_once(client, keys, runtime, rows) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "reader@corp.com"}, headers=keys["writer"])
    assert _email_allowed(client, keys)
    path = _link(client, keys, runtime)
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert not _email_allowed(client, keys)
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    [revocation] = rows(Revocation)
    assert revocation.source == "email_one_click" and revocation.channels == ["email"]


def test_brand_link_stops_only_that_brand(client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "reader@corp.com"}, headers=keys["writer"])
    client.post(_link(client, keys, runtime, brand="acme"), data={"List-Unsubscribe": "One-Click"})
    assert not _email_allowed(client, keys, brand="acme")
    assert _email_allowed(client, keys, brand="globex")


def test_tampered_or_expired_tokens_are_refused_with_a_page(client, keys, runtime, clock, rows) -> None:  # type: ignore[no-untyped-def]
    path = _link(client, keys, runtime)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    clock.set(clock.now + timedelta(days=1))
    for refused in (client.post(tampered, data={"List-Unsubscribe": "One-Click"}), client.get(tampered)):
        assert refused.status_code == 400 and refused.mimetype == "text/html"
        assert "cannot be used" in refused.get_data(as_text=True)
    clock.set(clock.now + timedelta(days=runtime.policy.policy.email_unsubscribe.token_max_age_days + 1))
    for refused in (client.post(path, data={"List-Unsubscribe": "One-Click"}), client.get(path)):
        assert refused.status_code == 400 and refused.mimetype == "text/html"
        assert "expired" in refused.get_data(as_text=True)
    assert rows(Revocation) == []


def test_a_click_on_the_page_is_recorded_as_a_link_unsubscribe(client, keys, runtime, rows) -> None:  # type: ignore[no-untyped-def]
    """The page's button is a person unsubscribing (email_link); RFC 8058's automatic POST from a
    mail client is email_one_click."""
    client.post("/v1/identities", json={"email": "reader@corp.com"}, headers=keys["writer"])
    path = _link(client, keys, runtime)
    page = client.get(path).get_data(as_text=True)
    assert 'name="confirm"' in page and "List-Unsubscribe" not in page
    assert client.post(path, data={"confirm": "yes"}).status_code == 200
    assert not _email_allowed(client, keys)
    [revocation] = rows(Revocation)
    assert revocation.source == "email_link"
