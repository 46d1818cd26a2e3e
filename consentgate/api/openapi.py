"""The OpenAPI document, generated from the routes and their pydantic models, and the docs page.

A view declares its contract with ``@documented(...)``; nothing about the API is written twice.
Swagger UI's assets come from the ``swagger-ui-bundle`` package and are served by consentgate
itself, so the docs page works where no CDN can be reached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path
from werkzeug.routing import IntegerConverter

from consentgate.api.context import runtime
from consentgate.store.models import MAX_ID

F = TypeVar("F", bound=Callable[..., Any])
_RULE_ARG = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


@dataclass(frozen=True)
class Contract:
    summary: str
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | str | None] = field(default_factory=dict)
    content_type: str = "application/json"
    auth: bool = True
    description: str | None = None


def documented(summary: str, *, tags: Iterable[str] = (), body: type[BaseModel] | None = None,
               query: type[BaseModel] | None = None,
               responses: dict[int, type[BaseModel] | str | None] | None = None,
               content_type: str = "application/json", auth: bool = True,
               description: str | None = None) -> Callable[[F], F]:
    """Attach an OpenAPI contract to a view. A response given as a str is a media type."""

    def decorator(view: F) -> F:
        view.__contract__ = Contract(  # type: ignore[attr-defined]
            summary=summary, tags=tuple(tags), body=body, query=query,
            responses=responses or {200: None}, content_type=content_type, auth=auth,
            description=description,
        )
        return view

    return decorator


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                      "message": {"type": "string"}}},
        },
    },
}


def _path_schema(converter: Any) -> dict[str, Any]:
    if isinstance(converter, IntegerConverter):   # path integers are row ids (``api.guard_row_ids``)
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"type": "string"}


def build_spec(app: Flask) -> dict[str, Any]:
    """Walk the URL map and turn every documented view into an OpenAPI 3.1 operation."""
    paths: dict[str, dict[str, Any]] = {}
    models: list[type[BaseModel]] = []
    operations: list[tuple[str, str, Contract, list[tuple[str, dict[str, Any]]], Any]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        contract: Contract | None = getattr(view, "__contract__", None)
        if contract is None:
            continue
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            arguments = [(name, _path_schema(rule._converters.get(name))) for name in sorted(rule.arguments)]
            operations.append((path, method.lower(), contract, arguments, rule.endpoint))
            models += [m for m in (contract.body, contract.query) if m is not None]
            models += [m for m in contract.responses.values() if isinstance(m, type)]
    unique = list(dict.fromkeys(models))
    refs, schema = models_json_schema(
        [(m, "validation") for m in unique], ref_template="#/components/schemas/{model}"
    )
    components: dict[str, Any] = dict(schema.get("$defs", {}))
    components["Problem"] = PROBLEM_SCHEMA
    for path, method, contract, args, endpoint in operations:
        op: dict[str, Any] = {"summary": contract.summary, "operationId": f"{endpoint}.{method}"}
        if contract.description:
            op["description"] = contract.description
        if contract.tags:
            op["tags"] = list(contract.tags)
        params = [{"name": a, "in": "path", "required": True, "schema": schema} for a, schema in args]
        if contract.query is not None:
            fields = _component(components, refs[(contract.query, "validation")])["properties"]
            for name, info in contract.query.model_fields.items():
                params.append({"name": info.alias or name, "in": "query",
                               "required": info.is_required(),
                               "description": info.description or "",
                               "schema": _query_schema(fields[info.alias or name])})
        if params:
            op["parameters"] = params
        if contract.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(contract.body, "validation")]}}}
        op["responses"] = _responses(contract, refs, any(s.get("type") == "integer" for _, s in args))
        if contract.auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "consentgate", "version": current_app.config.get("VERSION", "0"),
                 "description": "May I contact this person on this channel now, for this purpose?"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "consentgate API key"}}},
    }


def _component(components: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return components[ref["$ref"].rsplit("/", 1)[-1]]  # type: ignore[no-any-return]


def _query_schema(field_schema: dict[str, Any]) -> dict[str, Any]:
    """A query model field's JSON schema as its parameter's: the type, format, bounds and words
    the service checks, so a client generated from the document sends what is accepted. A
    parameter left out is the None an optional field takes: the null branch goes."""
    schema = {key: value for key, value in field_schema.items() if key not in ("title", "description")}
    branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    return schema


_PROBLEMS = {400: "Malformed request", 403: "Forbidden", 404: "No such resource",
             409: "Conflict with the resource's state", 422: "Validation failed"}


def _responses(contract: Contract, refs: dict[Any, Any], row_ids: bool) -> dict[str, Any]:
    """``row_ids``: the path names rows by id, and an unknown id is a 404."""
    problem = {"content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    out: dict[str, Any] = {}
    for status, model in contract.responses.items():
        if status >= 400:
            # An error answers a problem document, unless the contract names another media type
            # (the unsubscribe page answers a bad link with a page a person can read).
            described = {"description": _PROBLEMS.get(status, "Error")}
            out[str(status)] = described | ({"content": {model: {}}} if isinstance(model, str) else problem)
        elif model is None:
            out[str(status)] = {"description": "No content" if status == 204 else "OK"}
        elif isinstance(model, str):
            out[str(status)] = {"description": "OK", "content": {model: {}}}
        else:
            out[str(status)] = {"description": "OK", "content": {contract.content_type: {
                "schema": refs[(model, "validation")]}}}
    if row_ids:
        out.setdefault("404", {"description": _PROBLEMS[404], **problem})
    if contract.body is not None or contract.query is not None:
        out.setdefault("400", {"description": _PROBLEMS[400], **problem})
        out.setdefault("422", {"description": _PROBLEMS[422], **problem})
    if contract.auth:
        out.setdefault("401", {"description": "Missing or unknown API key", **problem})
        out.setdefault("403", {"description": "Key without the role", **problem})
    return out


bp = Blueprint("openapi", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>consentgate API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""

DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, presets: [SwaggerUIBundle.presets.apis]});"""


