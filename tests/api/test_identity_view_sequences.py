"""A person's view and timeline through any history of people written with their addresses in
any spelling, consents, opt-outs (the person's or their whole company's), suppressions, touches,
checks and reservations, merges (by shared addresses and by hand) and erasures, many of them at
one instant or a microsecond apart.

The view is one document however the person is named: by id, by an id merged into them, by any
spelling of any of their addresses. Its current consent per (address, channel, purpose, brand)
is the person's latest statement (latest ``captured_at``, then latest ``recorded_at``, then the
later event: ``core.consent``), expired or not, and says which; its opt-outs are every opt-out
of everyone merged into the person and every one their company received; its suppressions every
one of theirs. A merge therefore never drops an opt-out and never moves a consent to another
address. The timeline holds every event of the person and of everyone merged into them exactly
once, oldest first (by instant, not by the text of it), and read a page at a time (``limit``,
then ``after`` = the previous page's ``next``) it is the same list, whatever the page size."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from consentgate.core.policy import label_key

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
EMAILS = ["ann@corp.com", "bo@corp.com", "cy@gmail.com", "di@other.org"]
PHONES = ["+13055550171", "+13055550172", "+13055550173"]
ADDRESSES = [("email", e) for e in EMAILS] + [("phone", p) for p in PHONES]
FREE_MAIL = {"gmail.com"}


def spellings(kind: str, value: str) -> list[str]:
    """Common ways to write one address, all normalising to ``value``."""
    if kind == "email":
        local, domain = value.split("@")
        return [value, f"{local.capitalize()}@{domain.capitalize()}", value.upper()]
    area, exchange, line = value[2:5], value[5:8], value[8:]
    return [value, f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
            f"+1 {area} {exchange} {line}", f"1 ({area}) {exchange}-{line}", f"{area}{exchange}{line}"]


CHANNELS = {"email": ["email", "postal", "linkedin"], "phone": ["sms", "voice", "postal"]}
PERSON_CHANNELS = {"postal", "linkedin"}
PURPOSES = ["marketing", "informational", "transactional"]
BRANDS = [None, "Acme", "acme ", "ACME", "Zenith"]
SUPPRESSIONS = {"email": ["bounce", "complaint", "legal_hold", "litigator"],
                "phone": ["dnc_national", "reassigned", "legal_hold", "litigator"]}
_STATUS_FOR_KIND = {"bounce": "bounced", "complaint": "complained", "reassigned": "reassigned"}
# Instants are written in any offset: one instant, many spellings.
OFFSETS = [timedelta(0), timedelta(hours=-5), timedelta(hours=5, minutes=30)]
# Clock steps between writes: none (events at one instant), a microsecond, half a second (…:00Z
# and …:00.5Z, which do not sort as text), more.
TICKS = [timedelta(0), timedelta(0), timedelta(0), timedelta(microseconds=1), timedelta(milliseconds=500),
         timedelta(seconds=1), timedelta(minutes=2)]

address = st.tuples(st.integers(0, len(ADDRESSES) - 1), st.integers(0, 6))
tick = st.sampled_from(TICKS)
offset = st.sampled_from(OFFSETS)
# captured_at: an instant several events share, or now, or a microsecond before; expires_at: none,
# or from a microsecond to days after now (some have ended when the view is read).
consent_item = st.tuples(address, st.integers(0, 2), st.sampled_from(PURPOSES), st.sampled_from(BRANDS),
                         st.sampled_from(["express_written", "express", "implied_ebr"]),
                         st.sampled_from(["noon", "day before", "now", "just before"]),
                         st.sampled_from([None, None, timedelta(microseconds=1), timedelta(seconds=1),
                                          timedelta(minutes=3), timedelta(days=30)]), offset)
# Few choices: statements about one (address, channel, purpose, brand), often at one instant.
written_consent = st.tuples(address, st.integers(0, 2), st.just("marketing"), st.sampled_from(BRANDS[:2]),
                            st.just("express_written"), st.sampled_from(["noon", "now"]), st.none(), offset)
person = st.tuples(st.just("person"), tick, st.sampled_from([None, *range(len(EMAILS))]),
                  st.sampled_from([None, *range(len(PHONES))]), st.integers(0, 6))
# Often from a work email: an opt-out for the whole company reaches the colleagues' views.
revoke = st.tuples(st.just("revoke"), tick, st.one_of(address, st.tuples(st.sampled_from([0, 1]), st.integers(0, 2))),
                   st.sampled_from([["*"], ["sms"], ["email"], ["voice", "sms"], ["postal"], ["sms", "sms"]]),
                   st.sampled_from([None, ["marketing"], ["informational", "marketing"]]),
                   st.sampled_from([None, ["Acme"], ["acme", "Zenith"]]), st.booleans(),
                   st.sampled_from([None, "noon", "just before", "half a second before"]), offset)
merge = st.tuples(st.just("merge"), tick, st.integers(0, 9), st.integers(0, 9))
steps = st.lists(st.one_of(
    person, person,   # twice as likely, and merges too: a person's keys meeting is what merges them
    st.tuples(st.just("consent"), tick, consent_item),
    st.tuples(st.just("consent"), tick, written_consent),
    st.tuples(st.just("batch"), tick, st.lists(st.one_of(consent_item, written_consent), min_size=1, max_size=3)),
    revoke, revoke,
    st.tuples(st.just("suppress"), tick, address, st.integers(0, 3), st.booleans()),
    st.tuples(st.just("touch"), tick, address, st.integers(0, 2), st.sampled_from([None, "noon", "just before"])),
    st.tuples(st.just("check"), tick, address, st.integers(0, 2), st.sampled_from(PURPOSES), st.booleans()),
    merge, merge,
    st.tuples(st.just("erase"), tick, st.integers(0, len(ADDRESSES) - 1)),
), min_size=4, max_size=18)


def spell_instant(at: datetime, shift: timedelta) -> str:
    return at.astimezone(timezone(shift)).isoformat()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(at: datetime | None) -> str | None:
    """An instant as the API writes it (RFC 3339, UTC, ``Z``)."""
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def domain_of(kind: str, value: str) -> str | None:
    """The company a new address gives a person: a work email's domain."""
    if kind != "email":
        return None
    domain = value.split("@")[1]
    return None if domain in FREE_MAIL else domain


