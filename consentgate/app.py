"""The application factory: the only place that wires consentgate together."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from consentgate import __version__
from consentgate.api import blueprints, problems
from consentgate.config import load_settings
from consentgate.core.addresses import location_data
from consentgate.runtime import Runtime, build_runtime, tune_gc


class JSONProvider(DefaultJSONProvider):
    """RFC 3339 times in UTC with a ``Z``, as API.md promises."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        from datetime import UTC, date, datetime

        if isinstance(o, datetime):
            return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if isinstance(o, date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def create_app(config: Mapping[str, Any] | None = None, *, runtime: Runtime | None = None) -> Flask:
    """Build the app from settings (``CONSENTGATE_*`` env, overridden by ``config``)."""
    config = dict(config or {})
    app = Flask(__name__)
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)
    app.config["VERSION"] = __version__
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    flask_keys = {k: config.pop(k) for k in list(config) if k.isupper() and k in {"TESTING"}}
    app.config.update(flask_keys)
    if runtime is None:
        settings = load_settings(config)
        logging.basicConfig(level=settings.log_level)
        runtime = build_runtime(settings)
    app.extensions["consentgate"] = runtime
    location_data()   # loaded now rather than by the first eligibility check
    # No secret_key: the API keeps no cookie session, and Flask then skips signing one per request.
    problems.init_app(app)
    for bp in blueprints():
        app.register_blueprint(bp)
    _observe(app, runtime)
    tune_gc()
    return app


def _observe(app: Flask, rt: Runtime) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Any) -> Any:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        rt.metrics.observe_request(endpoint, request.method, response.status_code, elapsed)
        return response
