"""Operations endpoints, problem documents and API key roles."""

from __future__ import annotations

import pytest
from flask import Blueprint

from consentgate.api.auth import require
from consentgate.app import create_app
from consentgate.config import load_settings
from consentgate.errors import ValidationFailed
from consentgate.runtime import Runtime
from consentgate.services.keys import create_key, revoke_key
from consentgate.store.db import Store


def test_healthz_answers_ok(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_each_check(client, runtime: Runtime) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"store": "ok", "migrations": "ok", "policy": "ok"}
    assert response.json["policy_version"] == runtime.policy.version


def test_readyz_is_503_when_the_store_is_unreachable(runtime: Runtime) -> None:
    unreachable = Store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1")
    broken = Runtime(settings=runtime.settings, store=unreachable, policy=runtime.policy)
    response = create_app({"TESTING": True}, runtime=broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["store"].startswith("unreachable")
    assert response.json["status"] == "not ready"


def test_unknown_path_is_a_problem_document(client) -> None:
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(response.json)
    assert response.json["status"] == 404


def test_wrong_method_is_a_problem_document_with_allow(client) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


def test_openapi_is_generated_from_the_routes(client) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]


def test_docs_page_and_its_assets_are_served_locally(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert b"/docs/assets/swagger-ui-bundle.js" in page.data
    assert b"//cdn" not in page.data and b"unpkg" not in page.data
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    try:
        assert asset.status_code == 200
        assert len(asset.data) > 100_000
    finally:
        asset.close()


def test_metrics_count_requests_by_endpoint_and_status(client) -> None:
    client.get("/healthz")
    client.get("/nowhere")
    text = client.get("/metrics").data.decode()
    assert 'consentgate_http_requests_total{endpoint="/healthz",method="GET",status="200"} 1.0' in text
    assert 'endpoint="unmatched",method="GET",status="404"' in text
    assert "consentgate_http_request_duration_seconds_bucket" in text


@pytest.fixture
def guarded_app(runtime: Runtime):  # type: ignore[no-untyped-def]
    """An app with two extra routes: one for writers, one that fails unexpectedly."""
    app = create_app({"TESTING": True}, runtime=runtime)
    bp = Blueprint("guarded", __name__)

    @bp.post("/test/writers")
    @require("writer")
    def writers_only() -> dict[str, str]:
        return {"ok": "yes"}

    @bp.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @bp.get("/test/invalid")
    def invalid() -> None:
        raise ValidationFailed.field("phone", "not a valid phone number")

    app.register_blueprint(bp)
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_missing_key_is_401(guarded_app) -> None:
    response = guarded_app.test_client().post("/test/writers")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_key_is_401(guarded_app) -> None:
    response = guarded_app.test_client().post(
        "/test/writers", headers={"Authorization": "Bearer cg_not-a-real-key"})
    assert response.status_code == 401


@pytest.mark.parametrize(("role", "status"), [("sender", 403), ("auditor", 403), ("writer", 200),
                                              ("admin", 200)])
def test_roles_decide_access(guarded_app, keys, role: str, status: int) -> None:
    response = guarded_app.test_client().post("/test/writers", headers=keys[role])
    assert response.status_code == status


def test_revoked_key_is_401(guarded_app, runtime: Runtime) -> None:
    key, token = create_key(runtime.store, "writer", "soon gone", runtime.clock())
    revoke_key(runtime.store, str(key.id), runtime.clock())
    response = guarded_app.test_client().post("/test/writers", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_keys_are_stored_hashed(runtime: Runtime) -> None:
    _, token = create_key(runtime.store, "auditor", "x", runtime.clock())
    with runtime.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key_hash, prefix, name FROM api_key").all()
    assert all(token not in " ".join(map(str, row)) for row in rows)


def test_unexpected_error_is_500_without_internals(guarded_app) -> None:
    response = guarded_app.test_client().get("/test/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert b"passwd" not in response.data and b"Traceback" not in response.data


def test_domain_validation_error_names_the_field(guarded_app) -> None:
    response = guarded_app.test_client().get("/test/invalid")
    assert response.status_code == 422
    assert response.json["errors"] == [{"field": "phone", "message": "not a valid phone number"}]


def test_production_without_secret_refuses_to_start(monkeypatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEY", raising=False)
    from consentgate.errors import ConfigError

    with pytest.raises(ConfigError, match="CONSENTGATE_SECRET_KEY"):
        load_settings({"env": "production"})
    # Set but blank is not set: tombstones keyed with an empty key could be reversed by anyone.
    for blank in ("", "   "):
        with pytest.raises(ConfigError, match="CONSENTGATE_SECRET_KEY"):
            load_settings({"env": "production", "secret_key": blank})


def test_log_level_in_any_case_and_a_bad_one_named(tmp_path) -> None:
    from consentgate.errors import ConfigError

    assert load_settings({"log_level": "debug", "secret_file": str(tmp_path / "s")}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="CONSENTGATE_LOG_LEVEL"):
        load_settings({"log_level": "LOUD", "secret_file": str(tmp_path / "s")})


def test_development_generates_and_keeps_a_local_secret(tmp_path) -> None:
    path = tmp_path / "secret"
    first = load_settings({"secret_file": str(path)}).secret_key
    second = load_settings({"secret_file": str(path)}).secret_key
    assert first is not None and second is not None
    assert first.get_secret_value() == second.get_secret_value()
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("setting", "value", "variable"), [
    ("database_url", "mysql://x/y", "CONSENTGATE_DATABASE_URL"),
    ("public_url", "ftp://nope", "CONSENTGATE_PUBLIC_URL"),
    ("env", "staging", "CONSENTGATE_ENV"),
    ("max_batch", "20000", "CONSENTGATE_MAX_BATCH"),     # API.md: at most 10,000 items
])
def test_bad_settings_name_the_variable(tmp_path, setting: str, value: str, variable: str) -> None:
    from consentgate.errors import ConfigError
    from consentgate.store.db import Store as S

    with pytest.raises(ConfigError, match=variable):
        settings = load_settings({setting: value, "secret_file": str(tmp_path / "s")})
        S(settings.database_url)


@pytest.mark.parametrize("path", ["/v1/eligibility/batch", "/v1/consents/batch"])
def test_a_batch_pauses_the_garbage_collector_and_always_restores_it(  # type: ignore[no-untyped-def]
        client, keys, path, monkeypatch) -> None:
    import gc

    paused: list[bool] = []
    disable = gc.disable

    def spy() -> None:
        disable()
        paused.append(not gc.isenabled())

    monkeypatch.setattr(gc, "disable", spy)
    good = client.post(path, json={"items": [{"phone": "+13055550100", "channel": "sms", "purpose": "marketing"}]},
                       headers=keys["admin"])
    refused = client.post(path, json={"items": "not a list"}, headers=keys["admin"])
    assert good.status_code == 200 and refused.status_code == 422
    assert paused == [True, True]            # off while each batch ran
    assert gc.isenabled()                    # and on again after both, the refused one too

    disable()
    try:
        client.post(path, json={"items": []}, headers=keys["admin"])
        assert not gc.isenabled()            # left as the caller had it
    finally:
        gc.enable()


def test_every_error_the_api_answers_is_in_its_openapi_document(client, keys) -> None:  # type: ignore[no-untyped-def]
    """A client generated from /openapi.json knows each status it can get, and its media type."""
    spec = client.get("/openapi.json").get_json()["paths"]
    consent = {"identity_id": 999, "channel": "email", "purpose": "marketing", "consent_type": "express",
               "captured_at": "2026-01-01T00:00:00Z", "source": "web"}
    asked = [
        ("get", "/v1/identities/{identity_id}", "/v1/identities/999", None, "writer", {}),
        ("get", "/v1/identities", "/v1/identities", None, "writer", {}),
        ("get", "/v1/identities", "/v1/identities?email=nobody@example.com", None, "writer", {}),
        ("post", "/v1/consents", "/v1/consents", consent, "writer", {}),
        ("post", "/v1/consents", "/v1/consents", {**consent, "email": "a@example.com", "identity_id": None},
         "writer", {"Idempotency-Key": "k1"}),
        ("post", "/v1/consents", "/v1/consents", {**consent, "email": "b@example.com", "identity_id": None},
         "writer", {"Idempotency-Key": "k1"}),
        ("post", "/v1/touches", "/v1/touches", {"reservation_id": 999}, "sender", {}),
        ("delete", "/v1/reservations/{reservation_id}", "/v1/reservations/999", None, "sender", {}),
        ("post", "/v1/webhooks/sms/generic", "/v1/webhooks/sms/generic", {"from": "+13055550100"}, None, {}),
        ("get", "/v1/unsubscribe/{token}", "/v1/unsubscribe/not-a-token", None, None, {}),
    ]
    seen = set()
    for method, path, url, body, role, headers in asked:
        answer = getattr(client, method)(url, json=body, headers={**(keys[role] if role else {}), **headers})
        documented = spec[path][method]["responses"]
        assert str(answer.status_code) in documented, (method, url, answer.status_code, sorted(documented))
        assert answer.mimetype in documented[str(answer.status_code)].get("content", {answer.mimetype: None}), \
            (method, url, answer.mimetype)
        seen.add(answer.status_code)
    assert {400, 403, 404, 409, 422} <= seen


def test_the_openapi_document_names_the_policys_words(client, runtime) -> None:  # type: ignore[no-untyped-def]
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    policy = runtime.policy.policy
    assert schemas["EligibilityIn"]["properties"]["channel"]["enum"] == list(policy.channels)
    assert schemas["ConsentIn"]["properties"]["consent_type"]["enum"] == list(policy.consent_types)
    assert schemas["RevocationIn"]["properties"]["purposes"]["items"]["enum"] == [*policy.purposes, "*"]
    touch_channel = schemas["TouchIn"]["properties"]["channel"]["anyOf"]
    assert {"type": "null"} in touch_channel and any(b.get("enum") == list(policy.channels) for b in touch_channel)


def test_query_parameters_are_documented_with_the_types_the_service_checks(client, keys) -> None:  # type: ignore[no-untyped-def]
    """A client generated from /openapi.json sends numbers, instants and known words where the
    service wants them, and what the document allows is accepted."""
    paths = client.get("/openapi.json").get_json()["paths"]

    def parameters(path: str) -> dict[str, dict]:  # type: ignore[type-arg]
        return {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    verify = parameters("/v1/audit/verify")
    assert verify["limit"] == {"type": "integer", "minimum": 1, "maximum": 200_000}
    assert verify["after"] == {"type": "integer", "minimum": 0, "default": 0}
    consents = parameters("/v1/reports/consents")
    assert consents["since"] == consents["until"] == {"type": "string", "format": "date-time"}
    assert consents["format"] == {"type": "string", "enum": ["csv", "json", "jsonl"], "default": "json"}
    assert parameters("/v1/reports/decisions")["allowed"] == {"type": "boolean"}
    assert parameters("/v1/identities/{identity_id}/timeline")["limit"]["maximum"] == 10_000
    # Values at the documented bounds are taken, one past them refused.
    assert client.get("/v1/audit/verify?after=0&limit=200000", headers=keys["auditor"]).status_code == 200
    assert client.get("/v1/audit/verify?limit=200001", headers=keys["auditor"]).status_code == 422
    assert client.get("/v1/reports/decisions?allowed=true&since=2026-01-01T00:00:00Z",
                      headers=keys["auditor"]).status_code == 200
