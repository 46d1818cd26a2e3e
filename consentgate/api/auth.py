"""Bearer API keys with roles: 401 without a known key, 403 without the role."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from consentgate.api.context import runtime
from consentgate.errors import Forbidden, Unauthorized
from consentgate.services.keys import Actor, authenticate

F = TypeVar("F", bound=Callable[..., Any])
CACHE_SECONDS = 5.0


def current_actor() -> Actor:
    return g.actor  # type: ignore[no-any-return]


def _actor_for(token: str) -> Actor | None:
    # A short cache keeps key lookups off the hot path; a revoked key stops within CACHE_SECONDS.
    rt = runtime()
    cache: dict[str, tuple[float, Actor | None]] = rt.__dict__.setdefault("_key_cache", {})
    hit = cache.get(token)
    now = time.monotonic()
    if hit and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    actor = authenticate(rt.store, token)
    if len(cache) > 10_000:
        cache.clear()
    cache[token] = (now, actor)
    return actor


def require(*roles: str) -> Callable[[F], F]:
    """Let the view run only for a key with one of ``roles`` (admin always passes)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("an API key is required: Authorization: Bearer <key>")
            actor = _actor_for(token.strip())
            if actor is None:
                raise Unauthorized("unknown or revoked API key")
            if not actor.has(*roles):
                raise Forbidden(f"this key's role {actor.role!r} may not do this "
                                f"(needs {' or '.join(roles)})")
            g.actor = actor
            return view(*args, **kwargs)

        wrapped.__roles__ = roles  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
