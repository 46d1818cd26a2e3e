"""The auditor reports through any history of consents (one by one and in batches), opt-outs,
checks, touches and erasures, rows landing at the same instant or a microsecond apart: each
report, asked with any filters, lists exactly the rows a plain model of that history says it
should (test records left out, erased people as erased), in id order; its CSV and JSON Lines hold
the same rows and cells as its JSON; and one instant spelled in another offset or form gives the
same answer. ``since`` and ``until`` both include the instant they name (the reports compare with
``>=`` and ``<=``): a consent by when it was recorded, a revocation by when it was received, a
decision by when it was made, an opt-out report's touches by when they were sent."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consentgate.reports.queries import CONSENT_COLUMNS, DECISION_COLUMNS, OPTOUT_COLUMNS, REVOCATION_COLUMNS

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONES = ["+13055550191", "+13055550192"]
EMAILS = ["ada@corp.com", "bea@other.org"]
QA = {"email": "qa@corp.com"}            # a synthetic person: in no report
NOBODY = {"email": "nobody@corp.com"}    # never written: checks about them are logged without a person
ADDRESSES = [{"phone": p} for p in PHONES] + [{"email": e} for e in EMAILS] + [QA]
CHANNELS = {"phone": ["sms", "voice"], "email": ["email"]}
PERSON_CHANNELS = ["postal", "linkedin"]   # reach the person, not an address: no contact point
PURPOSES = ["marketing", "informational", "transactional"]
BRANDS = [None, "acme", "-zenith"]
SOURCES = ["web_form", "crm, legacy", "=import", "kiosk"]
OPT_OUT_SOURCES = ["api", "manual", "sms_keyword", "email_link", "complaint"]
CAMPAIGNS = [None, "spring", "winback"]
SEGMENTS = [None, "stalled", "churned"]
# Asked besides the codes the history's decisions gave: a part of several codes, one in lower case.
NEAR_CODES = ["CONSENT", "no_consent", "REVOKED"]
# Offsets an instant is written in: one instant, many spellings.
OFFSETS = [timedelta(0), timedelta(hours=-5), timedelta(hours=5, minutes=30), timedelta(hours=-9, minutes=-30),
           timedelta(hours=14)]
# Clock steps between writes: none at all (rows at one instant), a microsecond, more.
TICKS = [timedelta(0), timedelta(0), timedelta(microseconds=1), timedelta(milliseconds=250), timedelta(seconds=1),
         timedelta(minutes=3)]

STYLES = st.sampled_from(["auto", "micro", "seven", "trimmed", "lower", "space"])

address = st.sampled_from(ADDRESSES)
offset = st.sampled_from(OFFSETS)
tick = st.sampled_from(TICKS)
consent_item = st.tuples(address, st.integers(0, 4), st.sampled_from(PURPOSES), st.sampled_from(BRANDS),
                         st.sampled_from(SOURCES), st.integers(0, 90), offset,
                         st.sampled_from(["express_written", "express", "implied_ebr"]))
check = st.tuples(st.just("check"), tick, st.one_of(address, st.just(NOBODY)), st.integers(0, 4),
                  st.sampled_from(PURPOSES), st.sampled_from(BRANDS), st.sampled_from(CAMPAIGNS))
steps = st.lists(st.one_of(
    st.tuples(st.just("consent"), tick, consent_item),
    st.tuples(st.just("batch"), tick, st.lists(consent_item, min_size=1, max_size=3)),
    # received_at: none (now), minutes back, or a minute ahead (a sender's clock: taken as now)
    st.tuples(st.just("revoke"), tick, address, st.sampled_from([["*"], ["sms"], ["email"], ["voice", "sms"]]),
              st.sampled_from(OPT_OUT_SOURCES), st.sampled_from([None, 0, 2, 30, -1]), offset),
    check,
    check,   # twice as likely: most decisions are denials, and the filters need both kinds
    st.tuples(st.just("touch"), tick, address, st.integers(0, 2), st.sampled_from(CAMPAIGNS),
              st.sampled_from(SEGMENTS), st.sampled_from([0, 1, 10])),
    st.tuples(st.just("erase"), tick, address),
), min_size=4, max_size=14)


def _channel(where: dict[str, str], choice: int) -> str:
    """One of the channels that can reach ``where``: its address's own, or one that reaches the person."""
    own = CHANNELS[next(iter(where))]
    return own[choice] if choice < len(own) else PERSON_CHANNELS[choice % 2]


