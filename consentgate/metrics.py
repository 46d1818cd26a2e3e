"""Prometheus series. One registry per app, so several apps (tests) never collide.

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` so the workers' figures
are summed (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "consentgate_http_requests_total", "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "consentgate_http_request_duration_seconds", "HTTP request latency by endpoint",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.decisions = Counter(
            "consentgate_decisions_total", "Eligibility decisions by outcome", ["outcome"], registry=r,
        )
        self.decision_reasons = Counter(
            "consentgate_decision_reasons_total", "Denying reasons by code", ["code"], registry=r,
        )
        self.revocations = Counter(
            "consentgate_revocations_total", "Revocations recorded by source", ["source"], registry=r,
        )
        self.inbound_sms = Counter(
            "consentgate_inbound_sms_total", "Inbound SMS by provider and intent",
            ["provider", "intent"], registry=r,
        )
        self.sla = Gauge(
            "consentgate_revocation_sla", "Revocations by SLA status (at last computation)",
            ["status"], registry=r, multiprocess_mode="max",
        )

        # Labelled series looked up once: prometheus_client's labels() costs more than the increment.
        self._series: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*labels)
        return child

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, endpoint, method, str(status)).inc()
        self._child(self.latency, endpoint, method).observe(seconds)

    def count_decisions(self, outcomes: Mapping[str, int], codes: Mapping[str, int]) -> None:
        for outcome, n in outcomes.items():
            self._child(self.decisions, outcome).inc(n)
        for code, n in codes.items():
            self._child(self.decision_reasons, code).inc(n)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