@dataclass
class Person:
    id: int
    created_at: datetime
    domain: str | None
    merged_into: int | None = None
    erased: bool = False


@dataclass
class Model:
    """What the history wrote, as the test saw it."""

    people: dict[int, Person] = field(default_factory=dict)
    owner: dict[tuple[str, str], int] = field(default_factory=dict)      # a live address → who got it
    addresses: list[tuple[tuple[str, str], int]] = field(default_factory=list)   # in the order they came
    status: dict[tuple[tuple[str, str], int], str] = field(default_factory=dict)   # by address and who got it
    consents: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    touches: list[tuple[int, int, datetime]] = field(default_factory=list)       # id, person, at
    decisions: list[tuple[int, int, datetime]] = field(default_factory=list)
    merges: list[tuple[int, int, datetime]] = field(default_factory=list)        # survivor, absorbed, at
    erasures: dict[int, datetime] = field(default_factory=dict)

    def survivor(self, identity_id: int) -> int:
        while (into := self.people[identity_id].merged_into) is not None:
            identity_id = into
        return identity_id

    def group(self, survivor: int) -> set[int]:
        return {i for i in self.people if self.survivor(i) == survivor}

    def survivors(self) -> list[int]:
        return sorted(i for i, p in self.people.items() if p.merged_into is None)

    def who(self, where: tuple[str, str]) -> int | None:
        return self.survivor(self.owner[where]) if where in self.owner else None

    def create(self, identity_id: int, where: tuple[str, str], now: datetime) -> None:
        assert identity_id not in self.people, (identity_id, where)
        self.people[identity_id] = Person(identity_id, now, domain_of(*where))
        self.attach(where, identity_id)

    def attach(self, where: tuple[str, str], identity_id: int) -> None:
        person = self.people[identity_id]
        if person.domain is None:
            person.domain = domain_of(*where)
        self.owner[where] = identity_id
        self.addresses.append((where, identity_id))
        self.status[where, identity_id] = "active"

    def merge(self, ids: list[int], now: datetime) -> int:
        """Everyone named folds into the oldest (merge_all); returns the survivor."""
        distinct = sorted(set(ids), key=lambda i: (self.people[i].created_at, i))
        keep = self.people[distinct[0]]
        for other in distinct[1:]:
            if keep.domain is None:
                keep.domain = self.people[other].domain
            self.people[other].merged_into = keep.id
            self.merges.append((keep.id, other, now))
        return keep.id

    def address_view(self, where: tuple[str, str] | None, owner: int, viewer: int) -> dict[str, Any] | None:
        """How the viewer's document shows the address a row names (only their own addresses)."""
        if where is None or self.survivor(owner) != viewer:
            return None
        return {"kind": where[0], "value": None if self.people[viewer].erased else where[1]}


