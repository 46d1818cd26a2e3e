"""The auditor page in a real browser (headless Chromium) against a real HTTP server."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from consentgate.store.models import Touch

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


@pytest.fixture
def server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def seeded(client, keys, clock, runtime) -> None:  # type: ignore[no-untyped-def]
    """Two campaigns: one made a person text STOP, the other did not."""
    clock.set(NOON_ET)
    with runtime.store.transaction() as session:
        for i, campaign in enumerate(["winback-q4", "winback-q4", "spring-promo"]):
            phone = f"+1305555020{i}"
            ident = client.post("/v1/identities", json={"phone": phone}, headers=keys["writer"]).get_json()
            session.add(Touch(identity_id=ident["identity_id"], channel="sms", purpose="marketing",
                              campaign=campaign, state="sent", at=NOON_ET - timedelta(hours=2),
                              sent_at=NOON_ET - timedelta(hours=2), created_at=NOON_ET - timedelta(hours=2)))
    client.post("/v1/revocations", json={"phone": "+13055550200", "channels": ["sms"], "source": "sms_keyword"},
                headers=keys["writer"])
    client.post("/v1/eligibility", json={"phone": "+13055550200", "channel": "sms", "purpose": "marketing"},
                headers=keys["sender"])


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_auditor_sees_chain_sla_and_optout_rates(server, seeded, keys) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    key = keys["auditor"]["Authorization"].removeprefix("Bearer ")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server + "/audit")
        expect(page.locator("h1")).to_contain_text("auditor")
        page.fill("#api-key", key)
        page.click("#load")
        expect(page.locator("#status")).to_have_attribute("data-state", "ready", timeout=15_000)
        expect(page.locator("#chain")).to_have_attribute("data-state", "ok")
        expect(page.locator("#chain")).to_contain_text("verified")
        # No downstream is registered: the revocation was effective at once, well inside its deadline.
        expect(page.locator("#sla-met")).to_have_text("1")
        rows = page.locator("#optouts tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#optouts tbody")).to_contain_text("winback-q4")
        expect(page.locator("#optout-chart rect.bar")).to_have_count(2)
        expect(page.locator("#decisions-denied")).to_have_text("1")
        # A wrong key is told so, in the page.
        page.fill("#api-key", "cg_wrong")
        page.click("#load")
        expect(page.locator("#status")).to_have_attribute("data-state", "error")
        expect(page.locator("#status")).to_contain_text("401")
        assert errors == []
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_auditor_page_walks_a_long_chain_in_stretches(server, seeded, client, keys, runtime) -> None:  # type: ignore[no-untyped-def]
    """The page checks the chain a stretch per request (two entries here, ?stretch=2) and
    reports the whole count, or the first broken link wherever it lies."""
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import text

    for i in range(4):
        client.post("/v1/consents", json={
            "email": f"reader{i}@corp.com", "channel": "email", "purpose": "marketing",
            "consent_type": "double_opt_in", "source": "crm",
            "captured_at": (NOON_ET - timedelta(days=1)).isoformat()}, headers=keys["writer"])
    key = keys["auditor"]["Authorization"].removeprefix("Bearer ")
    asked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda request: asked.append(request.url) if "/v1/audit/verify" in request.url else None)
        page.goto(server + "/audit?stretch=2")
        page.fill("#api-key", key)
        page.click("#load")
        expect(page.locator("#chain")).to_have_attribute("data-state", "ok", timeout=15_000)
        expect(page.locator("#chain")).to_contain_text("5 ledger rows verified")
        assert [url.split("?")[1] for url in asked] == ["after=0&limit=2", "after=2&limit=2", "after=4&limit=2"]

        with runtime.store.engine.begin() as conn:
            conn.execute(text("UPDATE consent_event SET source = 'forged' WHERE id = "
                              "(SELECT row_id FROM chain_entry WHERE seq = 5)"))
        page.click("#load")
        expect(page.locator("#chain")).to_have_attribute("data-state", "broken", timeout=15_000)
        expect(page.locator("#chain")).to_contain_text("Chain broken at entry 5 (consent_event")
        browser.close()
