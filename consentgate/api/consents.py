"""Consent events: one, or a batch of up to 10,000."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from consentgate.api.auth import current_actor, require
from consentgate.api.context import batch_items, json_body, parse_body, runtime
from consentgate.api.openapi import documented
from consentgate.runtime import collector_paused
from consentgate.services.bulk_consents import write_consent_batch
from consentgate.services.consents import consent_answer, write_consent
from consentgate.services.idempotency import run_idempotent
from consentgate.services.schemas import BatchIn, ConsentIn

bp = Blueprint("consents_api", __name__)


@bp.post("/v1/consents")
@require("writer")
@documented("Record a consent event with its provenance (Idempotency-Key honoured)", tags=["consents"],
            body=ConsentIn, responses={201: None, 404: None, 409: None})
def record() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(ConsentIn)
    actor, now = current_actor(), rt.clock()

    def effect(session):  # type: ignore[no-untyped-def]
        return 201, consent_answer(write_consent(session, item, rt.policy, actor, now))

    status, body = run_idempotent(rt.store, f"consents:{actor.key_id}", request.headers.get("Idempotency-Key"),
                                  json_body(), now, effect)
    return jsonify(body), status


@bp.post("/v1/consents/batch")
@require("writer")
@documented("Record up to 10,000 consent events; a bad item fails alone, named by its index",
            tags=["consents"], body=BatchIn)
def batch() -> Response:
    rt = runtime()
    with collector_paused():
        items = batch_items(BatchIn)
        results = write_consent_batch(rt.store, items, rt.policy, current_actor(), rt.clock())
        return jsonify({
            "results": [{"index": r.index, "status": r.status, **r.body} for r in results],
            "created": sum(1 for r in results if r.status == 201),
            "failed": sum(1 for r in results if r.status != 201),
        })
