"""A policy file with any value in any place: refused at load with a policy error naming the
place, or loaded and then every decision under it is made. Never a traceback at start-up, and
never a failure at request time that the load let through."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.core.durations import parse_duration
from consentgate.core.eligibility import decide
from consentgate.core.facts import ContactPointFact, EligibilityRequest, IdentityFact, Subject, TouchFact
from consentgate.core.policy import parse_policy
from consentgate.errors import PolicyError

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text())
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def _places(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out.append((*prefix, key))
        out += _places(child, (*prefix, key))
    return out


PLACES = _places(DEFAULT)
JUNK = st.sampled_from([None, 0, -1, 1.5, "", "x", "25:00", "-1d", [], {}, [1], {"a": 1}, True, "*", "none",
                        "10000000d", "0d", 1e30, float("inf"), 10**30, 2**31, "sms", ["*"], "00:00", "24:00",
                        "Mars/Base", "FL", "express_written"])
PHONE = ContactPointFact(id=10, identity_id=1, kind="phone", value="+13055550100")
EMAIL = ContactPointFact(id=11, identity_id=1, kind="email", value="pat@corp.com")
TOUCHES = tuple(TouchFact(id=i, identity_id=1, channel="sms", purpose="marketing", at=AT - timedelta(hours=7 * i),
                          contact_point_id=10, program="reactivation", segment="stalled") for i in range(6))
SUBJECTS = [Subject(identity=IdentityFact(id=1, account_domain="corp.com", timezone=zone, state=state), target=target,
                    contact_points=(PHONE, EMAIL), touches=TOUCHES)
            for zone, state, target in ((None, "FL", PHONE), ("America/New_York", None, EMAIL), (None, None, None))]


@given(changes=st.lists(st.tuples(st.sampled_from(PLACES), st.one_of(JUNK, st.just("delete"))), min_size=1,
                        max_size=3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_value_anywhere_is_refused_at_load_or_decided_under(changes: list[tuple[tuple[Any, ...], Any]]) -> None:
    document = copy.deepcopy(DEFAULT)
    for place, value in changes:
        parent = document
        try:
            for key in place[:-1]:
                parent = parent[key]
            if value == "delete" and isinstance(parent, dict):
                del parent[place[-1]]
            elif value != "delete":
                parent[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue   # an earlier change moved this place
    try:
        loaded = parse_policy(yaml.safe_dump(document))
    except PolicyError:
        return
    for channel in loaded.channels:
        for purpose in loaded.policy.purposes:
            for subject in SUBJECTS:
                for segment in (None, "stalled", "churned"):
                    decide(subject, EligibilityRequest(channel=channel, purpose=purpose, at=AT, program="reactivation",
                                                       segment=segment), loaded)


@pytest.mark.parametrize("value", [[1], {"d": 7}, None, 1e30, float("inf"), "7 days", True])
def test_a_duration_that_is_not_one_is_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(("place", "value", "named"), [
    (("fatigue_caps", 1, "window"), "10000000d", "window"),     # decided, it overflowed the calendar
    (("reservations", "ttl"), [15], "ttl"),
    (("quiet_hours", "federal", "start"), 10**30, "start"),     # YAML's sexagesimal minutes, out of a day
    (("revocation", "deadlines", "sms", "business_days"), 10**7, "business_days"),   # every opt-out failed
    (("revocation", "default_business_days"), 10**7, "default_business_days"),
    (("retention", "tombstone_years"), 10**5, "tombstone_years"),
    (("email_unsubscribe", "token_max_age_days"), 10**9, "token_max_age_days"),
])
def test_refused_at_load_naming_the_place(place: tuple[Any, ...], value: Any, named: str) -> None:
    document = copy.deepcopy(DEFAULT)
    parent = document
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] = value
    with pytest.raises(PolicyError, match=named):
        parse_policy(yaml.safe_dump(document))