def spell(instant: datetime, shift: timedelta, style: str = "auto") -> str:
    """``instant`` as RFC 3339 in the offset ``shift`` (``Z`` for UTC), in one of the forms it allows:
    as Python writes it, with all six fraction digits (or a seventh, zero), without trailing zeros,
    with a lower-case ``t`` and ``z``, with a space for the ``T``."""
    local = instant.astimezone(timezone(shift))
    text = local.isoformat(timespec="auto" if style == "auto" else "microseconds").replace("+00:00", "Z")
    day, rest = text[:10], text[11:]
    clock, zone = rest[:-1 if rest.endswith("Z") else -6], rest[-1 if rest.endswith("Z") else -6:]
    if style == "seven":
        clock += "0"
    elif style == "trimmed" and "." in clock:
        clock = clock.rstrip("0").rstrip(".")
    separator = {"lower": "t", "space": " "}.get(style, "T")
    return day + separator + clock + (zone.lower() if style == "lower" else zone)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Ledger:
    """What the history wrote, as the test saw it: rows of each report with the columns it filters on."""

    consents: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    instants: set[datetime] = field(default_factory=set)
    test_person: int | None = None
    erased: set[int] = field(default_factory=set)

    def real(self, identity_id: int | None) -> bool:
        return identity_id is None or identity_id != self.test_person


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    # Both ends are inclusive: the code compares with >= and <=, and a row at the named instant is in.
    return (since is None or since <= at) and (until is None or at <= until)


def _consent_body(where: dict[str, str], choice: int, purpose: str, brand: str | None, source: str, back: int,
                  shift: timedelta, consent_type: str, now: datetime, number: int) -> dict[str, Any]:
    return {**where, "channel": _channel(where, choice), "purpose": purpose,
            "consent_type": consent_type, "proof_uri": f"https://proof.example.com/{number}",
            "captured_at": spell(now - timedelta(minutes=back, microseconds=back), shift),
            "source": source, **({"brand": brand} if brand else {})}


def _record_consent(ledger: Ledger, body: dict[str, Any], answer: dict[str, Any], now: datetime) -> None:
    kind = next(k for k in ("email", "phone") if k in body)
    reaches_person = body["channel"] in PERSON_CHANNELS
    assert instant(answer["recorded_at"]) == now, answer
    ledger.consents.append({
        "consent_id": answer["consent_id"], "identity_id": answer["identity_id"], "recorded_at": now,
        "address_kind": None if reaches_person else kind, "address": None if reaches_person else body[kind],
        "channel": body["channel"], "purpose": body["purpose"], "consent_type": body["consent_type"],
        "brand": body.get("brand"), "source": body["source"], "captured_at": instant(body["captured_at"])})
    ledger.instants.add(instant(body["captured_at"]))


def _attributed_touch(ledger: Ledger, identity_id: int, channels: list[str], source: str,
                      received_at: datetime) -> dict[str, Any] | None:
    """README: an opt-out is blamed on the person's last touch on the channel it came in on (a STOP
    on the last text, an unsubscribe link on the last email), else on any channel it names."""
    came_by = {"sms_keyword": "sms", "email_link": "email"}.get(source)
    candidates = [t for t in ledger.touches if t["identity_id"] == identity_id and t["at"] <= received_at
                  and (t["channel"] == came_by if came_by else "*" in channels or t["channel"] in channels)]
    return max(candidates, key=lambda t: (t["at"], t["touch_id"]), default=None)


