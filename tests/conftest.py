"""Fixtures shared by every test tier.

The store tier runs on SQLite by default and on PostgreSQL with ``--db postgresql`` (or
``CONSENTGATE_TEST_DB=postgresql``). A PostgreSQL run creates its own database from the admin URL
(``CONSENTGATE_TEST_PG_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
migrates it with Alembic, and drops it at the end; each test starts from empty tables.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from nacl.signing import SigningKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from consentgate.config import load_settings
from consentgate.core.policy import LoadedPolicy, load_policy
from consentgate.metrics import Metrics
from consentgate.runtime import Runtime
from consentgate.store import models  # noqa: F401  (tables on the metadata)
from consentgate.store.db import Store, dispose_all
from consentgate.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]

# Property tests explore the same examples on every run, so a CI result can be reproduced;
# HYPOTHESIS_PROFILE=explore draws fresh examples each time (run it when changing the rules).
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# A fixed Ed25519 key pair stands in for the Telnyx account's key in webhook tests.
TELNYX_SEED = bytes(range(32))
TELNYX_PUBLIC_KEY = base64.b64encode(bytes(SigningKey(TELNYX_SEED).verify_key)).decode()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default=os.environ.get("CONSENTGATE_TEST_DB", "sqlite"),
                     choices=["sqlite", "postgresql"], help="store the store tier runs on")


def pytest_report_header(config: pytest.Config) -> str:
    return f"consentgate store: {config.getoption('--db')}"


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@contextmanager
def _migrated_database(db_kind: str, directory: Path, prefix: str) -> Iterator[str]:
    """A new database migrated to head (a SQLite file in ``directory``, or a PostgreSQL database
    created from the admin URL), dropped afterwards."""
    if db_kind == "sqlite":
        url = f"sqlite:///{directory / f'{prefix}.db'}"
        upgrade(Store(url))
        yield url
        dispose_all()
        return
    admin_url = os.environ.get("CONSENTGATE_TEST_PG_URL", DEFAULT_PG_ADMIN)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(Store(url))
        yield url
    finally:
        dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test run."""
    with _migrated_database(db_kind, tmp_path_factory.mktemp("store"), "consentgate_test") as url:
        yield url


@pytest.fixture
def second_database_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """Another database of the same schema, for this test only (a replica, say)."""
    with _migrated_database(db_kind, tmp_path, "consentgate_second") as url:
        yield url


def _clean(store: Store) -> None:
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    with store.engine.begin() as conn:
        if store.is_sqlite:
            for name in reversed(tables):
                conn.execute(text(f'DELETE FROM "{name}"'))
        else:
            quoted = ", ".join(f'"{n}"' for n in tables)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    # The store remembers which policy versions it has written; they are gone now.
    store.stored_policy_versions.clear()


@pytest.fixture
def store(database_url: str) -> Store:
    """The test run's store, emptied before each test."""
    s = Store(database_url, synced_decisions=False)   # as served by default (decision_log_sync)
    _clean(s)
    return s


@pytest.fixture
def wipe(store: Store):  # type: ignore[no-untyped-def]
    """Empty the store again, mid-test (to compare two ways of writing the same data)."""
    return lambda: _clean(store)


@pytest.fixture(scope="session")
def policy() -> LoadedPolicy:
    return load_policy(ROOT / "policies" / "default.yaml")


class Clock:
    """A settable clock for services and apps under test."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(store: Store, policy: LoadedPolicy, clock: Clock, tmp_path: Path) -> Runtime:
    settings = load_settings({
        "env": "test",
        "database_url": store.url,
        "secret_key": "test-secret-key-0123456789abcdef",
        "twilio_auth_token": "twilio-test-token",
        "webhook_secret": "generic-webhook-secret",
        "telnyx_public_key": TELNYX_PUBLIC_KEY,
        "public_url": "https://consentgate.example.com",
        "secret_file": str(tmp_path / "secret"),
    })
    return Runtime(settings=settings, store=store, policy=policy, metrics=Metrics(), clock=clock)


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point the command line at the test store, with the runtime's secret key and a policy file
    (the default one unless given)."""
    def point(policy: Path = ROOT / "policies" / "default.yaml") -> None:
        monkeypatch.setenv("CONSENTGATE_DATABASE_URL", runtime.store.url)
        monkeypatch.setenv("CONSENTGATE_SECRET_KEY", runtime.secret_key)
        monkeypatch.setenv("CONSENTGATE_POLICY", str(policy))

    return point


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    from consentgate.app import create_app

    return create_app({"TESTING": True}, runtime=runtime)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def _new_keys(runtime: Runtime) -> dict[str, dict[str, str]]:
    from consentgate.services.keys import ROLES, create_key

    out = {}
    for role in ROLES:
        _, token = create_key(runtime.store, role, f"test {role}", runtime.clock())
        out[role] = {"Authorization": f"Bearer {token}"}
    return out


@pytest.fixture
def keys(runtime: Runtime) -> dict[str, dict[str, str]]:
    """Authorization headers for one fresh key of each role."""
    return _new_keys(runtime)


@pytest.fixture
def start_over(runtime: Runtime, clock: Clock, wipe):  # type: ignore[no-untyped-def]
    """Empty the store, set the clock, and return fresh keys (as ``keys``): for property tests,
    whose every example must begin from nothing."""
    def restart(now: datetime) -> dict[str, dict[str, str]]:
        wipe()
        clock.set(now)
        return _new_keys(runtime)

    return restart


@pytest.fixture
def rows(store: Store):  # type: ignore[no-untyped-def]
    """Every row of a table, read in a fresh transaction: what is really on disk."""
    from sqlmodel import select

    def read(model: type[SQLModel]) -> list[SQLModel]:
        with store.transaction(write=False) as session:
            return list(session.exec(select(model)))

    return read


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_policy() -> Path:
    """The policy file the live server runs with (a test module may override this fixture)."""
    return ROOT / "policies" / "default.yaml"


@pytest.fixture
def live_server(runtime: Runtime, tmp_path: Path, live_policy: Path) -> Iterator[str]:
    """consentgate served by gunicorn (4 sync worker processes) on the test store."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    env = {**os.environ, "CONSENTGATE_DATABASE_URL": runtime.store.url,
           "CONSENTGATE_SECRET_KEY": runtime.secret_key,
           "CONSENTGATE_TWILIO_AUTH_TOKEN": "twilio-test-token",
           "CONSENTGATE_WEBHOOK_SECRET": "generic-webhook-secret",
           "CONSENTGATE_TELNYX_PUBLIC_KEY": TELNYX_PUBLIC_KEY,
           "CONSENTGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "CONSENTGATE_POLICY": str(live_policy),
           "CONSENTGATE_LOG_LEVEL": "ERROR"}
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "consentgate", "serve", "--port", str(port), "--workers", "4"],
                               env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            process.kill()
            raise RuntimeError("the server did not start: " + (tmp_path / "server.log").read_text()[-2000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print((tmp_path / "server.log").read_text(errors="replace")[-3000:])
