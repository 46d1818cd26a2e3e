"""The application factory: the only place that wires consentgate together."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider

from consentgate import __version__
from consentgate.api import blueprints, guard_row_ids, problems
from consentgate.config import load_settings
from consentgate.core.addresses import location_data
from consentgate.runtime import Runtime, build_runtime, tune_gc

# Times are handed to ``default`` (not orjson's own format), so that every one is UTC with a Z.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class JSONProvider(DefaultJSONProvider):
    """RFC 3339 times in UTC with a ``Z``, as API.md promises; orjson underneath, because every
    answer and request body passes through here and the standard library costs several times more."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        from datetime import UTC, date, datetime

        if isinstance(o, datetime):
            return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if isinstance(o, date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=self.default, option=_ORJSON_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = orjson.dumps(self._prepare_response_obj(args, kwargs), default=self.default, option=_ORJSON_OPTIONS)
        return Response(body, mimetype=self.mimetype)


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
    guard_row_ids(app)
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
