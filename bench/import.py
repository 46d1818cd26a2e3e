"""Import speed: a CRM consent export and a National DNC Registry file.

    .venv/bin/python bench/import.py [--rows 1000000] [--dnc 1000000]

Uses a temporary SQLite store unless CONSENTGATE_DATABASE_URL is set. Prints rows per second and
the peak memory of the importing process and of its largest planning worker (the workers are
forked: most of their pages are shared with the importing process).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from consentgate.config import load_settings
from consentgate.runtime import build_runtime
from consentgate.services.imports import import_consents, import_dnc

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dnc", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-bench-"))
    url = os.environ.get("CONSENTGATE_DATABASE_URL", f"sqlite:///{workdir}/bench.db")
    rt = build_runtime(load_settings({"database_url": url, "policy": str(ROOT / "policies" / "default.yaml"),
                                      "secret_file": str(workdir / "secret"), "log_level": "WARNING"}))
    now = datetime.now(UTC)
    captured = (now - timedelta(days=10)).isoformat()
    consents = workdir / "consents.csv"
    formats = ["+1 212-{a}-{b}", "(212) {a}-{b}", "212.{a}.{b}", "1-212-{a}-{b}", "212{a}{b}"]
    with consents.open("w") as out:
        out.write("email,phone,channel,purpose,consent_type,captured_at,source,proof_uri\n")
        for i in range(args.rows):
            n = i if i % 20 else i // 2                    # about 5% of rows name someone seen before
            a, b = f"{200 + n // 10000 % 800:03d}", f"{n % 10000:04d}"
            if i % 100 == 99:
                out.write(f"not-an-email,,email,marketing,double_opt_in,{captured},crm,\n")   # 1% bad rows
            elif i % 2:
                phone = formats[i % len(formats)].format(a=a, b=b)
                out.write(f",{phone},sms,marketing,express_written,{captured},web_form,https://proof.example.com/{n}\n")
            else:
                out.write(f"Person.{n}@Corp{n % 500}.com,,email,marketing,double_opt_in,{captured},crm,\n")
    started = time.perf_counter()
    with consents.open(newline="") as stream:
        result = import_consents(rt.store, rt.policy, stream, now)
    elapsed = time.perf_counter() - started
    print(f"consents: {result.imported} rows in {elapsed:.1f} s = {result.imported / elapsed:,.0f} rows/s "
          f"({len(result.rejected)} rejected; {url.split(':')[0]})")
    print(f"          peak memory: {_peak_mb(resource.RUSAGE_SELF):.0f} MB importing, "
          f"{_peak_mb(resource.RUSAGE_CHILDREN):.0f} MB largest planning worker")

    registry = workdir / "dnc.txt"
    with registry.open("w") as out:
        for i in range(args.dnc):
            out.write(f"{212 + (i // 8_000_000) % 700:03d}{2000000 + i % 8_000_000:07d}\n")
    started = time.perf_counter()
    with registry.open() as stream:
        loaded = import_dnc(rt.store, rt.policy, stream, now, date.today())
    elapsed = time.perf_counter() - started
    print(f"dnc: {loaded.loaded} numbers in {elapsed:.1f} s = {loaded.loaded / elapsed:,.0f} numbers/s "
          f"({len(loaded.rejected)} rejected)")


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024   # kilobytes on Linux


if __name__ == "__main__":
    main()
