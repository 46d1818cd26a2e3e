"""DELETE /v1/identities/{id}: erase a person, keep only hashed do-not-contact tombstones."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field

from consentgate.api.auth import current_actor, require
from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.services.erasure import erase_identity
from consentgate.services.schemas import Request

bp = Blueprint("erasure_api", __name__)


class ErasureQuery(Request):
    law: str = Field("GDPR Art. 17", description="the law the request is made under, e.g. 'CCPA 1798.105'")
    reason: str | None = Field(None, description="free text kept with the erasure event")


class ErasureOut(BaseModel):
    erasure_id: int
    identity_id: int
    erased_identity_ids: list[int]
    contact_points: int
    tombstones: int
    erased_at: str


@bp.delete("/v1/identities/<int:identity_id>")
@require("admin")
@documented("Erase a person; opted-out addresses stay blocked through keyed-hash tombstones",
            tags=["identities"], query=ErasureQuery, responses={200: ErasureOut})
def erase(identity_id: int) -> Response:
    rt = runtime()
    query = ErasureQuery.model_validate(request.args.to_dict())
    result = erase_identity(rt.store, rt.policy, rt.secret_key, identity_id, law=query.law,
                            reason=query.reason, actor=current_actor(), now=rt.clock())
    return jsonify({
        "erasure_id": result.erasure_id, "identity_id": result.identity_id,
        "erased_identity_ids": result.erased_identity_ids, "contact_points": result.contact_points,
        "tombstones": result.tombstones, "erased_at": result.erased_at,
    })