def run_history(client, clock, keys, sequence) -> Ledger:  # type: ignore[no-untyped-def]
    writer, sender = keys["writer"], keys["sender"]
    ledger = Ledger()
    # Everyone is known from the start (a check about them is judged on their consents, not refused
    # as unknown); the synthetic person is marked so.
    for where in ADDRESSES:
        made = client.post("/v1/identities", json={**where, "test_record": where == QA}, headers=writer)
        assert made.status_code == 201, made.get_json()
        if where == QA:
            ledger.test_person = made.get_json()["identity_id"]
    now = NOON_ET
    for number, (kind, step_tick, *step) in enumerate(sequence):
        now += step_tick
        clock.set(now)
        ledger.instants.add(now)
        if kind == "consent":
            body = _consent_body(*step[0], now, number)
            answer = client.post("/v1/consents", json=body, headers=writer)
            assert answer.status_code == 201, (body, answer.get_json())
            _record_consent(ledger, body, answer.get_json(), now)
        elif kind == "batch":
            bodies = [_consent_body(*item, now, number) for item in step[0]]
            answer = client.post("/v1/consents/batch", json={"items": bodies}, headers=writer)
            assert answer.status_code == 200, answer.get_json()
            for body, result in zip(bodies, answer.get_json()["results"], strict=True):
                assert result["status"] == 201, (body, result)
                _record_consent(ledger, body, result, now)
        elif kind == "revoke":
            where, channels, source, back, shift = step
            body = {**where, "channels": channels, "source": source}
            if back is not None:
                body["received_at"] = spell(now - timedelta(minutes=back), shift)
            answer = client.post("/v1/revocations", json=body, headers=writer)
            assert answer.status_code == 201, (body, answer.get_json())
            made = answer.get_json()
            # A received_at a little ahead of the gate's clock is taken as now.
            received_at = min(now - timedelta(minutes=back), now) if back is not None else now
            identity_id = made["identity_id"]
            touch = _attributed_touch(ledger, identity_id, channels, source, received_at)
            ledger.revocations.append({"revocation_id": made["revocation_id"], "identity_id": identity_id,
                                       "received_at": received_at, "source": source, "channels": sorted(channels),
                                       "address": next(iter(where.values())), "touch": touch})
            ledger.instants.add(received_at)
        elif kind == "check":
            where, choice, purpose, brand, campaign = step
            body = {**where, "channel": _channel(where, choice), "purpose": purpose, "brand": brand,
                    "campaign": campaign}
            answer = client.post("/v1/eligibility", json=body, headers=sender)
            assert answer.status_code == 200, (body, answer.get_json())
            made = answer.get_json()
            ledger.decisions.append({"decision_id": made["decision_id"], "decided_at": now,
                                     "identity_id": made["identity_id"], "allowed": made["allowed"],
                                     "codes": sorted({r["code"] for r in made["reasons"]}), "channel": body["channel"],
                                     "purpose": purpose, "brand": brand, "campaign": campaign})
        elif kind == "erase":
            found = client.get("/v1/identities", query_string=step[0], headers=keys["auditor"])
            if found.status_code == 200:
                person = found.get_json()["identity_id"]
                gone = client.delete(f"/v1/identities/{person}", headers=keys["admin"])
                assert gone.status_code == 200, gone.get_json()
                ledger.erased.add(person)
        else:
            where, choice, campaign, segment, back = step
            at = now - timedelta(minutes=back)
            body = {**where, "channel": _channel(where, choice), "purpose": "marketing", "campaign": campaign,
                    "segment": segment, "sent_at": spell(at, OFFSETS[back % len(OFFSETS)])}
            answer = client.post("/v1/touches", json=body, headers=sender)
            assert answer.status_code == 201, (body, answer.get_json())
            identity = client.get("/v1/identities", query_string=where, headers=keys["auditor"]).get_json()
            ledger.touches.append({"touch_id": answer.get_json()["touch_id"], "identity_id": identity["identity_id"],
                                   "channel": body["channel"], "campaign": campaign, "segment": segment, "at": at})
            ledger.instants.add(at)
    return ledger


# ---- what each report should say, by the model ----

def expected_consents(ledger: Ledger, since: datetime | None, until: datetime | None,
                      filters: dict[str, str]) -> list[dict[str, Any]]:
    return [c for c in ledger.consents if ledger.real(c["identity_id"]) and _within(c["recorded_at"], since, until)
            and all(c[name] == value for name, value in filters.items())]


