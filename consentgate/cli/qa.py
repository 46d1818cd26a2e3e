"""``consentgate qa --url URL``: prove, before a launch, that opt-outs are honoured end to end.

It drives a running deployment the way a person and a sender would: a synthetic identity
(marked as a test record, kept out of every report), consent, an allowed check, a correctly
signed STOP through the SMS webhook, a one-click email unsubscribe, both denied at once, then
START and the restore. One PASS/FAIL line per step; exit code 1 on any failure.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import click
import httpx

from consentgate.core.signatures import generic_signature, twilio_signature


def register(cli: click.Group) -> None:
    cli.add_command(qa)


class Run:
    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(base_url=base.rstrip("/"), timeout=15,
                                 headers={"Authorization": f"Bearer {key}"})
        self.failures = 0

    def step(self, name: str, check: Callable[[], str | None]) -> None:
        try:
            problem = check()
        except Exception as exc:  # a broken deployment must fail the step, not crash the run
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self.failures += 1
            click.echo(f"FAIL  {name}: {problem}")
        else:
            click.echo(f"PASS  {name}")

    def post(self, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=body, **kwargs)

    def allowed(self, **body: Any) -> bool:
        answer = self.post("/v1/eligibility", body)
        answer.raise_for_status()
        return bool(answer.json()["allowed"])


def _expect(condition: bool, otherwise: str) -> str | None:
    return None if condition else otherwise


@click.command()
@click.option("--url", required=True, help="base URL of the deployment, e.g. https://consentgate.internal")
@click.option("--api-key", envvar="CONSENTGATE_QA_KEY", required=True,
              help="an admin key (or set CONSENTGATE_QA_KEY)")
@click.option("--provider", type=click.Choice(["generic", "twilio"]), default="generic", show_default=True,
              help="which SMS webhook to send the STOP and START through")
@click.option("--secret", default=None,
              help="the webhook secret (generic) or Twilio auth token of the deployment (default: "
                   "CONSENTGATE_WEBHOOK_SECRET, or CONSENTGATE_TWILIO_AUTH_TOKEN with --provider twilio)")
@click.option("--public-url", envvar="CONSENTGATE_PUBLIC_URL", default=None,
              help="the public URL the deployment signs Twilio requests against (default: --url)")
def qa(url: str, api_key: str, provider: str, secret: str | None, public_url: str | None) -> None:
    """Simulate STOP and UNSUBSCRIBE against a running deployment and confirm suppression."""
    # Each provider's own secret: a deployment configured for both has two.
    variable = "CONSENTGATE_TWILIO_AUTH_TOKEN" if provider == "twilio" else "CONSENTGATE_WEBHOOK_SECRET"
    secret = secret or os.environ.get(variable)
    if not secret:
        raise click.BadParameter(f"give --secret or set {variable}", param_hint="--secret")
    run = Run(url, api_key)
    tag = secrets.token_hex(4)
    phone = f"+1202555{secrets.randbelow(10000):04d}"
    email = f"qa-{tag}@example.com"   # a reserved domain: no real mailbox is ever touched
    sms = {"phone": phone, "channel": "sms", "purpose": "transactional"}
    mail = {"email": email, "channel": "email", "purpose": "marketing"}
    now = datetime.now(UTC)

    def send_sms(text: str) -> httpx.Response:
        message_id = f"qa-{tag}-{text.lower()}"
        if provider == "twilio":
            params = {"MessageSid": message_id, "From": phone, "To": "+12025550100", "Body": text}
            signature = twilio_signature(secret, (public_url or url).rstrip("/") + "/v1/webhooks/sms/twilio", params)
            return run.http.post("/v1/webhooks/sms/twilio", content=urlencode(params),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": signature})
        raw = json.dumps({"from": phone, "to": "+12025550100", "text": text, "message_id": message_id}).encode()
        return run.http.post("/v1/webhooks/sms/generic", content=raw,
                             headers={"Content-Type": "application/json",
                                      "X-Consentgate-Signature": generic_signature(secret, raw)})

    run.step("create a synthetic test identity", lambda: _expect(run.post("/v1/identities", {
        "phone": phone, "email": email, "test_record": True}).status_code in (200, 201), "identity not created"))
    run.step("record SMS consent with proof", lambda: _expect(run.post("/v1/consents", {
        "phone": phone, "channel": "sms", "purpose": "marketing", "consent_type": "express_written",
        "captured_at": (now - timedelta(minutes=1)).isoformat(), "source": "qa",
        "proof_uri": f"https://qa.example.com/{tag}"}).status_code == 201, "consent not recorded"))
    run.step("SMS is allowed before STOP", lambda: _expect(run.allowed(**sms), "denied"))
    run.step("email is allowed before unsubscribing", lambda: _expect(run.allowed(**mail), "denied"))
    run.step(f"signed STOP through the {provider} webhook", lambda: _expect(
        send_sms("STOP").status_code == 200, "webhook refused the STOP"))
    run.step("SMS is denied at once after STOP", lambda: _expect(not run.allowed(**sms), "still allowed"))

    def unsubscribe() -> str | None:
        link = run.post("/v1/unsubscribe-links", {"email": email}).json()
        path = "/v1/unsubscribe/" + link["url"].rsplit("/v1/unsubscribe/", 1)[1]
        answer = httpx.post(url.rstrip("/") + path, data={"List-Unsubscribe": "One-Click"}, timeout=15)
        return _expect(answer.status_code == 200, f"one-click POST answered {answer.status_code}")

    run.step("one-click email unsubscribe", unsubscribe)
    run.step("email is denied at once after unsubscribing", lambda: _expect(not run.allowed(**mail), "still allowed"))
    run.step(f"signed START through the {provider} webhook", lambda: _expect(
        send_sms("START").status_code == 200, "webhook refused the START"))
    run.step("SMS is allowed again after START", lambda: _expect(run.allowed(**sms), "still denied"))
    click.echo(f"{'FAILED' if run.failures else 'PASSED'}: {run.failures} step(s) failed")
    if run.failures:
        raise SystemExit(1)