def _consent_body(item: tuple[Any, ...], now: datetime, number: int) -> tuple[tuple[str, str], dict[str, Any]]:
    (index, spelling), choice, purpose, brand, consent_type, captured, expires, shift = item
    where = ADDRESSES[index]
    captured_at = {"noon": NOON_ET, "day before": NOON_ET - timedelta(days=1), "now": now,
                   "just before": now - timedelta(microseconds=1)}[captured]
    body = {where[0]: spellings(*where)[spelling % len(spellings(*where))], "channel": CHANNELS[where[0]][choice],
            "purpose": purpose, "consent_type": consent_type, "captured_at": spell_instant(captured_at, shift),
            "source": "web_form", "proof_uri": f"https://proof.example.com/{number}"}
    if brand is not None:
        body["brand"] = brand
    if expires is not None:
        body["expires_at"] = spell_instant(now + expires, shift)
    return where, body


def _record_consent(model: Model, where: tuple[str, str], body: dict[str, Any], made: dict[str, Any],
                    now: datetime) -> None:
    if model.who(where) is None:
        model.create(made["identity_id"], where, now)
    assert model.survivor(made["identity_id"]) == model.who(where), (body, made)
    assert instant(made["recorded_at"]) == now, made
    model.consents.append({
        "consent_id": made["consent_id"], "identity_id": made["identity_id"],
        "address": None if body["channel"] in PERSON_CHANNELS else where, "channel": body["channel"],
        "purpose": body["purpose"], "brand": body["brand"].strip() if "brand" in body else None,
        "consent_type": body["consent_type"], "captured_at": instant(body["captured_at"]), "recorded_at": now,
        "expires_at": instant(body["expires_at"]) if "expires_at" in body else None, "source": body["source"],
        "proof_uri": body["proof_uri"]})


