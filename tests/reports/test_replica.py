"""Reports read from a configured replica (CONSENTGATE_REPORTS_DATABASE_URL); the gate does not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from consentgate.app import create_app
from consentgate.config import load_settings
from consentgate.runtime import Runtime, build_runtime
from consentgate.store.db import Store

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
CONSENT = {"channel": "email", "purpose": "marketing", "consent_type": "double_opt_in",
           "captured_at": (NOON_ET - timedelta(days=1)).isoformat()}


@pytest.fixture
def replica_url(second_database_url: str) -> str:
    """Stands in for a replica that has not caught up."""
    return second_database_url


def test_reports_read_the_replica_and_everything_else_the_primary(  # type: ignore[no-untyped-def]
        runtime: Runtime, keys, replica_url: str, clock) -> None:
    clock.set(NOON_ET)
    settings = load_settings({**runtime.settings.model_dump(), "reports_database_url": replica_url,
                              "secret_key": runtime.secret_key})
    primary = create_app({"TESTING": True}, runtime=replace(runtime, settings=settings,
                                                           replica=Store(replica_url))).test_client()
    # What the replica holds: written through a service of its own, as replication would have.
    upstream = replace(runtime, store=Store(replica_url), replica=None)
    upstream_keys = {"Authorization": "Bearer " + _writer_key(upstream)}
    behind = create_app({"TESTING": True}, runtime=upstream).test_client()
    assert behind.post("/v1/consents", json={**CONSENT, "email": "old@corp.com", "source": "replicated"},
                       headers=upstream_keys).status_code == 201

    made = primary.post("/v1/consents", json={**CONSENT, "email": "new@corp.com", "source": "just_now"},
                        headers=keys["writer"])
    assert made.status_code == 201
    assert primary.get("/v1/identities?email=new@corp.com", headers=keys["auditor"]).status_code == 200
    for fmt in ("json", "csv"):
        exported = primary.get(f"/v1/reports/consents?format={fmt}", headers=keys["auditor"]).get_data(as_text=True)
        assert "replicated" in exported and "just_now" not in exported
    decided = primary.post("/v1/eligibility", json={"email": "new@corp.com", "channel": "email",
                                                    "purpose": "marketing"}, headers=keys["sender"])
    assert decided.get_json()["allowed"] is True   # the gate reads the primary
    assert primary.get("/v1/reports/decisions", headers=keys["auditor"]).get_json() == []


def test_the_setting_opens_the_replica(runtime: Runtime, replica_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({**runtime.settings.model_dump(), "reports_database_url": replica_url,
                              "secret_key": runtime.secret_key})
    built = build_runtime(settings, migrate=False)
    assert built.report_store.url == Store(replica_url).url != built.store.url
    alone = build_runtime(runtime.settings, migrate=False)
    assert alone.report_store is alone.store


def _writer_key(rt: Runtime) -> str:
    from consentgate.services.keys import create_key

    return create_key(rt.store, "writer", "replica", rt.clock())[1]
