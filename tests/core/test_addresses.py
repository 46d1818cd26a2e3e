"""Address normalisation: one spelling per number and mailbox, idempotent, round-tripping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.core.addresses import (
    company_domain_of,
    normalise_domain,
    normalise_email,
    normalise_phone,
    phone_timezones,
    phone_us_state,
)
from consentgate.errors import ValidationFailed

# Real US area codes with a valid exchange: 2XX-9XX exchanges, lines 0100-9999.
AREAS = ["305", "212", "415", "907", "808", "312", "512", "617", "206", "404"]


@st.composite
def us_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    area = draw(st.sampled_from(AREAS))
    exchange = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 9))}{draw(st.integers(2, 9))}"
    line = f"{draw(st.integers(0, 9999)):04d}"
    return area, exchange, line


FORMATS = [
    "+1 {a}-{e}-{l}", "({a}) {e}-{l}", "{a}.{e}.{l}", "1-{a}-{e}-{l}", "{a}{e}{l}", "+1{a}{e}{l}",
    "1 ({a}) {e} {l}", " {a} {e} {l} ", "+1.{a}.{e}.{l}",
]


@given(us_numbers())
@settings(max_examples=150)
def test_every_format_of_a_number_gives_one_e164(parts: tuple[str, str, str]) -> None:
    a, e, line = parts
    try:
        expected = normalise_phone(f"+1{a}{e}{line}")
    except ValidationFailed:
        return  # a range phonenumbers knows to be unassigned: refused in every format
    for fmt in FORMATS:
        assert normalise_phone(fmt.format(a=a, e=e, l=line)) == expected
    assert expected == f"+1{a}{e}{line}"


@given(us_numbers())
@settings(max_examples=100)
def test_phone_normalisation_is_idempotent(parts: tuple[str, str, str]) -> None:
    try:
        once = normalise_phone("({}) {}-{}".format(*parts))
    except ValidationFailed:
        return
    assert normalise_phone(once) == once


local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s)
domains = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]\.(com|org|io|de|co\.uk)", fullmatch=True)


@given(local_parts, domains)
@settings(max_examples=150)
def test_email_normalisation_is_idempotent_and_case_insensitive(local: str, domain: str) -> None:
    once = normalise_email(f"{local}@{domain}")
    assert normalise_email(once) == once
    assert normalise_email(f"  {local.upper()}@{domain.upper()} ") == once
    assert once == once.lower()


def test_idna_domains_are_one_domain() -> None:
    assert normalise_email("hans@bücher.de") == normalise_email("Hans@XN--BCHER-KVA.de")


def test_local_part_kept_when_policy_says_case_matters() -> None:
    assert normalise_email("Jane.Doe@Example.com", casefold_local=False) == "Jane.Doe@example.com"


@pytest.mark.parametrize("raw", ["", "555", "+1 305 555", "+44 20", "(000) 000-0000", "not a number",
                                 "+1 199 555 0100"])
def test_invalid_phones_are_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_phone(raw, field="items[3].phone")
    assert info.value.errors[0].field == "items[3].phone"


@pytest.mark.parametrize("raw", ["", "plain", "a@", "@b.com", "a b@c.com", "a@b..com"])
def test_invalid_emails_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        normalise_email(raw)


def test_company_domain_never_from_free_mail() -> None:
    free = frozenset({"gmail.com"})
    assert company_domain_of("a@gmail.com", free) is None
    assert company_domain_of("a@acme.io", free) == "acme.io"
    assert normalise_domain("WWW.Acme.IO") == "acme.io"


def test_location_of_numbers() -> None:
    assert phone_timezones("+13055550123") == ("America/New_York",)
    assert set(phone_timezones("+19075550123")) >= {"America/Anchorage", "America/Adak"}
    assert phone_us_state("+13055550123") == "FL"
    assert phone_us_state("+14155550123") == "CA"
    assert phone_us_state("+442079460000") is None
