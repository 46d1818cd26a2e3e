"""Access to the app's Runtime from inside a request, and request-body parsing."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel

from consentgate.errors import BadRequest, ValidationFailed
from consentgate.runtime import Runtime

M = TypeVar("M", bound=BaseModel)


def runtime() -> Runtime:
    return current_app.extensions["consentgate"]  # type: ignore[no-any-return]


def json_body() -> Any:
    """The request's JSON; malformed or missing JSON is a 400, never a 500."""
    data = request.get_json(force=True, silent=True, cache=True)
    if data is None:
        raw = request.get_data(cache=True)
        raise BadRequest("the body is not valid JSON" if raw else "a JSON body is required")
    return data


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against ``model`` (422 naming each offending field)."""
    data = json_body()
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    return model.model_validate(data)


def parse_query(model: type[M]) -> M:
    """Validate the query string against ``model``."""
    return model.model_validate(request.args.to_dict())


def batch_items(model: type[M]) -> list[Any]:
    """The ``items`` of a batch body, refused (422) beyond ``CONSENTGATE_MAX_BATCH``."""
    items: list[Any] = parse_body(model).items  # type: ignore[attr-defined]
    limit = runtime().settings.max_batch
    if len(items) > limit:
        raise ValidationFailed.field("items", f"at most {limit} items per batch (CONSENTGATE_MAX_BATCH)")
    return items
