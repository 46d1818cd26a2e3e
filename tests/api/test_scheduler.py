"""The scheduler: two instances at once deliver each revocation exactly once to a real receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text

from consentgate.core.signatures import verify_outbound
from consentgate.jobs import run_once
from consentgate.services.propagation import http_poster
from consentgate.services.revocations import REPERMISSION_CLOSED
from consentgate.store.models import OutboxMessage, Touch

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A downstream sender on 127.0.0.1 that checks signatures and counts deliveries."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.bad_signatures = 0
        self.secret = ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify_outbound(receiver.secret, self.headers["X-Consentgate-Signature"], body):
                    receiver.bad_signatures += 1
                receiver.deliveries[self.headers["X-Consentgate-Delivery"]] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_two_scheduler_processes_deliver_once(client, keys, runtime, receiver, rows, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sub = client.post("/v1/subscriptions", json={"name": "crm", "url": receiver.url}, headers=keys["admin"]).get_json()
    receiver.secret = sub["secret"]
    for i in range(12):
        client.post("/v1/revocations", json={"email": f"p{i}@corp.com", "channels": ["email"], "source": "api"},
                    headers=keys["writer"])
    env = {**os.environ, "CONSENTGATE_DATABASE_URL": runtime.store.url, "CONSENTGATE_SECRET_KEY": runtime.secret_key,
           "CONSENTGATE_POLICY": str(ROOT / "policies" / "default.yaml"), "CONSENTGATE_LOG_LEVEL": "WARNING"}
    processes = [subprocess.Popen([sys.executable, "-m", "consentgate", "scheduler", "--once", "propagation"],
                                  env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].decode() for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert len(receiver.deliveries) == 12 and set(receiver.deliveries.values()) == {1}
    assert receiver.bad_signatures == 0
    assert {m.status for m in rows(OutboxMessage)} == {"acknowledged"}


def test_real_http_poster_and_failures(client, keys, runtime, clock, rows) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on this port: a network failure is a failed attempt, retried later.
    client.post("/v1/subscriptions", json={"name": "down", "url": "http://127.0.0.1:9/hook"}, headers=keys["admin"])
    client.post("/v1/revocations", json={"email": "x@corp.com", "channels": ["email"], "source": "api"},
                headers=keys["writer"])
    from consentgate.services.propagation import deliver_due

    run = deliver_due(runtime.store, clock.now, http_poster(timeout=2))
    assert run.failed == 1
    [message] = rows(OutboxMessage)
    assert message.status == "pending" and message.attempts == 1 and "Error" in (message.last_error or "")


def test_expired_reservations_are_released_by_the_job(client, keys, runtime, clock, rows) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/identities", json={"email": "r@corp.com"}, headers=keys["writer"])
    answer = client.post("/v1/eligibility", json={"email": "r@corp.com", "channel": "email", "purpose": "marketing",
                                                  "reserve": True}, headers=keys["sender"]).get_json()
    assert answer["reservation_id"]
    clock.set(clock.now + runtime.policy.policy.reservations.ttl + timedelta(seconds=1))
    run_once(runtime, "reservation_expiry")
    assert [t.state for t in rows(Touch)] == ["expired"]
    late = client.post("/v1/touches", json={"reservation_id": answer["reservation_id"]}, headers=keys["sender"])
    assert late.status_code == 409


def test_repermission_non_responders_are_suppressed_when_the_window_closes(client, keys, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now
    for email in ("silent@corp.com", "answered@corp.com"):
        client.post("/v1/consents", json={"email": email, "channel": "email", "purpose": "repermission",
                                          "consent_type": "uncertain", "source": "legacy_crm",
                                          "captured_at": (start - timedelta(days=400)).isoformat()},
                    headers=keys["writer"])
        client.post("/v1/touches", json={"email": email, "channel": "email", "purpose": "repermission",
                                         "sent_at": start.isoformat()}, headers=keys["sender"])
    clock.set(start + timedelta(days=2))
    client.post("/v1/consents", json={"email": "answered@corp.com", "channel": "email", "purpose": "marketing",
                                      "consent_type": "double_opt_in", "source": "confirm_link",
                                      "captured_at": clock.now.isoformat()}, headers=keys["writer"])
    clock.set(start + runtime.policy.policy.repermission.window + timedelta(hours=1))
    run_once(runtime, "repermission_window")
    run_once(runtime, "repermission_window")     # idempotent

    def allowed(email: str, purpose: str) -> bool:
        return client.post("/v1/eligibility", json={"email": email, "channel": "email", "purpose": purpose},
                           headers=keys["sender"]).get_json()["allowed"]

    assert not allowed("silent@corp.com", "marketing")
    assert allowed("silent@corp.com", "transactional")
    assert allowed("answered@corp.com", "marketing")
    silent = client.get("/v1/identities?email=silent@corp.com", headers=keys["auditor"]).get_json()
    assert len(silent["revocations"]) == 1

    # The reason the job wrote is the gate's, not the person's: an erasure keeps it, and the
    # request stays closed.
    assert client.delete(f"/v1/identities/{silent['identity_id']}", headers=keys["admin"]).status_code == 200
    run_once(runtime, "repermission_window")
    with runtime.store.engine.connect() as conn:
        reasons = [r for (r,) in conn.execute(text("SELECT reason FROM revocation WHERE erased_at IS NOT NULL"))]
    assert reasons == [REPERMISSION_CLOSED]


def test_a_re_permission_request_sent_to_someone_already_consenting_takes_nothing_away(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock) -> None:
    start = clock.now
    email = "already@corp.com"
    for purpose, kind in (("repermission", "uncertain"), ("marketing", "double_opt_in")):
        client.post("/v1/consents", json={"email": email, "channel": "email", "purpose": purpose,
                                          "consent_type": kind, "source": "crm",
                                          "captured_at": (start - timedelta(days=5)).isoformat()},
                    headers=keys["writer"])
    client.post("/v1/touches", json={"email": email, "channel": "email", "purpose": "repermission",
                                     "sent_at": start.isoformat()}, headers=keys["sender"])
    clock.set(start + runtime.policy.policy.repermission.window + timedelta(hours=1))
    run_once(runtime, "repermission_window")
    answer = client.post("/v1/eligibility", json={"email": email, "channel": "email", "purpose": "marketing"},
                         headers=keys["sender"]).get_json()
    assert answer["allowed"] is True, answer["reasons"]


def test_repermission_answers_count_from_anyone_merged_in_and_only_on_the_channel(  # type: ignore[no-untyped-def]
        client, keys, runtime, clock) -> None:
    """Who is closed: no answer, an answer on another channel, an "uncertain" answer. Who is not:
    an answer given under another identity later merged into the person, or an erased person."""
    from consentgate.services.repermission import close_repermission_windows

    start = clock.now
    people = ("quiet", "other-channel", "unsure", "merged", "erased")
    for name in people:
        email = f"{name}@corp.com"
        client.post("/v1/consents", json={"email": email, "channel": "email", "purpose": "repermission",
                                          "consent_type": "uncertain", "source": "legacy_crm",
                                          "captured_at": (start - timedelta(days=400)).isoformat()},
                    headers=keys["writer"])
        sent = client.post("/v1/touches", json={"email": email, "channel": "email", "purpose": "repermission",
                                                "sent_at": start.isoformat()}, headers=keys["sender"])
        assert sent.status_code == 201
    clock.set(start + timedelta(days=1))

    def answer(body: dict) -> dict:  # type: ignore[type-arg]
        made = client.post("/v1/consents", json={"purpose": "marketing", "source": "confirm_link",
                                                 "consent_type": "double_opt_in", "channel": "email",
                                                 "captured_at": clock.now.isoformat(), **body}, headers=keys["writer"])
        assert made.status_code == 201, made.get_json()
        return made.get_json()  # type: ignore[no-any-return]

    answer({"phone": "+13055550111", "channel": "sms", "consent_type": "express_written",
            "proof_uri": "https://proof.example.com/x"})
    client.post("/v1/identities", json={"email": "other-channel@corp.com", "phone": "+13055550111"},
                headers=keys["writer"])
    answer({"email": "unsure@corp.com", "consent_type": "uncertain"})
    elsewhere = answer({"email": "merged.alias@corp.com"})["identity_id"]
    merged = client.get("/v1/identities?email=merged@corp.com", headers=keys["auditor"]).get_json()["identity_id"]
    assert client.post(f"/v1/identities/{merged}/merge", json={"other_identity_id": elsewhere},
                       headers=keys["writer"]).status_code == 200
    erased = client.get("/v1/identities?email=erased@corp.com", headers=keys["auditor"]).get_json()["identity_id"]
    assert client.delete(f"/v1/identities/{erased}", headers=keys["admin"]).status_code == 200
    clock.set(start + runtime.policy.policy.repermission.window + timedelta(hours=1))
    assert close_repermission_windows(runtime.store, runtime.policy, clock.now) == 3
    assert close_repermission_windows(runtime.store, runtime.policy, clock.now) == 0

    def revoked(name: str) -> bool:
        view = client.get(f"/v1/identities?email={name}@corp.com", headers=keys["auditor"]).get_json()
        return bool(view["revocations"])

    assert [name for name in people[:4] if revoked(name)] == ["quiet", "other-channel", "unsure"]


def test_a_scheduled_turn_runs_a_job_once_across_instances(runtime, clock) -> None:  # type: ignore[no-untyped-def]
    assert run_once(runtime, "reservation_expiry", "instance-a", scheduled=True) is True
    assert run_once(runtime, "reservation_expiry", "instance-b", scheduled=True) is False
    clock.set(clock.now + timedelta(minutes=1))
    assert run_once(runtime, "reservation_expiry", "instance-b", scheduled=True) is True
