"""HTTP layer: thin blueprints over the services."""

from __future__ import annotations

from importlib import import_module

from flask import Blueprint

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