def run_history(client, clock, keys, sequence) -> tuple[Model, datetime]:  # type: ignore[no-untyped-def]
    writer, sender = keys["writer"], keys["sender"]
    model = Model()
    now = NOON_ET
    for number, (kind, step_tick, *step) in enumerate(sequence):
        now += step_tick
        clock.set(now)
        if kind == "person":
            email, phone, spelling = step
            named = ([ADDRESSES[email]] if email is not None else []) + \
                    ([ADDRESSES[len(EMAILS) + phone]] if phone is not None else [])
            if not named:
                continue
            body = {where[0]: spellings(*where)[spelling % len(spellings(*where))] for where in named}
            answer = client.post("/v1/identities", json=body, headers=writer)
            matched = [who for where in named if (who := model.who(where)) is not None]
            assert answer.status_code == (200 if matched else 201), (body, answer.get_json())
            made = answer.get_json()["identity_id"]
            if matched:
                person = model.merge(matched, now)
            else:
                model.create(made, named[0], now)
                person = made
            for where in named:
                if where not in model.owner:
                    model.attach(where, person)
            assert made == person, (body, made, person)
            continue
        if kind == "merge":
            if len(model.people) < 2:
                continue
            ids = sorted(model.people)
            first, second = ids[step[0] % len(ids)], ids[step[1] % len(ids)]
            answer = client.post(f"/v1/identities/{first}/merge", json={"other_identity_id": second}, headers=writer)
            a, b = model.survivor(first), model.survivor(second)
            if a != b and (model.people[a].erased or model.people[b].erased):
                assert answer.status_code == 409, answer.get_json()
                continue
            assert answer.status_code == 200, answer.get_json()
            assert answer.get_json()["identity_id"] == model.merge([a, b], now)
            continue
        if kind == "erase":
            where = ADDRESSES[step[0]]
            person = model.who(where)
            if person is None:
                continue
            answer = client.delete(f"/v1/identities/{person}", headers=keys["admin"])
            assert answer.status_code == 200, answer.get_json()
            for member in model.group(person):
                model.people[member].erased = True
                model.people[member].domain = None
            model.owner = {w: o for w, o in model.owner.items() if model.survivor(o) != person}
            model.erasures[person] = now
            continue
        if kind == "consent":
            where, body = _consent_body(step[0], now, number)
            answer = client.post("/v1/consents", json=body, headers=writer)
            assert answer.status_code == 201, (body, answer.get_json())
            _record_consent(model, where, body, answer.get_json(), now)
            continue
        if kind == "batch":
            bodies = [_consent_body(item, now, number) for item in step[0]]
            answer = client.post("/v1/consents/batch", json={"items": [b for _, b in bodies]}, headers=writer)
            assert answer.status_code == 200, answer.get_json()
            for (where, body), result in zip(bodies, answer.get_json()["results"], strict=True):
                assert result["status"] == 201, (body, result)
                _record_consent(model, where, body, result, now)
            continue
        (index, spelling), *rest = step
        where = ADDRESSES[index]
        ref = {where[0]: spellings(*where)[spelling % len(spellings(*where))]}
        known = model.who(where)
        if kind == "revoke":
            channels, purposes, brands, account, received, shift = rest
            body = {**ref, "channels": channels, "source": "api"}
            if purposes is not None:
                body["purposes"] = purposes
            if brands is not None:
                body["brands"] = brands
            if account:
                body["scope"] = "account"
            received_at = {None: now, "noon": NOON_ET, "just before": now - timedelta(microseconds=1),
                           "half a second before": now - timedelta(milliseconds=500)}[received]
            if received is not None:
                body["received_at"] = spell_instant(received_at, shift)
            answer = client.post("/v1/revocations", json=body, headers=writer)
            # The company of the address it came through, else the person's.
            domain = domain_of(*where) or (model.people[known].domain if known is not None else None)
            if account and domain is None:
                assert answer.status_code == 422, (body, answer.get_json())
                if known is None:   # the address was taken in (a new person) before the check refused it
                    found = client.get("/v1/identities", query_string=ref, headers=keys["auditor"])
                    assert found.status_code == 404, (body, found.get_json())
                continue
            assert answer.status_code == 201, (body, answer.get_json())
            made = answer.get_json()
            if known is None:
                model.create(made["identity_id"], where, now)
            assert model.survivor(made["identity_id"]) == model.who(where), (body, made)
            model.revocations.append({
                "revocation_id": made["revocation_id"], "identity_id": made["identity_id"], "address": where,
                "scope": "account" if account else "identity", "account_domain": domain if account else None,
                "channels": sorted(set(channels)), "purposes": sorted(set(purposes or ["*"])),
                "brands": sorted(set(brands or ["*"])), "source": "api", "received_at": received_at,
                "effective_at": now})
        elif kind == "suppress":
            choice, dated = rest
            suppression = SUPPRESSIONS[where[0]][choice]
            since = NOON_ET - timedelta(days=2) if dated else None
            body = {**ref, "kind": suppression, **({"since": iso(since)} if since else {})}
            answer = client.post("/v1/suppressions", json=body, headers=writer)
            assert answer.status_code == 201, (body, answer.get_json())
            made = answer.get_json()
            if known is None:
                model.create(made["identity_id"], where, now)
            assert model.survivor(made["identity_id"]) == model.who(where), (body, made)
            if suppression in _STATUS_FOR_KIND:
                model.status[where, model.owner[where]] = _STATUS_FOR_KIND[suppression]
            model.suppressions.append({
                "suppression_id": made["suppression_id"], "identity_id": made["identity_id"], "address": where,
                "kind": suppression, "since": since or (now if suppression == "reassigned" else None),
                "created_at": now})
        elif kind == "touch":
            choice, sent = rest
            if known is None:   # the test learns who a touch is about from the person's creation
                made = client.post("/v1/identities", json=ref, headers=writer)
                assert made.status_code == 201, made.get_json()
                model.create(made.get_json()["identity_id"], where, now)
            sent_at = {None: now, "noon": NOON_ET, "just before": now - timedelta(microseconds=1)}[sent]
            body = {**ref, "channel": CHANNELS[where[0]][choice], "purpose": "marketing", "campaign": "spring",
                    **({"sent_at": spell_instant(sent_at, OFFSETS[1])} if sent is not None else {})}
            answer = client.post("/v1/touches", json=body, headers=sender)
            assert answer.status_code == 201, (body, answer.get_json())
            model.touches.append((answer.get_json()["touch_id"], model.who(where) or 0, sent_at))
        else:
            choice, purpose, reserve = rest
            body = {**ref, "channel": CHANNELS[where[0]][choice], "purpose": purpose, "reserve": reserve}
            answer = client.post("/v1/eligibility", json=body, headers=sender)
            assert answer.status_code == 200, (body, answer.get_json())
            made = answer.get_json()
            assert made["identity_id"] == known, (body, made)
            if known is not None:
                model.decisions.append((made["decision_id"], known, now))
                if made["reservation_id"] is not None:
                    model.touches.append((made["reservation_id"], known, now))
    return model, now


