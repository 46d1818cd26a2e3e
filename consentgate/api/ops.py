"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from consentgate.api.context import runtime
from consentgate.api.openapi import documented
from consentgate.services.propagation import sla_summary
from consentgate.store.migrate import current_revision, head_revision

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@documented("The process is up", tags=["operations"], auth=False)
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@documented("Store reachable, migrations at head, policy loaded", tags=["operations"], auth=False,
            responses={200: None, 503: None})
def readyz() -> tuple[Response, int]:
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        rt.store.ping()
        checks["store"] = "ok"
        current, head = current_revision(rt.store), head_revision(rt.store)
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as exc:  # any failure to reach the store means: not ready
        checks["store"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown: the store is unreachable"
    checks["policy"] = "ok" if rt.policy is not None else "not loaded"
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks,
            "policy_version": rt.policy.version if rt.policy else None}
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
@documented("Prometheus metrics", tags=["operations"], auth=False,
            responses={200: "text/plain"})
def metrics() -> Response:
    rt = runtime()
    try:
        # The SLA gauges are read at scrape time, so an alert needs no scheduler in this process.
        for status, count in sla_summary(rt.store, rt.policy, rt.clock()).items():
            rt.metrics.sla.labels(status=status).set(count)
    except Exception:  # metrics must answer even when the store does not; /readyz reports that
        log.warning("could not compute the revocation SLA gauges", exc_info=True)
    return Response(rt.metrics.render(), mimetype="text/plain; version=0.0.4")
