"""Tamper evidence: verify the hash chain over the ledger."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from consentgate.api.auth import require
from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.services.directory import require_identity
from consentgate.services.evidence import identity_evidence
from consentgate.services.replay import replay_decision
from consentgate.store import chain

bp = Blueprint("audit_api", __name__)


@bp.get("/v1/audit/verify")
@require("auditor")
@documented("Recompute the hash chain over every ledger row and name the first broken link", tags=["audit"])
def verify() -> Response:
    with runtime().store.transaction(write=False) as session:
        result = chain.verify(session)
    return jsonify({"ok": result.ok, "checked": result.checked, "first_broken": result.first_broken})


@bp.post("/v1/decisions/<int:decision_id>/replay")
@require("auditor")
@documented("Re-run a logged decision on the ledger as it stood then, under the policy version it used",
            tags=["audit"])
def replay(decision_id: int) -> Response:
    rt = runtime()
    with rt.store.transaction(write=False) as session:
        return jsonify(replay_decision(session, rt.secret_key, decision_id, rt.policy))


@bp.get("/v1/identities/<int:identity_id>/evidence")
@require("auditor")
@documented("Everything behind a person's decisions in one JSON document, with the chain entries covering it",
            tags=["audit"])
def evidence(identity_id: int) -> Response:
    rt = runtime()
    with rt.store.transaction(write=False) as session:
        person = require_identity(session, identity_id)
        body = identity_evidence(session, person, rt.clock())
    response = jsonify(body)
    response.headers["Content-Disposition"] = f'attachment; filename="evidence-identity-{identity_id}.json"'
    return response
