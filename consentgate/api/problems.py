"""Every error answer is an RFC 9457 problem document (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from consentgate.errors import (
    ConsentgateError,
    FieldError,
    ValidationFailed,
    pydantic_field_errors,
    status_of,
)
from consentgate.store.db import STORE_UNAVAILABLE

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://consentgate.dev/problems/"


def problem(status: int, title: str, detail: str, *, slug: str | None = None,
            errors: list[FieldError] | None = None, **extra: Any) -> Response:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="consentgate"'
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ConsentgateError)
    def _domain(exc: ConsentgateError) -> Response:
        status = status_of(exc)
        errors = exc.errors if isinstance(exc, ValidationFailed) else None
        if status == 500:
            log.error("unmapped error: %s", exc)
        return problem(status, exc.title if status != 500 else "Internal error",
                       exc.detail if status != 500 else "The server could not complete the request.",
                       errors=errors)

    @app.errorhandler(ValidationError)
    def _pydantic(exc: ValidationError) -> Response:
        errors = pydantic_field_errors(exc)
        return problem(422, "Validation failed",
                       "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = problem(status, exc.name, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    def _store_down(exc: Exception) -> Response:
        # A gate that cannot read its store says no, and says why: the sender may ask again.
        log.error("store unavailable: %s", exc)
        response = problem(503, "Service unavailable", "the store cannot answer now; ask again shortly")
        response.headers["Retry-After"] = "1"
        return response

    for error in STORE_UNAVAILABLE:
        app.register_error_handler(error, _store_down)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Never a stack trace to the client: it goes to the log only.
        log.exception("unhandled error")
        return problem(500, "Internal error", "The server could not complete the request.")
