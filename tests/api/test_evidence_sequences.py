"""The evidence bundle through any sequence of ledger writes, merges, erasures and checks: every
row a logged decision cites (consents, the person's or their company's opt-outs, tombstones an
erased earlier owner of an address left, suppressions, National DNC entries) is in the bundle of
the person it was about, with the chain entries of the ledger rows among them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consentgate.services.imports import import_dnc

NOON_ET = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
PHONES = ["+13055550181", "+13055550182"]
EMAILS = ["ann@corp.com", "ben@corp.com", "cy@other.org"]
ADDRESSES = [{"phone": p} for p in PHONES] + [{"email": e} for e in EMAILS]
CHANNELS = {"phone": ["sms", "voice"], "email": ["email"]}

address = st.sampled_from(ADDRESSES)
steps = st.lists(st.one_of(
    st.tuples(st.just("consent"), address, st.sampled_from(["express_written", "express"])),
    st.tuples(st.just("revoke"), address, st.booleans()),
    st.tuples(st.just("suppress"), address, st.sampled_from(["bounce", "complaint", "reassigned", "litigator"])),
    st.tuples(st.just("registry"), st.sampled_from(PHONES)),
    st.tuples(st.just("person"), st.sampled_from(PHONES), st.sampled_from(EMAILS)),
    st.tuples(st.just("erase"), address),
    st.tuples(st.just("check"), address),
), min_size=3, max_size=12)


@given(sequence=steps)
# A colleague's opt-out for the whole company; an address whose earlier owner opted out and was
# erased; a number on the National DNC Registry.
@example(sequence=[("revoke", {"email": "ann@corp.com"}, True), ("consent", {"email": "ben@corp.com"}, "express"),
                   ("check", {"email": "ben@corp.com"})])
@example(sequence=[("revoke", {"phone": PHONES[0]}, False), ("erase", {"phone": PHONES[0]}),
                   ("consent", {"phone": PHONES[0]}, "express_written"), ("check", {"phone": PHONES[0]})])
@example(sequence=[("registry", PHONES[1]), ("consent", {"phone": PHONES[1]}, "express"),
                   ("check", {"phone": PHONES[1]})])
@settings(max_examples=20, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_row_a_decision_cites_is_in_the_bundle(client, clock, runtime, start_over, sequence) -> None:  # type: ignore[no-untyped-def]
    keys = start_over(NOON_ET)
    writer = keys["writer"]
    now = NOON_ET
    people: set[int] = set()
    for number, step in enumerate(sequence):
        now += timedelta(minutes=1)
        clock.set(now)
        kind, where = step[0], step[1]
        if kind == "consent":
            for channel in CHANNELS[next(iter(where))]:
                client.post("/v1/consents", json={
                    **where, "channel": channel, "purpose": "marketing", "consent_type": step[2], "source": "web_form",
                    "captured_at": (now - timedelta(days=1)).isoformat(),
                    "proof_uri": f"https://proof.example.com/{number}"}, headers=writer)
        elif kind == "revoke":
            account = step[2] and "email" in where
            client.post("/v1/revocations", json={**where, "channels": ["*"], "source": "manual",
                                                 **({"scope": "account"} if account else {})}, headers=writer)
        elif kind == "suppress":
            body = {**where, "kind": step[2]}
            if step[2] == "reassigned":
                body["since"] = (now - timedelta(days=5)).isoformat()
            client.post("/v1/suppressions", json=body, headers=writer)
        elif kind == "registry":
            import_dnc(runtime.store, runtime.policy, io.StringIO(where[2:] + "\n"), now, now.date())
        elif kind == "person":
            client.post("/v1/identities", json={"phone": where, "email": step[2]}, headers=writer)
        elif kind == "erase":
            found = client.get("/v1/identities", query_string=where, headers=writer)
            if found.status_code == 200:
                client.delete(f"/v1/identities/{found.get_json()['identity_id']}", headers=keys["admin"])
        else:
            for channel in CHANNELS[next(iter(where))]:
                answer = client.post("/v1/eligibility", json={**where, "channel": channel, "purpose": "marketing"},
                                     headers=keys["sender"]).get_json()
                if answer["identity_id"] is not None:
                    people.add(answer["identity_id"])
    for person in people:
        bundle = client.get(f"/v1/identities/{person}/evidence", headers=keys["auditor"]).get_json()
        if bundle["identity"]["erased"]:
            continue   # their addresses are gone, and with them what found the rows about them
        held = {
            "revocation_id": {r["id"] for r in bundle["revocations"] + bundle["account_revocations"]},
            "tombstone_id": {t["id"] for t in bundle["tombstones"]},
            "suppression_id": {s["id"] for s in bundle["suppressions"]},
            "consent_id": {c["id"] for c in bundle["consent_events"]},
        }
        chained = {(e["table"], e["row_id"]) for e in bundle["chain"]}
        registry = {n["phone"] for n in bundle["dnc_registry"]}
        for decision in bundle["decisions"]:
            for reason in decision["reasons"]:
                if reason["code"] == "DNC_NATIONAL" and reason.get("suppression_id") == 0:
                    assert decision["request"]["address"]["value"] in registry, (sequence, reason)
                    continue
                for key, ids in held.items():
                    if key in reason:
                        assert reason[key] in ids, (sequence, person, reason)
                if "revocation_id" in reason:
                    assert ("revocation", reason["revocation_id"]) in chained, (sequence, reason)
