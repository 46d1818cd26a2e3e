"""What one running consentgate holds: settings, store, policy, metrics and the clock.

Built once by ``create_app`` (or a CLI command) and handed to services explicitly; services never
reach for globals, so tests can give them another clock or policy.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consentgate.config import Settings
from consentgate.core.policy import LoadedPolicy, load_policy
from consentgate.metrics import Metrics
from consentgate.store.db import Store

log = logging.getLogger(__name__)


# Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000
_gc_tuned = False


def tune_gc() -> None:
    """Once per process, when start-up is done: leave what exists now (modules, the policy,
    phonenumbers' tables: millions of objects) out of every later collection, and collect less
    often. A 10,000-item batch spent a quarter of its time in the collector scanning them."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 50)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while the block runs (a whole batch request).

    A 10,000-item batch keeps hundreds of thousands of objects alive until it answers, and the
    collector scanned them again and again as they aged (about a tenth of the batch's time). They
    are freed by reference counting when the batch ends; what the block leaves in cycles waits for
    the next collection. Nested or concurrent blocks leave the collector as the outermost found it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    policy: LoadedPolicy
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utc_now
    # Where the reports read (``CONSENTGATE_REPORTS_DATABASE_URL``); None: ``store``.
    replica: Store | None = None

    @property
    def report_store(self) -> Store:
        """The store the reports stream from: a replica when one is configured, so an auditor's
        export of millions of rows does not compete with the gate for the primary."""
        return self.replica if self.replica is not None else self.store

    @property
    def secret_key(self) -> str:
        assert self.settings.secret_key is not None  # load_settings guarantees one
        return self.settings.secret_key.get_secret_value()


def build_runtime(settings: Settings, *, migrate: bool | None = None) -> Runtime:
    """Open the store (migrating it when asked or by default in development) and load the policy."""
    store = Store(settings.database_url, synced_decisions=settings.decision_log_sync == "commit")
    if migrate if migrate is not None else settings.migrate_on_start:
        from consentgate.store.migrate import upgrade

        upgrade(store)
    policy = load_policy(settings.policy_path)
    log.info("policy %s loaded from %s (version %s)", policy.policy.name, policy.source, policy.version)
    # A replica is never migrated from here: it follows the primary's schema by replication.
    replica = Store(settings.reports_database_url) if settings.reports_database_url else None
    return Runtime(settings=settings, store=store, policy=policy, replica=replica)
