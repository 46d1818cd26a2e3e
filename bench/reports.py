"""Report streaming: rows per second and peak memory at two sizes (memory must stay flat).

    .venv/bin/python bench/reports.py [--rows 1000000]

Each size runs in a fresh process so peak RSS is its own. Runs on temporary SQLite stores, then,
with ``--postgresql ADMIN_URL`` (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test), again
in a database of its own created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from throwaway import throwaway_database

ROOT = Path(__file__).resolve().parents[1]


def run_one(rows: int, admin_url: str | None) -> None:
    if admin_url is None:
        _measure(rows, None)
        return
    with throwaway_database(admin_url, f"consentgate_bench_reports_{rows}") as url:
        _measure(rows, url)


def _measure(rows: int, url: str | None) -> None:
    from sqlalchemy import insert

    from consentgate.app import create_app
    from consentgate.services.keys import create_key
    from consentgate.store.models import ConsentEvent, ContactPoint, Identity

    workdir = Path(tempfile.mkdtemp(prefix="consentgate-bench-"))
    app = create_app({"database_url": url or f"sqlite:///{workdir}/bench.db", "secret_file": str(workdir / "secret"),
                      "policy": str(ROOT / "policies" / "default.yaml"), "log_level": "WARNING"})
    rt = app.extensions["consentgate"]
    now = datetime.now(UTC)
    with rt.store.transaction() as session:
        for start in range(0, rows, 10_000):
            ids = range(start + 1, min(start + 10_000, rows) + 1)
            session.execute(insert(Identity), [{"id": i, "created_at": now, "updated_at": now} for i in ids])
            session.execute(insert(ContactPoint), [{"id": i, "identity_id": i, "kind": "email",
                                                    "value": f"p{i}@corp.com", "created_at": now} for i in ids])
            session.execute(insert(ConsentEvent), [{
                "identity_id": i, "contact_point_id": i, "channel": "email", "purpose": "marketing",
                "consent_type": "double_opt_in", "captured_at": now - timedelta(days=1), "recorded_at": now,
                "source": "bench", "pii_digest": ""} for i in ids])
    _, key = create_key(rt.store, "auditor", "bench", now)
    client = app.test_client()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/v1/reports/consents?format=csv", headers={"Authorization": f"Bearer {key}"},
                          buffered=False)
    lines = sum(chunk.count(b"\n") for chunk in response.response)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{rows:>9,} rows ({rt.store.dialect}): {lines - 1:,} streamed in {elapsed:.1f} s = "
          f"{(lines - 1) / elapsed:,.0f} rows/s; "
          f"peak RSS {peak / 1024:.0f} MB (+{(peak - before) / 1024:.0f} MB while streaming)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgresql", metavar="ADMIN_URL", default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        run_one(args.one, args.postgresql)
        return
    stores = [[], *([["--postgresql", args.postgresql]] if args.postgresql else [])]   # SQLite, then PostgreSQL
    for extra in stores:
        for size in (args.rows // 20, args.rows):
            subprocess.run([sys.executable, __file__, "--one", str(size), *extra], check=True)


if __name__ == "__main__":
    main()
