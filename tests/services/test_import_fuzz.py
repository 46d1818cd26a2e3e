"""Arbitrary CSV and registry files: an import either takes the file (each bad row rejected with its line) or
stops with a file error; it never fails with anything else, and what it says it imported is there."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from consentgate.services.imports import (
    CONSENT_REQUIRED,
    ImportFileError,
    import_consents,
    import_dnc,
    import_suppressions,
)
from consentgate.store.models import ConsentEvent, Suppression

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Per column: values an export really has (good and bad), and now and then anything at all.
VALUES = {
    "email": ["pat@corp.com", "PAT@Corp.com", "jo@gmail.com", "", "not-an-email", "a@b"],
    "phone": ["+1 305-555-0100", "(305) 555-0101", "305.555.0102", "", "555", "+44 20 7946 0000"],
    "identity_id": ["", "1", "0", "x", "99999999999"],
    "channel": ["sms", "email", "voice", "postal", "fax", ""],
    "purpose": ["marketing", "informational", "transactional", "nope"],
    "consent_type": ["express", "express_written", "implied_ebr", "uncertain", "x"],
    "captured_at": ["2026-11-20T10:00:00Z", "2026-11-20", "2099-01-01T00:00:00Z", "x", "1850-01-01T00:00:00Z"],
    "source": ["web", "crm", ""],
    "proof_uri": ["https://proof.example.com/1", "", "ftp://x", "https://"],
    "expires_at": ["", "2027-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "soon"],
    "external_id": ["", "crm-1", "crm-2"],
    "company_domain": ["", "corp.com", "gmail.com", "-bad-"],
    "timezone": ["", "America/New_York", "Mars/Olympus"],
    "state": ["", "FL", "XX", "NSW"],
    "country": ["", "US", "AU", "ZZ"],
    "name": ["", "Pat Lee", "\x00"],
    "ip": ["", "203.0.113.9", "999.1.1.1"],
    "brand": ["", "acme"],
}
CONSENT_HEADERS = sorted(VALUES)


def _cell(column: str) -> st.SearchStrategy[str]:
    """Mostly the column's first, everyday value, so that whole rows are often good."""
    usual = st.just(VALUES[column][0])
    return st.one_of(usual, usual, usual, usual, usual, usual, st.sampled_from(VALUES[column]), st.text(max_size=20))


def _csv(header: list[str], rows: list[list[str]]) -> str:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value
    return "\n".join(",".join(cell(v) for v in line) for line in [header, *rows]) + "\n"


def _count(store, model) -> int:  # type: ignore[no-untyped-def]
    with store.transaction(write=False) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def _imported(store, model, run):  # type: ignore[no-untyped-def]
    """``run()``'s result when the file was taken (None for a file error), with exactly as many
    new ``model`` rows on disk as it says it imported."""
    before = _count(store, model)
    try:
        result = run()
    except ImportFileError:
        return None
    event("some rows imported" if result.imported else "no row imported")
    assert _count(store, model) == before + result.imported
    return result


# The required columns nearly always (a header without one is a file error), others at random, in any order.
headers = st.lists(st.sampled_from(CONSENT_HEADERS), max_size=7, unique=True).flatmap(
    lambda extra: st.permutations(sorted({*CONSENT_REQUIRED, "phone", *extra})))


@given(header=st.one_of(headers, headers, st.lists(st.sampled_from(CONSENT_HEADERS), min_size=1, max_size=9,
                                                    unique=True)),
       data=st.data(), raw=st.one_of(st.none(), st.none(), st.text()))
@FUZZ
def test_any_consent_file(store, policy, header: list[str], data: st.DataObject, raw: str | None) -> None:  # type: ignore[no-untyped-def]
    row = st.tuples(*(_cell(column) for column in header)).map(list)
    ragged = st.lists(st.text(max_size=10), max_size=len(header) + 2)   # a row that does not line up
    rows = data.draw(st.lists(st.one_of(row, row, row, ragged), max_size=12))
    text = raw if raw is not None else _csv(list(header), rows)
    result = _imported(store, ConsentEvent, lambda: import_consents(store, policy, io.StringIO(text), NOW))
    assert result is None or all(r.line >= 2 for r in result.rejected)


@given(rows=st.lists(st.tuples(st.one_of(st.sampled_from(["", "+13055550100", "x@corp.com"]), st.text(max_size=20)),
                               st.one_of(st.sampled_from(["bounce", "legal_hold", "reassigned", "nope", ""]),
                                         st.text(max_size=10)),
                               st.one_of(st.sampled_from(["", "2026-11-01", "2026-11-01T00:00:00Z", "x"]),
                                         st.text(max_size=10))), max_size=12))
@FUZZ
def test_any_suppression_file(store, policy, rows: list[tuple[str, str, str]]) -> None:  # type: ignore[no-untyped-def]
    text = _csv(["phone", "kind", "since"], [list(r) for r in rows])
    _imported(store, Suppression, lambda: import_suppressions(store, policy, io.StringIO(text), NOW))


@given(lines=st.lists(st.one_of(st.sampled_from(["2125550100", "212,5550101", "(212) 555-0102", "", "   ", "12",
                                                 "2125550100\x00", "area,number", "212,555,0100", "+12125550103"]),
                                st.text(max_size=20)), max_size=15))
@FUZZ
def test_any_registry_file(store, policy, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    try:
        result = import_dnc(store, policy, io.StringIO("\n".join(lines) + "\n"), NOW, NOW.date())
    except ImportFileError:
        return
    event("some numbers loaded" if result.loaded else "no number loaded")
    assert result.loaded + len(result.rejected) <= result.read