def expected_view(model: Model, person: int, at: datetime) -> dict[str, Any]:
    """The parts of a person's document the model knows."""
    group, me = model.group(person), model.people[person]
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for consent in (c for c in model.consents if c["identity_id"] in group):
        key = (consent["address"], consent["channel"], consent["purpose"], label_key(consent["brand"]))
        held = latest.get(key)
        order = (consent["captured_at"], consent["recorded_at"], consent["consent_id"])
        if held is None or order > (held["captured_at"], held["recorded_at"], held["consent_id"]):
            latest[key] = consent
    own = [r for r in model.revocations if r["identity_id"] in group]
    # Every company the person is at: their account's and their work emails'.
    companies = {me.domain} | {domain_of(*w) for w, o in model.owner.items()
                               if w[0] == "email" and model.survivor(o) == person}
    company = [r for r in model.revocations if r["scope"] == "account" and r["account_domain"] in companies - {None}
               and r["identity_id"] not in group]
    return {
        "identity_id": person,
        "account_domain": me.domain,
        "erased": me.erased,
        "created_at": iso(me.created_at),
        "contact_points": [{"kind": where[0], "value": None if me.erased else where[1],
                            "status": model.status[where, owner], "erased": me.erased}
                           for where, owner in model.addresses if model.survivor(owner) == person],
        "consents": [
            {"consent_id": c["consent_id"], "contact_point": model.address_view(c["address"], c["identity_id"], person),
             "channel": c["channel"], "purpose": c["purpose"], "brand": c["brand"], "consent_type": c["consent_type"],
             "captured_at": iso(c["captured_at"]), "source": c["source"], "proof_uri": c["proof_uri"],
             "expires_at": iso(c["expires_at"]),
             "status": "expired" if c["expires_at"] is not None and c["expires_at"] <= at else "active"}
            for c in sorted(latest.values(), key=lambda c: c["consent_id"])],
        "revocations": [
            {"revocation_id": r["revocation_id"], "scope": r["scope"], "account_domain": r["account_domain"],
             "channels": r["channels"], "purposes": r["purposes"], "brands": r["brands"], "source": r["source"],
             "contact_point": model.address_view(r["address"], r["identity_id"], person),
             "received_at": iso(r["received_at"]), "effective_at": iso(r["effective_at"])}
            for r in sorted(own, key=lambda r: r["revocation_id"]) + sorted(company, key=lambda r: r["revocation_id"])],
        "suppressions": [
            {"suppression_id": s["suppression_id"], "kind": s["kind"],
             "contact_point": model.address_view(s["address"], s["identity_id"], person),
             "since": iso(s["since"]), "created_at": iso(s["created_at"])}
            for s in sorted((s for s in model.suppressions if s["identity_id"] in group),
                            key=lambda s: s["suppression_id"])],
    }


