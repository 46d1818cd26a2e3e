"""Revocations and suppressions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from consentgate.api.auth import current_actor, require
from consentgate.api.context import parse_body, runtime
from consentgate.api.openapi import documented
from consentgate.services.revocations import (
    revocation_answer,
    suppression_answer,
    write_revocation,
    write_suppression,
)
from consentgate.services.schemas import RevocationIn, SuppressionIn

bp = Blueprint("revocations_api", __name__)


@bp.post("/v1/revocations")
@require("writer")
@documented("Record an opt-out: effective at once, with its legal deadline", tags=["revocations"],
            body=RevocationIn, responses={201: None, 404: None})
def revoke() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(RevocationIn)
    with rt.store.transaction() as session:
        revocation = write_revocation(session, item, rt.policy, current_actor(), rt.clock())
    rt.metrics.revocations.labels(source=revocation.source).inc()
    return jsonify(revocation_answer(revocation)), 201


@bp.post("/v1/suppressions")
@require("writer")
@documented("Record a suppression: bounce, complaint, national DNC, reassigned number, legal hold, litigator",
            tags=["revocations"], body=SuppressionIn, responses={201: None, 404: None})
def suppress() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(SuppressionIn)
    with rt.store.transaction() as session:
        suppression = write_suppression(session, item, rt.policy, current_actor(), rt.clock())
    return jsonify(suppression_answer(suppression)), 201
