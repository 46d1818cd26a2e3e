"""Identities: upsert with dedupe, read, merge and timeline."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import Field

from consentgate.api.auth import current_actor, require
from consentgate.api.context import parse_body, parse_query, runtime
from consentgate.api.openapi import documented
from consentgate.core.addresses import Address, normalise_email, normalise_phone
from consentgate.errors import NotFound, ValidationFailed
from consentgate.services.directory import (
    TimelineCursor,
    identity_summary,
    identity_view,
    require_identity,
    timeline,
    upsert_identity,
)
from consentgate.services.identities import find_by_address
from consentgate.services.merge import manual_merge
from consentgate.services.schemas import IdentityIn, MergeIn, Request

bp = Blueprint("identities_api", __name__)


class FindQuery(Request):
    email: str | None = Field(None, max_length=320, description="any common spelling of the email")
    phone: str | None = Field(None, max_length=40, description="any common format of the number")


@bp.post("/v1/identities")
@require("writer")
@documented("Create or match a person by email, phone and external id (duplicates merge)",
            tags=["identities"], body=IdentityIn, responses={200: None, 201: None})
def upsert() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(IdentityIn)
    now = rt.clock()
    with rt.store.transaction() as session:
        person, created, _ = upsert_identity(session, item, rt.policy, current_actor(), now)
        body = identity_summary(session, person)
    return jsonify(body), 201 if created else 200


@bp.get("/v1/identities/<int:identity_id>")
@require("writer", "auditor")
@documented("A person: contact points, attributes, current consent, active revocations and suppressions",
            tags=["identities"])
def read(identity_id: int) -> Response:
    rt = runtime()
    with rt.store.transaction(write=False) as session:
        person = require_identity(session, identity_id)
        body = identity_view(session, person, rt.clock(), rt.policy.free_mail_domains)
    body["requested_identity_id"] = identity_id
    return jsonify(body)


@bp.get("/v1/identities")
@require("writer", "auditor")
@documented("Find a person by email or phone (exactly one)", tags=["identities"], query=FindQuery,
            responses={200: None, 404: None})
def find() -> Response:
    rt = runtime()
    spec = rt.policy.policy.identity
    query = parse_query(FindQuery)
    email, phone = query.email, query.phone
    if (email is None) == (phone is None):
        raise ValidationFailed.field("email", "give exactly one of email or phone")
    address = (Address("email", normalise_email(email, casefold_local=spec.casefold_email_local_part))
               if email is not None
               else Address("phone", normalise_phone(phone or "", default_region=spec.default_region)))
    with rt.store.transaction(write=False) as session:
        found = find_by_address(session, address)
        if found is None:
            raise NotFound("no identity has this address")
        return jsonify(identity_view(session, found[0], rt.clock(), rt.policy.free_mail_domains))


@bp.post("/v1/identities/<int:identity_id>/merge")
@require("writer")
@documented("Merge another identity into this one (the older survives)", tags=["identities"], body=MergeIn,
            responses={200: None, 409: None})
def merge(identity_id: int) -> Response:
    rt = runtime()
    item = parse_body(MergeIn)
    with rt.store.transaction() as session:
        keep, _ = manual_merge(session, identity_id, item.other_identity_id, current_actor(), rt.clock())
        return jsonify(identity_summary(session, keep))


class TimelineQuery(Request):
    limit: int | None = Field(None, ge=1, le=10_000, description="at most this many events (a page)")
    after: str | None = Field(None, description="the previous page's next: the events after it")


@bp.get("/v1/identities/<int:identity_id>/timeline")
@require("auditor")
@documented("Every event of a person, oldest first (or a page of them: limit, after)", tags=["identities"],
            query=TimelineQuery)
def person_timeline(identity_id: int) -> Response:
    rt = runtime()
    query = parse_query(TimelineQuery)
    after = TimelineCursor.decode(query.after) if query.after is not None else None
    with rt.store.transaction(write=False) as session:
        person = require_identity(session, identity_id)
        events, more = timeline(session, person, query.limit, after)
        return jsonify({"identity_id": person.id, "events": events, "next": more.encode() if more else None})
