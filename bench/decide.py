"""The decision alone, in process: microseconds per ``decide()`` for a typical person.

    .venv/bin/python bench/decide.py [--checks 20000] [--rounds 3]

A person in Los Angeles with written consent to texts and a reactivation touch two days ago, asked
about a reactivation text at instants a few microseconds apart (every real check has an instant of
its own, so nothing is cached per instant): once inside calling hours (allowed) and once outside
(denied, with the time the window opens). Prints the median of the rounds for each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consentgate.core.eligibility import decide
from consentgate.core.facts import (
    ConsentFact,
    ContactPointFact,
    EligibilityRequest,
    IdentityFact,
    Subject,
    TouchFact,
)
from consentgate.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
HOURS = {"inside calling hours (noon in Los Angeles)": datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
         "outside calling hours (9 pm in Los Angeles)": datetime(2026, 11, 26, 5, 0, tzinfo=UTC)}


def subject(now: datetime) -> Subject:
    person = IdentityFact(id=1, timezone="America/Los_Angeles")
    phone = ContactPointFact(id=1, identity_id=1, kind="phone", value="+12125550100")
    consent = ConsentFact(1, 1, "sms", "marketing", "express_written", now - timedelta(days=30), "web_form", now,
                          "https://proof.example.com/1")
    touch = TouchFact(1, 1, "sms", "marketing", now - timedelta(days=2), program="reactivation")
    return Subject(person, phone, (phone,), consents=(consent,), touches=(touch,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    policy = load_policy(ROOT / "policies" / "default.yaml")
    for label, start in HOURS.items():
        person = subject(start)
        took = []
        for round_ in range(args.rounds):
            instants = [start + timedelta(microseconds=137 * (round_ * args.checks + n)) for n in range(args.checks)]
            began = time.perf_counter()
            for at in instants:
                decide(person, EligibilityRequest("sms", "marketing", at, program="reactivation"), policy)
            took.append((time.perf_counter() - began) / args.checks * 1e6)
        allowed = decide(person, EligibilityRequest("sms", "marketing", start, program="reactivation"), policy).allowed
        print(f"{label:44}: {statistics.median(took):5.1f} us per decision ({'allowed' if allowed else 'denied'}; "
              f"rounds {', '.join(f'{t:.1f}' for t in took)})")


if __name__ == "__main__":
    main()
