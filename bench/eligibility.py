"""Eligibility under load: gunicorn (sync workers, one per core) driven by wrk over loopback.

    .venv/bin/python bench/eligibility.py [--people 1000000] [--seconds 10] [--connections 32]
                                          [--rounds 3] [--postgresql ADMIN_URL]
                                          [--timezone America/Los_Angeles]

Seeds a store (a temporary SQLite file; then, with ``--postgresql ADMIN_URL``, a database of its
own on that server, dropped afterwards) with people in ``--timezone`` (their known time zone,
which decides their calling hours: outside them every check is a denial with the time the
window opens, the longer path), consents, revocations and touches in bulk, serves consentgate
and a bare Flask "hello JSON" app under the same gunicorn settings, and prints requests/s, p50
and p99 for both and their ratio: ``--rounds`` gate runs, each between two bare-Flask runs, and
the median ratio (the machine's speed drifts from minute to minute; the ratio moves much less).
Then, after a warm-up batch per worker, times three 10,000-item batches. Needs `wrk` (apt-get
install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert
from throwaway import throwaway_database

ROOT = Path(__file__).resolve().parents[1]
LUA = """
math.randomseed(os.time())
request = function()
  local n = math.random(0, %(people)d - 1)
  local body = string.format('{"phone": "+1212%%07d", "channel": "sms", "purpose": "marketing", '
    .. '"program": "reactivation"}', 2000000 + n)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"}
  return wrk.format("POST", "%(path)s", headers, body)
