"""Downstream senders that must hear of every revocation (role admin)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlmodel import col, select

from consentgate.api.auth import require
from consentgate.api.context import parse_body, runtime
from consentgate.api.openapi import documented
from consentgate.core.timefmt import iso_z
from consentgate.services.propagation import SubscriptionIn, create_subscription, deactivate_subscription
from consentgate.store.models import Subscription

bp = Blueprint("subscriptions_api", __name__)


@bp.post("/v1/subscriptions")
@require("admin")
@documented("Register a downstream sender; every revocation is POSTed to it, HMAC-signed, until it answers 2xx",
            tags=["propagation"], body=SubscriptionIn, responses={201: None})
def subscribe() -> tuple[Response, int]:
    rt = runtime()
    item = parse_body(SubscriptionIn)
    with rt.store.transaction() as session:
        sub = create_subscription(session, item, rt.clock())
        body = {"subscription_id": sub.id, "name": sub.name, "url": sub.url, "secret": sub.secret,
                "event_types": sub.event_types, "created_at": iso_z(sub.created_at)}
    return jsonify(body), 201


@bp.get("/v1/subscriptions")
@require("admin")
@documented("Registered downstream senders (secrets are not shown again)", tags=["propagation"])
def list_subscriptions() -> Response:
    with runtime().store.transaction(write=False) as session:
        subs = session.exec(select(Subscription).order_by(col(Subscription.id))).all()
        return jsonify({"subscriptions": [
            {"subscription_id": s.id, "name": s.name, "url": s.url, "event_types": s.event_types,
             "active": s.active, "created_at": iso_z(s.created_at)} for s in subs]})


@bp.delete("/v1/subscriptions/<int:subscription_id>")
@require("admin")
@documented("Stop sending revocations to a downstream sender", tags=["propagation"], responses={204: None})
def unsubscribe_downstream(subscription_id: int) -> tuple[str, int]:
    with runtime().store.transaction() as session:
        deactivate_subscription(session, subscription_id, runtime().clock())
    return "", 204
