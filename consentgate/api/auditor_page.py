"""The auditor page: one HTML page whose figures come from the reports API with the auditor's key."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response

from consentgate.api.openapi import documented

bp = Blueprint("auditor_page", __name__, static_folder=str(resources.files("consentgate") / "static"),
               static_url_path="/static")

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@bp.get("/audit")
@documented("The auditor page (HTML): chain status, revocation SLA, opt-out rates, decisions", tags=["audit"],
            content_type="text/html", auth=False)
def audit_page() -> Response:
    page = (resources.files("consentgate") / "templates" / "audit.html").read_text(encoding="utf-8")
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": _CSP,
                                                          "X-Content-Type-Options": "nosniff",
                                                          "Cache-Control": "no-store"})