end
"""


def seed(url: str, people: int, workdir: Path, timezone: str = "America/Los_Angeles") -> str:
    from consentgate.config import load_settings
    from consentgate.runtime import build_runtime
    from consentgate.services.keys import create_key
    from consentgate.store.models import ConsentEvent, ContactPoint, Identity, Revocation, Touch

    rt = build_runtime(load_settings({"database_url": url, "policy": str(ROOT / "policies" / "default.yaml"),
                                      "secret_file": str(workdir / "secret")}))
    now = datetime.now(UTC)
    started = time.perf_counter()
    with rt.store.transaction() as session:
        conn = session.connection()
        for start in range(0, people, 20_000):
            ids = range(start + 1, min(start + 20_000, people) + 1)
            conn.execute(insert(Identity.__table__), [
                {"id": i, "created_at": now, "updated_at": now, "timezone": timezone, "is_test": False}
                for i in ids])
            conn.execute(insert(ContactPoint.__table__), [
                {"id": i, "identity_id": i, "kind": "phone", "value": f"+1212{2000000 + i - 1:07d}",
                 "status": "active", "created_at": now} for i in ids])
            conn.execute(insert(ConsentEvent.__table__), [
                {"identity_id": i, "contact_point_id": i, "channel": "sms", "purpose": "marketing",
                 "consent_type": "express_written", "captured_at": now - timedelta(days=30), "recorded_at": now,
                 "source": "bench", "proof_uri": "https://proof.example.com/b", "pii_digest": ""} for i in ids])
            conn.execute(insert(Revocation.__table__), [
                {"identity_id": i, "contact_point_id": i, "scope": "identity", "channels": ["voice"],
                 "purposes": ["*"], "brands": ["*"], "source": "bench", "received_at": now, "effective_at": now,
                 "deadline_at": now + timedelta(days=14), "pii_digest": ""} for i in ids if i % 10 == 0])
            conn.execute(insert(Touch.__table__), [
                {"identity_id": i, "contact_point_id": i, "channel": "sms", "purpose": "marketing",
                 "program": "reactivation", "state": "sent", "at": now - timedelta(days=2), "created_at": now}
                for i in ids if i % 3 == 0])
    if rt.store.dialect == "postgresql":
        # Rows were given their ids here: the sequences must start after them, or the first
        # reservation or new person the server writes collides with a seeded id.
        with rt.store.transaction() as session:
            for table in ("identity", "contact_point", "consent_event", "revocation", "touch"):
                session.connection().exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # A production database is vacuumed and has planner statistics (autovacuum); a freshly
        # bulk-loaded one has neither, and autovacuum would catch up in the middle of the run.
        with rt.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    _, key = create_key(rt.store, "sender", "bench", now)
    # Checks outside calling hours take the longer path (a denial, and when the window opens):
    # figures from different times of day differ for that alone.
    local = datetime.now(ZoneInfo(timezone))
    print(f"seeded {people:,} people (consents, revocations, touches) in {time.perf_counter() - started:.0f} s "
          f"on {url.split(':')[0]}; they are in {timezone}, where it is {local:%H:%M}: "
          f"{'inside' if 8 <= local.hour < 21 else 'outside'} calling hours")
    return key


def serve(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app]
    process = subprocess.Popen(command, env=env, cwd=ROOT / "bench" if app.startswith("hello") else None)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app} did not start")


def wrk(port: int, path: str, key: str, people: int, seconds: int, connections: int) -> tuple[float, float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {"people": people, "path": path, "key": key})
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rate, ms("50"), ms("99")


def batch(key: str, people: int) -> float:
    """Seconds to answer one batch of 10,000 random people, as a sender sees it."""
    items = [{"phone": f"+1212{2000000 + random.randrange(people):07d}", "channel": "sms", "purpose": "marketing"}
             for _ in range(10_000)]
    started = time.perf_counter()
    answer = httpx.post("http://127.0.0.1:8711/v1/eligibility/batch", content=json.dumps({"items": items}),
                        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=120)
    answer.raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgresql", metavar="ADMIN_URL", default=None)
    parser.add_argument("--timezone", default="America/Los_Angeles",
                        help="the seeded people's time zone: whether it is inside calling hours there changes the "
                             "figures (a denial with the time the window opens is the longer path)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-bench-"))
    run(f"sqlite:///{workdir}/bench.db", workdir, args)
    if args.postgresql:
        with throwaway_database(args.postgresql, "consentgate_bench_eligibility") as url:
            run(url, workdir, args)


def run(url: str, workdir: Path, args: argparse.Namespace) -> None:
    key = seed(url, args.people, workdir, args.timezone)
    workers = os.cpu_count() or 1
    env = {**os.environ, "CONSENTGATE_DATABASE_URL": url, "CONSENTGATE_SECRET_FILE": str(workdir / "secret"),
           "CONSENTGATE_POLICY": str(ROOT / "policies" / "default.yaml"), "CONSENTGATE_LOG_LEVEL": "WARNING",
           "CONSENTGATE_AUTO_MIGRATE": "false"}
    gate = serve("consentgate.app:create_app()", 8711, env, workers)
    hello = serve("hello:app", 8712, env, workers)
    try:
        # Alternated rounds, each gate run between two bare-Flask runs: the machine's speed drifts
        # within minutes, and the ratio should compare like with like.
        for port, path in ((8711, "/v1/eligibility"), (8712, "/hello")):   # warm up: caches, lazy imports
            wrk(port, path, key, args.people, 2, args.connections)
        base = [wrk(8712, "/hello", key, args.people, args.seconds, args.connections)]
        ratios, gated = [], []
        for _ in range(args.rounds):
            gated.append(wrk(8711, "/v1/eligibility", key, args.people, args.seconds, args.connections))
            base.append(wrk(8712, "/hello", key, args.people, args.seconds, args.connections))
            ratios.append(gated[-1][0] / ((base[-2][0] + base[-1][0]) / 2))
        for name, runs in (("bare Flask", base), ("/v1/eligibility", gated)):
            print(f"{name:16}: " + "; ".join(f"{rate:.0f} req/s p50 {p50:.2f} ms p99 {p99:.2f} ms"
                                             for rate, p50, p99 in runs))
        print(f"ratio           : {statistics.median(ratios):.2f}x the bare-Flask rate (median of "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; {workers} sync workers, {args.connections} connections)")
        # A worker's first batch compiles and prepares the batch's statements: two at once warm
        # up both workers (a sender's worker has long been warm), then three are timed.
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: batch(key, args.people), range(workers)))
        took = [batch(key, args.people) for _ in range(3)]
        print(f"batch of 10,000 : {statistics.median(took):.2f} s (median of {', '.join(f'{t:.2f}' for t in took)}; "
              f"random people, after a warm-up batch per worker)")
    finally:
        gate.terminate()
        hello.terminate()
        gate.wait()
        hello.wait()


if __name__ == "__main__":
    main()
