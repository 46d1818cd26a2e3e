"""HTTP layer: thin blueprints over the services."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from flask import Blueprint, Flask
from werkzeug.exceptions import NotFound

from consentgate.store.models import MAX_ID

# Every blueprint module of the service, in registration order. A module exposes ``bp``.
BLUEPRINT_MODULES = (
    "consentgate.api.ops",
    "consentgate.api.openapi",
    "consentgate.api.identities",
    "consentgate.api.consents",
    "consentgate.api.receipts",
    "consentgate.api.revocations",
    "consentgate.api.audit",
    "consentgate.api.eligibility",
    "consentgate.webhooks.views",
    "consentgate.api.unsubscribe",
    "consentgate.api.subscriptions",
    "consentgate.reports.views",
    "consentgate.api.erasure",
    "consentgate.api.auditor_page",
)


def blueprints() -> list[Blueprint]:
    return [import_module(name).bp for name in BLUEPRINT_MODULES]


def guard_row_ids(app: Flask) -> None:
    """Path ids (``<int:...>``) outside 1..``MAX_ID`` are a 404 before any view runs: no row has
    one, and PostgreSQL would refuse it as out of its integer range (a 500) rather than find nothing."""

    @app.url_value_preprocessor
    def _row_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
        for name, value in (values or {}).items():
            if isinstance(value, int) and not 1 <= value <= MAX_ID:
                raise NotFound(f"no {name.removesuffix('_id').replace('_', ' ')} {value}")
