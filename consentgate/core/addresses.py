"""Normalised addresses: one spelling per email address and per phone number.

Every rule that compares addresses (dedupe, revocations, tombstones, imports) works on the
values produced here, so two spellings of one number or one mailbox are always one person.
No network: email syntax only (deliverability is the sender's business, and a DNS look-up
at request time would make the gate's answer depend on a third party).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from consentgate.errors import ValidationFailed

AddressKind = Literal["email", "phone"]

# phonenumbers answers this for numbers it cannot place; it is no time zone.
_UNKNOWN_ZONE = "Etc/Unknown"


class Address(NamedTuple):
    """A normalised address; a tuple, so that sets and dicts of many thousands stay cheap (imports)."""

    kind: AddressKind
    value: str


def normalise_email(raw: str, *, casefold_local: bool = True, field: str = "email") -> str:
    """The canonical form of an email address, or ValidationFailed naming ``field``.

    The domain is lower-cased and IDNA-encoded (so ``bücher.de`` and ``xn--bcher-kva.de`` are
    one domain); the local part is case-folded when the policy says mailboxes are
    case-insensitive, which nearly every real mail server is.
    """
    text = raw.strip() if isinstance(raw, str) else raw
    if not isinstance(text, str) or not text:
        raise ValidationFailed.field(field, "an email address is required")
    plain = _plain_email(text)
    if plain is not None:
        local, domain = plain
        return f"{local.casefold() if casefold_local else local}@{domain}"
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValidationFailed.field(field, f"not a valid email address: {exc}") from None
    local = checked.local_part
    if casefold_local:
        local = local.casefold()
    domain = (checked.ascii_domain or checked.domain).lower()
    return f"{local}@{domain}"


# The everyday shape of an address: ASCII, an unquoted local part, a domain of plain LDH labels
# ending in an alphabetic top-level label. For these, email-validator's answer is known in
# advance (the domain lower-cased, the local part kept), so it is given without running it;
# everything else — IDNA, quoting, Unicode, "xn--" labels, special-use names — goes through it.
_PLAIN_EMAIL = re.compile(
    r"([A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})")
_LOCAL_MAX, _DOMAIN_MAX, _ADDRESS_MAX = 64, 253, 254
# A domain that is, or ends in, one of email-validator's special-use names (checked as one pattern).
_SPECIAL_USE = re.compile(r"(?:^|\.)(?:" + "|".join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES)) + r")\Z")


def _plain_email(text: str) -> tuple[str, str] | None:
    """(local part, lower-cased domain) of an everyday address; None when email-validator must decide."""
    match = _PLAIN_EMAIL.fullmatch(text)
    if match is None or len(text) > _ADDRESS_MAX:
        return None
    local, domain = match.group(1), match.group(2).lower()
    if len(local) > _LOCAL_MAX or len(domain) > _DOMAIN_MAX or "--" in domain:
        return None
    if _SPECIAL_USE.search(domain):
        return None
    # RFC 2142 role mailboxes (info, sales, abuse, www...) are case-insensitive: email-validator
    # writes them in lower case, and so must this, or "INFO@" and "info@" are two people.
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        local = local.lower()
    return local, domain


# A North American number written with nothing but digits and the usual separators.
_NANP_SEPARATORS = str.maketrans("", "", " ().-")
_NANP_DIGITS = re.compile(r"(\+1|1)?([2-9]\d{2}[2-9]\d{6})")
_NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))


def _plain_nanp(text: str, default_region: str) -> str | None:
    """E.164 of a valid North American number in an everyday spelling, without a full parse.

    phonenumbers' parse is half the cost of normalising a number; for "+1 305-555-0101",
    "(305) 555-0101", "305.555.0101" or "13055550101" its result is known (country 1, the ten
    digits), so only the validity check runs. Anything else returns None and is parsed in full.
    """
    match = _NANP_DIGITS.fullmatch(text.translate(_NANP_SEPARATORS))
    if match is None or (match.group(1) != "+1" and default_region not in _NANP_REGIONS):
        return None
    digits = match.group(2)
    return "+1" + digits if _nanp_valid(digits) else None


_NUMBER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
                 "fixed_line", "mobile")


def _desc_pattern(desc: Any, length: int) -> str | None:
    """A number description's pattern, if a number of ``length`` digits can match it at all."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


def _nanp_rules() -> list[tuple[re.Pattern[str] | None, re.Pattern[str] | None, re.Pattern[str] | None]]:
    """Per region of country code 1, in phonenumbers' order: the leading digits that claim a number
    for the region, its general pattern, and its number types' patterns as one alternation."""
    rules = []
    for region in phonenumbers.region_codes_for_country_code(1):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        general = _desc_pattern(metadata.general_desc, 10)
        types = [p for p in (_desc_pattern(getattr(metadata, name), 10) for name in _NUMBER_TYPES) if p]
        rules.append((re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None,
                      re.compile(general) if general else None,
                      re.compile("|".join(f"(?:{p})" for p in types)) if types else None))
    return rules


_NANP_RULES = _nanp_rules()


def _nanp_valid(digits: str) -> bool:
    """``phonenumbers.is_valid_number`` for +1 and ten national digits, on the same metadata.

    The library tries region after region, compiling and matching each number type's pattern in
    turn; here the first region that claims the number (by its leading digits, or by being
    valid there) decides, as there, with each region's patterns matched once as one expression.
    """
    for leading, general, types in _NANP_RULES:
        if leading is not None and not leading.match(digits):
            continue
        valid = (general is not None and types is not None and general.fullmatch(digits) is not None
                 and types.fullmatch(digits) is not None)
        if valid or leading is not None:
            return valid
    return False


