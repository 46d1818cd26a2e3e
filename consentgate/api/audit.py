"""Tamper evidence: verify the hash chain over the ledger."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from consentgate.api.auth import require
from consentgate.api.context import parse_query, runtime
from consentgate.api.openapi import documented
from consentgate.services.directory import require_identity
from consentgate.services.evidence import identity_evidence
from consentgate.services.replay import replay_decision
from consentgate.services.schemas import Instant, Request, utc
from consentgate.services.verification import verify_stretch

bp = Blueprint("audit_api", __name__)


class EvidenceQuery(Request):
    since: Instant | None = Field(None, description="only the touches and decisions from this instant on (the "
                                  "ledger rows are always whole)")
    until: Instant | None = Field(None, description="only the touches and decisions before this instant")


# About 5-15 s of checking here: a stretch stays well inside a worker's timeout.
MAX_STRETCH = 200_000


class VerifyQuery(Request):
    after: int = Field(0, ge=0, description="check only the chain entries after this sequence number")
    limit: int | None = Field(None, ge=1, le=MAX_STRETCH,
                              description="check at most this many entries; the answer's next_after is where "
                                          "the next stretch starts (null once the chain's head is reached)")


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_broken: dict[str, object] | None
    after: int
    next_after: int | None
    last_seq: int


@bp.get("/v1/audit/verify")
@require("auditor")
@documented("Recompute the hash chain over every ledger row (or one stretch of it) and name the first broken link",
            tags=["audit"], query=VerifyQuery, responses={200: VerifyOut})
def verify() -> Response:
    query = parse_query(VerifyQuery)
    stretch = verify_stretch(runtime().store, runtime().clock(), query.after, query.limit)
    result = stretch.result
    return jsonify({"ok": result.ok, "checked": result.checked, "first_broken": result.first_broken,
                    "after": stretch.after, "next_after": stretch.next_after, "last_seq": stretch.last_seq})


@bp.post("/v1/decisions/<int:decision_id>/replay")
@require("auditor")
@documented("Re-run a logged decision on the ledger as it stood then, under the policy version it used",
            tags=["audit"], responses={200: None, 409: None})
def replay(decision_id: int) -> Response:
    rt = runtime()
    with rt.store.transaction(write=False) as session:
        return jsonify(replay_decision(session, rt.secret_key, decision_id, rt.policy))


@bp.get("/v1/identities/<int:identity_id>/evidence")
@require("auditor")
@documented("Everything behind a person's decisions in one JSON document, with the chain entries covering it",
            tags=["audit"], query=EvidenceQuery)
def evidence(identity_id: int) -> Response:
    rt = runtime()
    query = parse_query(EvidenceQuery)
    with rt.store.transaction(write=False) as session:
        person = require_identity(session, identity_id)
        body = identity_evidence(session, person, rt.clock(), rt.secret_key, since=utc(query.since),
                                 until=utc(query.until), free_mail=rt.policy.free_mail_domains)
    response = jsonify(body)
    response.headers["Content-Disposition"] = f'attachment; filename="evidence-identity-{identity_id}.json"'
    return response
