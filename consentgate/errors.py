"""The one exception tree of consentgate.

Domain code raises these; it knows nothing about HTTP. The API layer maps each class to
an RFC 9457 problem document (see ``consentgate.api.problems``)::

    ConsentgateError                 base; never raised itself
    ├── ValidationFailed             input breaks a rule (422); carries [FieldError]
    ├── NotFound                     no such identity, consent, reservation… (404)
    ├── Conflict                     idempotency key reused with another body, state clash (409)
    ├── Unauthorized                 no or unknown API key (401)
    ├── Forbidden                    key without the role, bad webhook signature (403)
    ├── BadRequest                   malformed input that is not a field rule: bad JSON, bad token (400)
    ├── PolicyError                  a policy file that cannot be loaded; names file and path
    ├── ConfigError                  settings that cannot start the service; names the variable
    └── Unavailable                  the store or a dependency cannot answer: fail closed (503)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    """One offending field: a dotted path (``items.3.phone``) and what is wrong with it."""

    field: str
    message: str


class ConsentgateError(Exception):
    """Base of every error consentgate raises on purpose."""

    title = "Error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail or self.title


class ValidationFailed(ConsentgateError):
    """Input that breaks a rule; ``errors`` names every offending field."""

    title = "Validation failed"

    def __init__(self, errors: list[FieldError] | FieldError | str, detail: str = "") -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = errors
        super().__init__(detail or "; ".join(
            f"{e.field}: {e.message}" if e.field else e.message for e in errors
        ))

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        """Shorthand for a failure of a single field."""
        return cls([FieldError(field, message)])


class NotFound(ConsentgateError):
    title = "Not found"


class Conflict(ConsentgateError):
    title = "Conflict"


class Unauthorized(ConsentgateError):
    title = "Unauthorized"


class Forbidden(ConsentgateError):
    title = "Forbidden"


class BadRequest(ConsentgateError):
    title = "Bad request"


class PolicyError(ConsentgateError):
    """A policy that cannot be used; the message names the file, the path inside it and why."""

    title = "Invalid policy"


class ConfigError(ConsentgateError):
    """Settings that cannot start the service; the message names the variable to set."""

    title = "Invalid configuration"


class Unavailable(ConsentgateError):
    """The gate cannot decide (store down, policy missing): it fails closed."""

    title = "Service unavailable"


_STATUS: dict[type[ConsentgateError], int] = {
    ValidationFailed: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    BadRequest: 400,
    Unavailable: 503,
}


def status_of(exc: ConsentgateError) -> int:
    """The HTTP status an error maps to (500 for errors no client could have avoided)."""
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)


def pydantic_field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as FieldErrors with dotted paths (``items.3.phone``)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in ("body",)]
        # A model-level validator reports its field name as the start of the message.
        message = err["msg"].removeprefix("Value error, ")
        field = ".".join(loc)
        if not field and ": " in message and " " not in message.split(": ", 1)[0]:
            field, message = message.split(": ", 1)
        out.append(FieldError(f"{prefix}{field}" if field else prefix.rstrip("."), message))
    return out


def problem_fields(exc: ConsentgateError) -> dict[str, Any]:
    """An error as the fields of a problem document, for answers that carry one per item."""
    body: dict[str, Any] = {"status": status_of(exc), "title": exc.title, "detail": exc.detail or exc.title}
    if isinstance(exc, ValidationFailed):
        body["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    return body
