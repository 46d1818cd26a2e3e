"""Address normalisation: one spelling per number and mailbox, idempotent, round-tripping."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
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
# A label with hyphens in its third and fourth places is reserved (RFC 5891, as in "xn--"): refused.
domains = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]\.(com|org|io|de|co\.uk)", fullmatch=True).filter(
    lambda d: d[2:4] != "--")


@given(local_parts, domains)
@settings(max_examples=150)
def test_email_normalisation_is_idempotent_and_case_insensitive(local: str, domain: str) -> None:
    once = normalise_email(f"{local}@{domain}")
    assert normalise_email(once) == once
    assert normalise_email(f"  {local.upper()}@{domain.upper()} ") == once
    assert once == once.lower()


def test_a_domain_label_with_reserved_hyphens_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        normalise_email("00@A0--0.com")


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


# The shortcuts for everyday spellings must agree with the libraries on everything they accept;
# anything they are unsure of goes through the full parse, so the two can never disagree.
shortcut_phone_text = st.one_of(
    st.builds(lambda p, f: f.format(a=p[0], e=p[1], l=p[2]), us_numbers(), st.sampled_from(FORMATS)),
    st.from_regex(r"(\+?1)?[ .(-]{0,2}\d{3}[ ).-]{0,2}\d{3}[ .-]?\d{4}", fullmatch=True),
    st.text(alphabet="+1234567890 ().-", min_size=1, max_size=18),
)


def _full_phone(raw: str, region: str) -> str | None:
    import phonenumbers
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@given(shortcut_phone_text, st.sampled_from(["US", "CA", "GB", "DE"]))
@settings(max_examples=600)
def test_phone_shortcut_agrees_with_a_full_parse(raw: str, region: str) -> None:
    from consentgate.core.addresses import _plain_nanp
    shortcut = _plain_nanp(raw.strip(), region)
    if shortcut is not None:
        assert shortcut == _full_phone(raw, region)


shortcut_email_text = st.one_of(
    st.builds(lambda a, b: f"{a}@{b}", local_parts, domains),
    st.from_regex(r"[A-Za-z0-9._%+-]{1,12}@[A-Za-z0-9.-]{1,20}\.[A-Za-z0-9-]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z]{1,5}@([a-z0-9-]{1,6}\.){1,3}(local|test|invalid|onion|arpa|localhost|com|xn--p1ai)",
                  fullmatch=True),
    st.text(alphabet="aZ09._%+-@", min_size=3, max_size=16),
)


@given(shortcut_email_text)
@example("WWW@A0.com")   # RFC 2142 role mailboxes are case-insensitive: email-validator lower-cases them
@example("Sales@corp.com")
@settings(max_examples=600)
def test_email_shortcut_agrees_with_email_validator(raw: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    from consentgate.core.addresses import _plain_email
    shortcut = _plain_email(raw)
    if shortcut is None:
        return
    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise AssertionError(f"the shortcut accepted {raw!r}, email-validator refuses it: {exc}") from None
    assert shortcut == (checked.local_part, (checked.ascii_domain or checked.domain).lower())


def test_shortcuts_cover_the_everyday_spellings() -> None:
    from consentgate.core.addresses import _plain_email, _plain_nanp
    assert _plain_email("Jane.Doe+news@Example.COM") == ("Jane.Doe+news", "example.com")
    assert _plain_email("hans@bücher.de") is None and _plain_email("a@x.local") is None
    # Special-use names are left to email-validator, whole labels only.
    assert _plain_email("a@b.Test") is None and _plain_email("a@printer.localhost") is None
    assert _plain_email("a@latest.com") == ("a", "latest.com") and _plain_email("a@b.testing") == ("a", "b.testing")
    assert _plain_nanp("(305) 555-0134", "US") == "+13055550134"
    assert _plain_nanp("305 555 0134", "GB") is None
    assert _plain_nanp("+1 305 555 0134", "GB") == "+13055550134"


def _library_says_valid(digits: str) -> bool:
    import phonenumbers

    return bool(phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))))


@given(st.from_regex(r"[0-9]{10}", fullmatch=True))
@settings(max_examples=500)
def test_north_american_validity_is_the_libraries_own(digits: str) -> None:
    from consentgate.core.addresses import _nanp_valid

    assert _nanp_valid(digits) == _library_says_valid(digits)


def test_north_american_validity_agrees_in_every_area_code() -> None:
    import random

    from consentgate.core.addresses import _nanp_valid

    draw = random.Random(20261127)
    for area in range(200, 1000):
        for _ in range(25):
            digits = f"{area}{draw.randrange(200, 1000)}{draw.randrange(10_000):04d}"
            assert _nanp_valid(digits) == _library_says_valid(digits), digits