def expected_revocations(ledger: Ledger, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    return [r for r in ledger.revocations if ledger.real(r["identity_id"]) and _within(r["received_at"], since, until)]


def expected_decisions(ledger: Ledger, since: datetime | None, until: datetime | None, allowed: bool | None,
                       code: str | None) -> list[dict[str, Any]]:
    return [d for d in ledger.decisions if ledger.real(d["identity_id"]) and _within(d["decided_at"], since, until)
            and (allowed is None or d["allowed"] is allowed) and (code is None or code in d["codes"])]


def expected_optouts(ledger: Ledger, group_by: str, since: datetime | None,
                     until: datetime | None) -> list[dict[str, Any]]:
    touches = Counter(t[group_by] for t in ledger.touches
                      if ledger.real(t["identity_id"]) and _within(t["at"], since, until))
    optouts = Counter(r["touch"][group_by] for r in ledger.revocations
                      if r["touch"] is not None and ledger.real(r["identity_id"])
                      and _within(r["received_at"], since, until))
    rows = []
    for key in sorted(set(touches) | set(optouts), key=lambda k: (k is None, str(k))):
        sent = touches.get(key, 0)
        rows.append({"group": key, "group_by": group_by, "touches": sent, "optouts": optouts.get(key, 0),
                     "complaints": 0, "optout_rate": round(optouts.get(key, 0) / sent, 6) if sent else None,
                     "complaint_rate": 0.0 if sent else None})
    return rows


# ---- asking the reports ----

def ask(client, keys, name: str, params: dict[str, Any]):  # type: ignore[no-untyped-def]
    answer = client.get(f"/v1/reports/{name}", query_string={k: v for k, v in params.items() if v is not None},
                        headers=keys["auditor"])
    assert answer.status_code == 200, (name, params, answer.get_data(as_text=True))
    return answer.get_data(as_text=True)


def csv_cell(value: Any) -> str:
    """A JSON value as the CSV report writes it (README: RFC 4180, lists joined by ``|``, a cell
    that a spreadsheet would run as a formula prefixed with ``'``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        text = "|".join(csv_cell(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = value
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def assert_csv_matches_json(text: str, rows: list[dict[str, Any]], columns: list[str], context: Any) -> None:
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == columns, context
    assert [dict(zip(columns, line, strict=True)) for line in parsed[1:]] == [
        {name: csv_cell(row[name]) for name in columns} for row in rows], context


def _bound(data: st.DataObject, ledger: Ledger) -> datetime | None:
    """A window end: none, an instant the history used (so rows sit exactly on it), a microsecond
    either side of one, or halfway between two."""
    used = sorted(ledger.instants)
    choice = data.draw(st.sampled_from(["none", "used", "used", "before", "after", "between"]))
    if choice == "none":
        return None
    at = data.draw(st.sampled_from(used))
    if choice == "before":
        return at - timedelta(microseconds=1)
    if choice == "after":
        return at + timedelta(microseconds=1)
    if choice == "between":
        later = [u for u in used if u > at]
        return at + (later[0] - at) / 2 if later else at + timedelta(hours=1)
    return at


def _spellings(data: st.DataObject, at: datetime | None) -> tuple[str | None, str | None]:
    if at is None:
        return None, None
    first, second = data.draw(st.lists(st.sampled_from(OFFSETS), min_size=2, max_size=2, unique=True))
    return spell(at, first, data.draw(STYLES)), spell(at, second, data.draw(STYLES))


def _compare_consents(body: list[dict[str, Any]], wanted: list[dict[str, Any]], erased_people: set[int],
                      context: Any) -> None:
    assert [r["consent_id"] for r in body] == [c["consent_id"] for c in wanted], context
    for row, model in zip(body, wanted, strict=True):
        erased = model["identity_id"] in erased_people
        # README: erased people appear as erased, never with their old values.
        for name in ("identity_id", "address_kind", "channel", "purpose", "consent_type", "brand", "source"):
            assert row[name] == model[name], (context, name, row, model)
        assert row["address"] == (None if erased else model["address"]), (context, row, model)
        assert row["erased"] is erased, (context, row)
        for name in ("captured_at", "recorded_at"):
            assert row[name].endswith("Z") and instant(row[name]) == model[name], (context, name, row, model)


def _compare_revocations(body: list[dict[str, Any]], wanted: list[dict[str, Any]], erased_people: set[int],
                         subscribed: bool, context: Any) -> None:
    assert [r["revocation_id"] for r in body] == [r["revocation_id"] for r in wanted], context
    for row, model in zip(body, wanted, strict=True):
        erased = model["identity_id"] in erased_people
        assert (row["identity_id"], row["address"], row["erased"], row["source"], row["channels"]) == (
            model["identity_id"], None if erased else model["address"], erased, model["source"],
            model["channels"]), (context, row, model)
        assert row["received_at"].endswith("Z") and instant(row["received_at"]) == model["received_at"], (context, row)
        # Nobody downstream: propagated as it took effect. A sender listening: pending, days from the deadline.
        assert row["sla_status"] == ("pending" if subscribed else "met"), (context, row)


def _compare_decisions(body: list[dict[str, Any]], wanted: list[dict[str, Any]], context: Any) -> None:
    assert [r["decision_id"] for r in body] == [d["decision_id"] for d in wanted], context
    for row, model in zip(body, wanted, strict=True):
        for name in ("identity_id", "allowed", "codes", "channel", "purpose", "brand", "campaign"):
            assert row[name] == model[name], (context, name, row, model)
        assert row["decided_at"].endswith("Z") and instant(row["decided_at"]) == model["decided_at"], (context, row)


def check_reports(client, keys, data: st.DataObject, ledger: Ledger, subscribed: bool) -> None:  # type: ignore[no-untyped-def]
    for _ in range(data.draw(st.integers(2, 5), label="queries")):
        name = data.draw(st.sampled_from(["consents", "consents", "decisions", "decisions", "revocations", "optouts"]))
        since, until = _bound(data, ledger), _bound(data, ledger)
        if since is not None and until is not None and since > until:
            since, until = until, since
        (since_a, since_b), (until_a, until_b) = _spellings(data, since), _spellings(data, until)
        if name == "consents":
            filters = {name: data.draw(st.sampled_from([None, *values]))
                       for name, values in (("channel", ["sms", "email", "postal"]), ("purpose", PURPOSES),
                                            ("brand", BRANDS[1:]), ("source", SOURCES))}
            filters = {k: v for k, v in filters.items() if v is not None and data.draw(st.integers(0, 2)) == 0}
            params, columns = filters, CONSENT_COLUMNS
            wanted = expected_consents(ledger, since, until, filters)
        elif name == "decisions":
            allowed = data.draw(st.sampled_from([None, True, False]))
            seen = sorted({c for d in ledger.decisions for c in d["codes"]})
            code = data.draw(st.sampled_from([None, None, *seen, *NEAR_CODES]))
            params = {"allowed": None if allowed is None else str(allowed).lower(), "code": code}
            columns, wanted = DECISION_COLUMNS, expected_decisions(ledger, since, until, allowed, code)
        elif name == "revocations":
            params, columns, wanted = {}, REVOCATION_COLUMNS, expected_revocations(ledger, since, until)
        else:
            group_by = data.draw(st.sampled_from(["campaign", "segment", "channel"]))
            params, columns = {"group_by": group_by}, OPTOUT_COLUMNS
            wanted = expected_optouts(ledger, group_by, since, until)
        context = (name, params, since_a, until_a)
        event(f"{name}: {'no rows' if not wanted else 'rows'}")
        if {since, until} & ledger.instants:
            event("a window end on an instant the history used")
        text = ask(client, keys, name, {**params, "since": since_a, "until": until_a})
        body = json.loads(text)
        if name == "consents":
            _compare_consents(body, wanted, ledger.erased, context)
        elif name == "decisions":
            _compare_decisions(body, wanted, context)
        elif name == "revocations":
            _compare_revocations(body, wanted, ledger.erased, subscribed, context)
        else:
            assert body == wanted, context
        # The same instants in other offsets (and digits): the same answer, to the byte.
        assert ask(client, keys, name, {**params, "since": since_b, "until": until_b}) == text, (context, since_b,
                                                                                                   until_b)
        as_csv = ask(client, keys, name, {**params, "since": since_b, "until": until_b, "format": "csv"})
        # A saved CSV says all a JSON row says: every field has its column.
        assert all(list(row) == columns for row in body), (context, columns)
        assert_csv_matches_json(as_csv, body, columns, context)
        as_lines = ask(client, keys, name, {**params, "since": since_a, "until": until_b, "format": "jsonl"})
        assert [json.loads(line) for line in as_lines.splitlines()] == body, context


@given(sequence=steps, subscribed=st.booleans(), data=st.data())
@settings(max_examples=20, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_reports_list_what_the_ledger_holds(client, clock, start_over, sequence, subscribed, data) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    if subscribed:
        made = client.post("/v1/subscriptions", json={"name": "crm", "url": "https://crm.example.com/hook"},
                           headers=keys["admin"])
        assert made.status_code == 201, made.get_json()
    ledger = run_history(client, clock, keys, sequence)
    clock.set(max(ledger.instants) + timedelta(minutes=1))
    check_reports(client, keys, data, ledger, subscribed)