def check_view(client, keys, model: Model, person: int, at: datetime) -> None:  # type: ignore[no-untyped-def]
    auditor = keys["auditor"]
    read = client.get(f"/v1/identities/{person}", headers=auditor)
    assert read.status_code == 200, read.get_json()
    document = read.get_json()
    assert document.pop("requested_identity_id") == person
    wanted = expected_view(model, person, at)
    seen = {name: document[name] for name in wanted}
    seen["contact_points"] = [{k: v for k, v in cp.items() if k != "id"} for cp in document["contact_points"]]
    seen["revocations"] = [{k: v for k, v in r.items() if k != "deadline_at"} for r in document["revocations"]]
    for name, value in wanted.items():
        assert seen[name] == value, (person, name, seen[name], value)
    assert all(r["deadline_at"] is not None for r in document["revocations"]), document["revocations"]
    group = model.group(person)
    if any(r["scope"] == "account" and r["account_domain"] == document["account_domain"]
           and r["identity_id"] not in group for r in model.revocations):
        event("a colleague's company-wide opt-out in a view")
    if any(r["identity_id"] in group - {person} for r in model.revocations):
        event("an opt-out of someone merged into the person")
    if any(c["status"] == "expired" for c in document["consents"]):
        event("a current consent that has expired")
    assert sorted(document["merged_identity_ids"]) == sorted(group - {person}), document
    # Named by an id merged into them: the same document, saying which id was asked for.
    for member in sorted(group - {person}):
        other = client.get(f"/v1/identities/{member}", headers=auditor).get_json()
        assert other.pop("requested_identity_id") == member
        assert other == document, (person, member)
    # Named by any spelling of any of their addresses: the same document.
    for where in (w for w, owner in model.owner.items() if model.survivor(owner) == person):
        for spelling in spellings(*where):
            found = client.get("/v1/identities", query_string={where[0]: spelling}, headers=auditor)
            assert found.status_code == 200, (where, spelling)
            assert found.get_json() == document, (person, spelling)


def _key(row: dict[str, Any]) -> tuple[str, Any]:
    """What names an event: its type and its row's id."""
    ids = {"identity_created": "identity_id", "contact_point_added": "contact_point_id", "consent": "consent_id",
           "revocation": "revocation_id", "suppression": "suppression_id", "merge": "merge_id",
           "touch": "touch_id", "decision": "decision_id", "erasure": "erasure_id"}
    return row["type"], row[ids[row["type"]]]


def check_timeline(client, keys, model: Model, person: int, sizes: range | list[int]) -> None:  # type: ignore[no-untyped-def]
    auditor, url = keys["auditor"], f"/v1/identities/{person}/timeline"
    whole = client.get(url, headers=auditor).get_json()
    events = whole["events"]
    assert whole["identity_id"] == person and whole["next"] is None, whole
    keys_seen = [_key(e) for e in events]
    assert len(keys_seen) == len(set(keys_seen)), Counter(keys_seen).most_common(3)
    instants = [instant(e["at"]) for e in events]
    assert instants == sorted(instants), [e["at"] for e in events]
    if len(set(instants)) < len(instants):
        event("events sharing an instant")
    if any(a.microsecond == 0 and b.microsecond != 0 and a.replace(microsecond=0) == b.replace(microsecond=0)
           for a, b in pairwise(instants)):
        event("a whole second before a fraction of it (not in text order)")
    group = model.group(person)
    by_type: dict[str, dict[Any, datetime]] = {}
    for row, at in zip(events, instants, strict=True):
        by_type.setdefault(row["type"], {})[_key(row)[1]] = at
    wanted = {
        "identity_created": {i: model.people[i].created_at for i in group},
        "consent": {c["consent_id"]: c["recorded_at"] for c in model.consents if c["identity_id"] in group},
        "revocation": {r["revocation_id"]: r["received_at"] for r in model.revocations if r["identity_id"] in group},
        "suppression": {s["suppression_id"]: s["created_at"] for s in model.suppressions if s["identity_id"] in group},
        "touch": {t: at for t, owner, at in model.touches if owner in group},
        "decision": {d: at for d, owner, at in model.decisions if owner in group},
    }
    for kind, rows in wanted.items():
        assert by_type.get(kind, {}) == rows, (person, kind)
    merges = sorted((e["survivor_id"], e["absorbed_id"], instant(e["at"])) for e in events if e["type"] == "merge")
    assert merges == sorted(m for m in model.merges if m[1] in group), person
    erasures = [instant(e["at"]) for e in events if e["type"] == "erasure"]
    assert erasures == ([model.erasures[person]] if person in model.erasures else []), person
    added = Counter((e["kind"], e["value"]) for e in events if e["type"] == "contact_point_added")
    erased = model.people[person].erased
    assert added == Counter((w[0], None if erased else w[1]) for w, owner in model.addresses
                            if model.survivor(owner) == person), person
    # A page at a time, of every size asked: the same events, once each, in the same order.
    for size in sizes:
        pages: list[dict[str, Any]] = []
        after = None
        for _ in range(len(events) + 2):
            query = {"limit": size, **({"after": after} if after else {})}
            page = client.get(url, query_string=query, headers=auditor).get_json()
            assert len(page["events"]) <= size, (person, size)
            pages += page["events"]
            after = page["next"]
            if after is None:
                break
            assert len(page["events"]) == size, (person, size, after)
        assert after is None, (person, size)
        assert [_key(e) for e in pages] == keys_seen, (person, size, [e["at"] for e in pages])
        assert pages == events, (person, size)


