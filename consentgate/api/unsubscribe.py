"""Email unsubscribe: link minting for senders, the confirmation page and RFC 8058 one-click POST."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import Field

from consentgate.api.auth import require
from consentgate.api.context import parse_body, runtime
from consentgate.api.openapi import documented
from consentgate.core.tokens import InvalidUnsubscribeToken
from consentgate.services.schemas import Request
from consentgate.services.unsubscribe import read_claim, unsubscribe, unsubscribe_link

bp = Blueprint("unsubscribe_api", __name__)


class LinkIn(Request):
    email: str = Field(max_length=320)
    brand: str | None = Field(None, max_length=100)
    purpose: str | None = Field(None, max_length=32)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:0;background:#1f5fbf;color:#fff;cursor:pointer}}
</style></head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=escape(title), body=body), status=status, mimetype="text/html",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _unusable(exc: InvalidUnsubscribeToken) -> Response:
    # The reader followed a link from an email: a page, not a JSON problem document.
    return _page("This unsubscribe link cannot be used",
                 f"<p>{escape(exc.detail)}</p><p>Use the unsubscribe link of a more recent email, or reply "
                 "to the sender asking to be unsubscribed.</p>", status=400)


@bp.post("/v1/unsubscribe-links")
@require("sender")
@documented("A signed unsubscribe link and the RFC 8058 List-Unsubscribe headers for one message",
            tags=["unsubscribe"], body=LinkIn)
def make_link() -> Response:
    rt = runtime()
    item = parse_body(LinkIn)
    link = unsubscribe_link(rt.policy, rt.secret_key, rt.settings.public_url, item.email, item.brand,
                            item.purpose, rt.clock())
    return jsonify({"url": link.url, "headers": link.headers})


# A link that is not ours, or expired, answers a page a person can read (``_unusable``).
_PAGE_ANSWERS: dict[int, Any] = {200: None, 400: "text/html", 404: None}


@bp.get("/v1/unsubscribe/<path:token>")
@documented("The unsubscribe confirmation page (a GET never unsubscribes: mail scanners follow links)",
            tags=["unsubscribe"], content_type="text/html", auth=False, responses=_PAGE_ANSWERS)
def confirm_page(token: str) -> Response:
    rt = runtime()
    try:
        claim = read_claim(rt.policy, rt.secret_key, token, rt.clock())
    except InvalidUnsubscribeToken as exc:
        return _unusable(exc)
    what = f" from {escape(claim.brand)}" if claim.brand else ""
    body = (f"<p>Stop emails{what} to <strong>{escape(claim.email)}</strong>?</p>"
            # Not RFC 8058's field: a person clicking here is recorded as email_link, a mail
            # client's automatic POST as email_one_click.
            f'<form method="post"><input type="hidden" name="confirm" value="yes">'
            f'<button type="submit">Unsubscribe</button></form>')
    return _page("Unsubscribe", body)


@bp.post("/v1/unsubscribe/<path:token>")
@documented("Unsubscribe at once (RFC 8058 one-click: body List-Unsubscribe=One-Click)",
            tags=["unsubscribe"], content_type="text/html", auth=False, responses=_PAGE_ANSWERS)
def one_click(token: str) -> Response:
    rt = runtime()
    now = rt.clock()
    try:
        claim = read_claim(rt.policy, rt.secret_key, token, now)
    except InvalidUnsubscribeToken as exc:
        return _unusable(exc)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    with rt.store.transaction() as session:
        revocation = unsubscribe(session, rt.policy, claim, one_click, now)
    rt.metrics.revocations.labels(source=revocation.source).inc()
    return _page("You are unsubscribed",
                 f"<p>{escape(claim.email)} will receive no more of these emails.</p>")
