"""Scheduled jobs, run by ``consentgate scheduler`` in its own process (never in web workers).

Each job is one service call in its own transaction(s), wrapped in a lease so that several
scheduler instances can run side by side and a job still runs once at a time. The outbox is the
source of truth for deliveries, so a crash mid-job loses nothing: the next run picks it up.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from consentgate.runtime import Runtime
from consentgate.store import leases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[Runtime], object]
    lease: timedelta = timedelta(minutes=5)


_JOBS: dict[str, Job] = {}


def job(name: str, every: timedelta, lease: timedelta = timedelta(minutes=5)) -> Callable[
        [Callable[[Runtime], object]], Callable[[Runtime], object]]:
    """Register a function of the runtime as a scheduled job."""

    def decorator(fn: Callable[[Runtime], object]) -> Callable[[Runtime], object]:
        _JOBS[name] = Job(name, every, fn, lease)
        return fn

    return decorator


def registered() -> dict[str, Job]:
    _load_job_modules()
    return dict(_JOBS)


def _load_job_modules() -> None:
    from importlib import import_module

    for module in JOB_MODULES:
        import_module(module)


# Modules whose import registers jobs with @job.
JOB_MODULES: tuple[str, ...] = ()


@job("tombstone_retention", every=timedelta(hours=24))
def _purge_expired_tombstones(rt: Runtime) -> int:
    """Erasure tombstones are kept for the policy's retention period, then purged."""
    from consentgate.services.erasure import purge_expired_tombstones

    return purge_expired_tombstones(rt.store, rt.clock())


@job("decision_log_retention", every=timedelta(hours=1))
def _purge_expired_decisions(rt: Runtime) -> int:
    """Logged decisions are kept for the policy's retention period, then deleted (a bounded
    number per run, so a store catching up does so over several runs)."""
    from consentgate.services.retention import purge_expired_decisions

    return purge_expired_decisions(rt.store, rt.policy, rt.clock())


@job("idempotency_key_retention", every=timedelta(hours=1))
def _purge_expired_idempotency_keys(rt: Runtime) -> int:
    """Idempotency keys are honoured for ``KEY_RETENTION``, then forgotten."""
    from consentgate.services.idempotency import purge_expired_keys

    return purge_expired_keys(rt.store, rt.clock())


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_once(rt: Runtime, name: str, holder: str | None = None, scheduled: bool = False) -> bool | None:
    """Run one job now if its lease can be taken: True when it ran, None when it failed, False
    when it did not run. ``scheduled``: a turn of its interval, which is skipped when the job ran
    in the last half interval anywhere (several scheduler instances take turns, they do not each
    run every job every interval)."""
    spec = registered()[name]
    holder = holder or holder_id()
    now = rt.clock()
    if not leases.acquire(rt.store, name, holder, now, spec.lease, now - spec.every / 2 if scheduled else None):
        log.debug("job %s is running elsewhere or ran moments ago", name)
        return False
    try:
        result = spec.run(rt)
        log.info("job %s ran: %s", name, result)
        return True
    except Exception:
        log.exception("job %s failed; it will run again at its next turn", name)
        return None
    finally:
        leases.release(rt.store, name, holder, rt.clock())


def serve_forever(rt: Runtime) -> None:
    """Run every registered job on its interval until interrupted."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    holder = holder_id()
    scheduler = BlockingScheduler(timezone="UTC")
    for name, spec in registered().items():
        scheduler.add_job(run_once, "interval", args=(rt, name, holder, True), id=name,
                          seconds=spec.every.total_seconds(), max_instances=1, coalesce=True,
                          next_run_time=rt.clock())
    log.info("scheduler %s running jobs: %s", holder, ", ".join(registered()) or "(none)")
    scheduler.start()


@job("reservation_expiry", every=timedelta(minutes=1))
def _expire_reservations(rt: Runtime) -> int:
    """Reserved slots nobody used are given back when their time to live ends."""
    from consentgate.services.eligibility import expire_reservations

    with rt.store.transaction() as session:
        return expire_reservations(session, rt.clock())


@job("propagation", every=timedelta(seconds=30))
def _propagate(rt: Runtime) -> object:
    """Deliver due revocations to downstream senders; failures back off and retry."""
    from consentgate.services.propagation import deliver_due, http_poster

    return deliver_due(rt.store, rt.clock(), http_poster(), clock=rt.clock)


@job("revocation_sla", every=timedelta(minutes=15))
def _sla(rt: Runtime) -> object:
    """Revocations near or past their legal deadline without every acknowledgement raise an alert."""
    from consentgate.services.propagation import sla_summary

    summary = sla_summary(rt.store, rt.policy, rt.clock())
    for status, count in summary.items():
        rt.metrics.sla.labels(status=status).set(count)
    if summary["at_risk"] or summary["missed"]:
        log.warning("revocation SLA alert: %s at risk, %s missed", summary["at_risk"], summary["missed"])
    return summary


@job("repermission_window", every=timedelta(hours=1))
def _close_repermission(rt: Runtime) -> int:
    """Non-responders to a re-permission touch are suppressed when the policy's window ends."""
    from consentgate.services.repermission import close_repermission_windows

    return close_repermission_windows(rt.store, rt.policy, rt.clock())


@job("consent_expiry", every=timedelta(hours=1))
def _consent_expiry(rt: Runtime) -> int:
    """Consents past their expiry stop counting at once (the gate checks ``expires_at`` itself);
    this job reports how many ended in the last interval so operators can re-permission them."""
    from sqlmodel import col, select

    from consentgate.store.models import ConsentEvent

    now = rt.clock()
    with rt.store.transaction(write=False) as session:
        ended = session.exec(select(ConsentEvent.id).where(
            col(ConsentEvent.expires_at) > now - timedelta(hours=1), col(ConsentEvent.expires_at) <= now)).all()
    if ended:
        log.info("%d consent(s) expired in the last hour", len(ended))
    return len(ended)