@bp.get("/openapi.json")
def openapi_json() -> Response:
    spec = current_app.extensions.get("consentgate_openapi")
    if spec is None:
        policy = runtime().policy.policy
        words = {"channel": list(policy.channels), "purpose": list(policy.purposes),
                 "consent_type": list(policy.consent_types)}
        spec = current_app.extensions["consentgate_openapi"] = with_vocabulary(build_spec(current_app), words)
    return jsonify(spec)


# Request fields whose values the policy names, and the word list each takes (a list field also
# takes "*", every one).
_VOCABULARY_FIELDS = {"channel": "channel", "last_touch_channel": "channel", "purpose": "purpose",
                      "consent_type": "consent_type", "channels": "channel", "purposes": "purpose"}


def with_vocabulary(spec: dict[str, Any], words: dict[str, list[str]]) -> dict[str, Any]:
    """``spec`` with the policy's channels, purposes and consent types as the enums of the request
    fields that must be one of them, so a client generated from it knows the words this service
    accepts (they change with the policy, not with the code)."""
    for schema in spec["components"]["schemas"].values():
        for name, prop in schema.get("properties", {}).items():
            kind = _VOCABULARY_FIELDS.get(name)
            if kind is None:
                continue
            if prop.get("type") == "array":
                prop["items"]["enum"] = [*words[kind], "*"]
                continue
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string":
                    branch["enum"] = list(words[kind])
    return spec


@bp.get("/docs")
def docs() -> Response:
    # The init script is a separate file so a strict Content-Security-Policy needs no inline script.
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/init.js")
def docs_init() -> Response:
    return Response(DOCS_INIT, mimetype="application/javascript")


@bp.get("/docs/assets/<path:filename>")
def docs_assets(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
