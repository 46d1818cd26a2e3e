"""Import speed: a CRM consent export and a National DNC Registry file.

    .venv/bin/python bench/import.py [--rows 1000000] [--dnc 1000000] [--postgresql ADMIN_URL]

Runs on a temporary SQLite store, then, with ``--postgresql ADMIN_URL`` (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test), again in a database of its own created on
that server and dropped afterwards; each store in a fresh process. The consent file is what
``consentgate import consents`` reads (mixed phone spellings and emails, about 5% of rows naming
someone seen before, 1% bad rows) and goes through the same function. Prints rows per second and
peak memory: of the importer and its planning workers together, as proportional set size (the
workers are forked and share most of their pages with the importer; PSS counts those once), and
each process's own RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from throwaway import throwaway_database

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["+1 212-{a}-{b}", "(212) {a}-{b}", "212.{a}.{b}", "1-212-{a}-{b}", "212{a}{b}"]


def write_consents(path: Path, rows: int, captured: str) -> None:
    with path.open("w") as out:
        out.write("email,phone,channel,purpose,consent_type,captured_at,source,proof_uri\n")
        for i in range(rows):
            n = i if i % 20 else i // 2                    # about 5% of rows name someone seen before
            a, b = f"{200 + n // 10000 % 800:03d}", f"{n % 10000:04d}"
            if i % 100 == 99:
                out.write(f"not-an-email,,email,marketing,double_opt_in,{captured},crm,\n")   # 1% bad rows
            elif i % 2:
                phone = FORMATS[i % len(FORMATS)].format(a=a, b=b)
                out.write(f",{phone},sms,marketing,express_written,{captured},web_form,https://proof.example.com/{n}\n")
            else:
                out.write(f"Person.{n}@Corp{n % 500}.com,,email,marketing,double_opt_in,{captured},crm,\n")


def measure(url: str, workdir: Path, rows: int, dnc: int) -> None:
    from consentgate.config import load_settings
    from consentgate.runtime import build_runtime, tune_gc
    from consentgate.services.imports import import_consents, import_dnc

    rt = build_runtime(load_settings({"database_url": url, "policy": str(ROOT / "policies" / "default.yaml"),
                                      "secret_file": str(workdir / "secret"), "log_level": "WARNING"}))
    tune_gc()   # as the command does
    now = datetime.now(UTC)
    consents = workdir / "consents.csv"
    write_consents(consents, rows, (now - timedelta(days=10)).isoformat())
    started = time.perf_counter()
    with consents.open(newline="") as stream, PeakMemory() as memory:
        result = import_consents(rt.store, rt.policy, stream, now)
    elapsed = time.perf_counter() - started
    print(f"consents ({rt.store.dialect}): {result.imported:,} rows in {elapsed:.1f} s = "
          f"{result.imported / elapsed:,.0f} rows/s ({len(result.rejected):,} rejected); peak memory "
          f"{memory.peak_mb:.0f} MB for the importer and its workers together (PSS); RSS "
          f"{_peak_mb(resource.RUSAGE_SELF):.0f} MB importing, {_peak_mb(resource.RUSAGE_CHILDREN):.0f} MB "
          "largest planning worker")
    if rt.store.dialect == "postgresql":
        from consentgate.store.bulk import may_skip_triggers

        with rt.store.transaction(write=False) as session:
            together = may_skip_triggers(session.connection())
        print("  foreign keys checked once per block: this role may set session_replication_role" if together else
              "  foreign keys checked by PostgreSQL's trigger per row: this role may not set session_replication_role")

    registry = workdir / "dnc.txt"
    with registry.open("w") as out:
        for i in range(dnc):
            out.write(f"{212 + (i // 8_000_000) % 700:03d}{2000000 + i % 8_000_000:07d}\n")
    started = time.perf_counter()
    with registry.open() as stream:
        loaded = import_dnc(rt.store, rt.policy, stream, now, date.today())
    elapsed = time.perf_counter() - started
    print(f"dnc ({rt.store.dialect}): {loaded.loaded:,} numbers in {elapsed:.1f} s = "
          f"{loaded.loaded / elapsed:,.0f} numbers/s ({len(loaded.rejected):,} rejected)")


class PeakMemory:
    """The largest proportional set size (PSS) of this process and its children together, sampled
    while the block runs: shared pages (the forked workers share most of theirs) counted once.

    Once a second: the kernel walks a process's page tables to sum its PSS, 6 ms of CPU for 300 MB
    here, and sampled five times a second the three processes' readings took 3-4% of the two
    cores the import itself was measured on. An import's memory stays flat after its first
    blocks, so the peak is the plateau either way."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.peak_mb = every, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self._take()   # a block shorter than a sampling interval still gets a reading

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            self._take()

    def _take(self) -> None:
        pids = [os.getpid()]
        for children in Path("/proc/self/task").glob("*/children"):
            pids += [int(p) for p in children.read_text().split()]
        self.peak_mb = max(self.peak_mb, sum(_pss_kb(pid) for pid in pids) / 1024)


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0   # a worker that just ended
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024   # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dnc", type=int, default=1_000_000)
    parser.add_argument("--postgresql", metavar="ADMIN_URL", default=None)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = ["--rows", str(args.rows), "--dnc", str(args.dnc)]
    if args.store is None:
        subprocess.run([sys.executable, __file__, *sizes, "--store", "sqlite"], check=True)
        if args.postgresql:
            subprocess.run([sys.executable, __file__, *sizes, "--store", "postgresql",
                            "--postgresql", args.postgresql], check=True)
        return
    workdir = Path(tempfile.mkdtemp(prefix="consentgate-bench-"))
    if args.store == "sqlite":
        measure(f"sqlite:///{workdir}/bench.db", workdir, args.rows, args.dnc)
        return
    with throwaway_database(args.postgresql, "consentgate_bench_import") as url:
        measure(url, workdir, args.rows, args.dnc)


if __name__ == "__main__":
    main()