@given(sequence=steps, ending=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(hours=1)]))
@example(   # two people at one company, one opting the whole company out; one of them merged with a number
    sequence=[("person", timedelta(0), 0, None, 1), ("consent", timedelta(0), ((1, 0), 0, "marketing", "Acme",
                                                        "express", "noon", None, OFFSETS[1])),
              ("revoke", timedelta(0), (0, 2), ["email"], None, None, True, "noon", OFFSETS[0]),
              ("touch", timedelta(microseconds=1), (4, 3), 0, "noon"),
              ("person", timedelta(milliseconds=500), 1, 0, 4), ("merge", timedelta(0), 2, 1),
              ("check", timedelta(0), (5, 1), 0, "marketing", True)],
    ending=timedelta(0))
@example(   # a number that opted out and consented, then found to be the person's: all kept, on the number
    sequence=[("person", timedelta(0), 0, None, 0),
              ("revoke", timedelta(microseconds=1), (4, 1), ["sms"], ["marketing"], ["Acme"], False, "noon",
               OFFSETS[2]),
              ("consent", timedelta(0), ((4, 2), 0, "marketing", None, "express_written", "now", timedelta(minutes=3),
                                         OFFSETS[0])),
              # Recorded later but captured earlier: the statement above still stands (and has expired);
              # two statements at one instant: the later one.
              ("batch", timedelta(seconds=1), [
                  ((4, 3), 0, "marketing", None, "express_written", "day before", None, OFFSETS[1]),
                  ((4, 4), 1, "marketing", "Acme", "express_written", "noon", None, OFFSETS[0]),
                  ((4, 5), 1, "marketing", "ACME", "express", "noon", None, OFFSETS[2])]),
              ("person", timedelta(milliseconds=500), 0, 0, 5), ("check", timedelta(0), (4, 0), 0, "marketing", False)],
    ending=timedelta(hours=1))
@settings(max_examples=10, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_a_person_reads_the_same_however_named_and_the_timeline_pages_whole(  # type: ignore[no-untyped-def]
        client, clock, start_over, sequence, ending) -> None:
    keys = start_over(NOON_ET)
    model, last = run_history(client, clock, keys, sequence)
    at = last + ending
    clock.set(at)
    people = model.survivors()
    if not people:
        return
    event(f"merges: {min(len(model.merges), 2)}, erasures: {min(len(model.erasures), 1)}")
    # Every page size on the busiest person, a few on everyone else: pages cost a request each.
    busiest = max(people, key=lambda p: len(model.group(p)) + sum(
        1 for c in model.consents + model.revocations if model.survivor(c["identity_id"]) == p))
    for person in people:
        check_view(client, keys, model, person, at)
        size = len(client.get(f"/v1/identities/{person}/timeline", headers=keys["auditor"]).get_json()["events"])
        check_timeline(client, keys, model, person,
                       range(1, size + 2) if person == busiest else sorted({1, 2, 3, max(size - 1, 1), size + 1}))
