"""Tamper evidence: verify the hash chain over the ledger."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from consentgate.api.auth import require
from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.store import chain

bp = Blueprint("audit_api", __name__)


@bp.get("/v1/audit/verify")
@require("auditor")
@documented("Recompute the hash chain over every ledger row and name the first broken link", tags=["audit"])
def verify() -> Response:
    with runtime().store.transaction(write=False) as session:
        result = chain.verify(session)
    return jsonify({"ok": result.ok, "checked": result.checked, "first_broken": result.first_broken})
