"""Eligibility speed: single decisions and batches, through the full HTTP stack in process.

    .venv/bin/python bench/eligibility.py [--people 2000] [--calls 2000] [--batch 1000]

Uses a temporary SQLite store unless CONSENTGATE_DATABASE_URL is set. Prints latency
percentiles of POST /v1/eligibility (decision logged, every rule evaluated) and the rate of
POST /v1/eligibility/batch.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consentgate.app import create_app
from consentgate.services.keys import create_key

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="consentgate-bench-")
    url = os.environ.get("CONSENTGATE_DATABASE_URL", f"sqlite:///{workdir}/bench.db")
    app = create_app({"database_url": url, "policy": str(ROOT / "policies" / "default.yaml"),
                      "secret_file": f"{workdir}/secret", "log_level": "WARNING"})
    rt = app.extensions["consentgate"]
    now = datetime.now(UTC)
    _, writer = create_key(rt.store, "writer", "bench", now)
    _, sender = create_key(rt.store, "sender", "bench", now)
    client = app.test_client()
    phones = [f"+1212555{i:04d}" for i in range(min(args.people, 10_000))]
    items = [{"phone": p, "channel": "sms", "purpose": "marketing", "consent_type": "express_written",
              "captured_at": (now - timedelta(days=30)).isoformat(), "source": "bench",
              "proof_uri": "https://proof.example.com/bench"} for p in phones]
    started = time.perf_counter()
    for chunk in range(0, len(items), 5000):
        client.post("/v1/consents/batch", json={"items": items[chunk:chunk + 5000]},
                    headers={"Authorization": f"Bearer {writer}"})
    print(f"seeded {len(items)} people with consent in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})")

    headers = {"Authorization": f"Bearer {sender}"}
    latencies = []
    for _ in range(args.calls):
        body = {"phone": random.choice(phones), "channel": random.choice(["sms", "voice"]), "purpose": "marketing",
                "program": "reactivation"}
        t0 = time.perf_counter()
        answer = client.post("/v1/eligibility", json=body, headers=headers)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(f"POST /v1/eligibility x{args.calls}: p50 {q[49]:.2f} ms  p95 {q[94]:.2f} ms  p99 {q[98]:.2f} ms  "
          f"({1000 / statistics.mean(latencies):.0f} decisions/s on one thread)")

    batch = [{"phone": random.choice(phones), "channel": "sms", "purpose": "marketing"} for _ in range(args.batch)]
    t0 = time.perf_counter()
    answer = client.post("/v1/eligibility/batch", json={"items": batch}, headers=headers)
    elapsed = time.perf_counter() - t0
    assert answer.status_code == 200
    print(f"POST /v1/eligibility/batch of {args.batch}: {elapsed:.2f} s ({args.batch / elapsed:.0f} decisions/s)")


if __name__ == "__main__":
    main()