def normalise_phone(raw: str, *, default_region: str = "US", field: str = "phone") -> str:
    """The E.164 form of a phone number, or ValidationFailed naming ``field``.

    Numbers without a ``+country`` prefix are read in the policy's default region. Impossible
    and unassigned-range numbers are refused: an unreachable address can carry no consent.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed.field(field, "a phone number is required")
    e164 = _valid_e164(raw.strip(), default_region)
    if e164 is None:
        return _checked_e164(raw.strip(), default_region, field)
    return e164


@lru_cache(maxsize=65536)
def _valid_e164(raw: str, default_region: str) -> str | None:
    """E.164 for a valid number, None otherwise. Senders ask about the same people again and again,
    and parsing is the slowest step of a check (phonenumbers: about 45,000 numbers/s per core)."""
    try:
        return _plain_nanp(raw, default_region) or _checked_e164(raw, default_region, "phone")
    except ValidationFailed:
        return None


def _checked_e164(raw: str, default_region: str, field: str) -> str:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed.field(field, f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValidationFailed.field(field, "not a possible phone number (wrong length)")
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed.field(field, "not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_address(kind: AddressKind, raw: str, *, default_region: str = "US",
                      casefold_local: bool = True, field: str | None = None) -> Address:
    if kind == "email":
        return Address("email", normalise_email(raw, casefold_local=casefold_local, field=field or "email"))
    return Address("phone", normalise_phone(raw, default_region=default_region, field=field or "phone"))


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1]


def company_domain_of(email: str, free_mail_domains: frozenset[str]) -> str | None:
    """The company (account) domain of a normalised work email; free-mail domains have none."""
    domain = email_domain(email)
    if domain in free_mail_domains:
        return None
    return domain


def companies_of(account_domain: str | None, contact_points: Iterable[Any],
                 free_mail_domains: frozenset[str]) -> frozenset[str]:
    """Every company a person is at: their account's, and the company of each work email among
    their contact points (anything with ``kind`` and ``value``). A merge joins people from several
    companies and the survivor keeps one account; a company-wide opt-out holds for all of them."""
    found = {company_domain_of(cp.value, free_mail_domains) for cp in contact_points
             if cp.kind == "email" and cp.value}
    found.add(account_domain)
    return frozenset(d for d in found if d)


def normalise_domain(raw: str, *, field: str = "company_domain") -> str:
    """A company domain given explicitly, validated as the domain of a mailbox would be."""
    text = raw.strip().lower().removeprefix("www.") if isinstance(raw, str) else ""
    if not text:
        raise ValidationFailed.field(field, "a domain is required")
    try:
        checked = validate_email(f"postmaster@{text}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed.field(field, f"not a valid domain: {exc}") from None
    return (checked.ascii_domain or checked.domain).lower()


@lru_cache(maxsize=1)
def location_data() -> SimpleNamespace:
    """phonenumbers' time zone and geocoder tables: about 100 MB, so loaded on first use (the gate
    needs them, an import does not) or by ``create_app`` before the first request."""
    from phonenumbers import geocoder, timezone
    return SimpleNamespace(geocoder=geocoder, timezone=timezone)


@lru_cache(maxsize=65536)
def phone_timezones(e164: str) -> tuple[str, ...]:
    """Every IANA zone a number may be in (several for some area codes), empty when unknown."""
    number = phonenumbers.parse(e164, None)
    zones = tuple(z for z in location_data().timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    return tuple(sorted(set(zones)))


def phone_region(e164: str) -> str | None:
    number = phonenumbers.parse(e164, None)
    return phonenumbers.region_code_for_number(number)


# phonenumbers' English geocoder names the state of a US number's area code ("Florida",
# "Miami, FL"); we read it back to the two-letter code state rules are keyed by.
_US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Washington D.C.": "DC", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY",
    "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI",
    "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE",
    "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Puerto Rico": "PR",
}
_US_CODES = frozenset(_US_STATES.values())


# Every NANP area code lies in one state and one country, so a state found for one number holds
# for its whole area code: the geocoder (slow) runs about once per area code, not once per number.
_STATE_OF_AREA_CODE: dict[str, str] = {}


def phone_us_state(e164: str) -> str | None:
    """The US state of a number's area code, from phonenumbers' geocoder; None outside the US."""
    area = e164[2:5] if e164.startswith("+1") and len(e164) == 12 else None
    if area is not None and area in _STATE_OF_AREA_CODE:
        return _STATE_OF_AREA_CODE[area]
    state = _geocoded_state(e164)
    if area is not None and state is not None:
        _STATE_OF_AREA_CODE[area] = state
    return state


@lru_cache(maxsize=65536)
def _geocoded_state(e164: str) -> str | None:
    number = phonenumbers.parse(e164, None)
    if phonenumbers.region_code_for_number(number) not in ("US", "PR"):
        return None
    place = location_data().geocoder.description_for_number(number, "en")
    if not place:
        return None
    if place in _US_STATES:
        return _US_STATES[place]
    tail = place.rsplit(",", 1)[-1].strip()
    if tail in _US_CODES:
        return tail
    return _US_STATES.get(tail)
