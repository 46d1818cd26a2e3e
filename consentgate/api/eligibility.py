"""The gate's endpoints: eligibility, batch eligibility, touches and reservations."""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, jsonify

from consentgate.api.auth import current_actor, require
from consentgate.api.context import batch_items, parse_body, runtime
from consentgate.api.openapi import documented
from consentgate.runtime import collector_paused
from consentgate.services.eligibility import (
    EligibilityIn,
    TouchIn,
    check,
    decide_batch,
    decision_answer,
    record_touch,
    release_reservation,
)
from consentgate.services.fanout import worker_count
from consentgate.services.schemas import BatchIn

bp = Blueprint("eligibility_api", __name__)


def _count(answers: list[dict]) -> None:  # type: ignore[type-arg]
    # Tallied first: a batch of 10,000 then costs a few counter updates, not 10,000 label look-ups.
    outcomes = Counter("allowed" if answer.get("allowed") else "denied" for answer in answers)
    codes = Counter(reason["code"] for answer in answers for reason in answer.get("reasons") or ())
    runtime().metrics.count_decisions(outcomes, codes)


@bp.post("/v1/eligibility")
@require("sender")
@documented("May I contact this person on this channel now, for this purpose? A denial is still 200.",
            tags=["eligibility"], body=EligibilityIn)
def eligibility() -> Response:
    rt = runtime()
    item = parse_body(EligibilityIn)
    record, decision = check(rt.store, item, rt.policy, rt.secret_key, current_actor(), rt.clock())
    answer = decision_answer(record, decision)
    _count([answer])
    return jsonify(answer)


@bp.post("/v1/eligibility/batch")
@require("sender")
@documented("Up to 10,000 eligibility questions; answers in input order", tags=["eligibility"], body=BatchIn)
def eligibility_batch() -> Response:
    rt = runtime()
    with collector_paused():
        items = batch_items(BatchIn)
        answers = decide_batch(rt.store, items, rt.policy, rt.secret_key, current_actor(), rt.clock(),
                               rt.settings.batch_processes or worker_count())
        _count(answers)
        return jsonify({"decisions": answers})


@bp.post("/v1/touches")
@require("sender")
@documented("Report a touch (from a reservation, or directly): it counts towards fatigue caps from now on",
            tags=["eligibility"], body=TouchIn, responses={201: None, 404: None, 409: None})
def touch() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(TouchIn)
    with rt.store.transaction() as session:
        made = record_touch(session, item, rt.policy, current_actor(), rt.clock())
    return jsonify({"touch_id": made.id, "state": made.state}), 201


@bp.delete("/v1/reservations/<int:reservation_id>")
@require("sender")
@documented("Give a reserved slot back", tags=["eligibility"], responses={204: None, 409: None})
def release(reservation_id: int) -> tuple[str, int]:
    rt = runtime()
    with rt.store.transaction() as session:
        release_reservation(session, reservation_id, rt.clock())
    return "", 204
