"""Signed email unsubscribe tokens: round trip, URL safety, tampering, other keys, expiry."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from consentgate.core import tokens
from consentgate.core.tokens import (
    InvalidUnsubscribeToken,
    UnsubscribeClaim,
    make_unsubscribe_token,
    read_unsubscribe_token,
)
from consentgate.errors import BadRequest, ConfigError, status_of

SECRET = "test-secret-key-with-enough-entropy"
ISSUED = datetime(2026, 11, 25, 17, 0, 12, tzinfo=UTC)
MAX_AGE = 60
URL_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def token(email: str = "reader@corp.com", brand: str | None = "acme", purpose: str | None = "marketing",
          issued_at: datetime = ISSUED, secret: str = SECRET) -> str:
    return make_unsubscribe_token(secret, email, brand, purpose, issued_at)


def refusal(value: str, now: datetime = ISSUED, secret: str = SECRET) -> InvalidUnsubscribeToken:
    with pytest.raises(InvalidUnsubscribeToken) as exc:
        read_unsubscribe_token(secret, value, now, MAX_AGE)
    return exc.value


def test_a_token_reads_back_as_its_claim() -> None:
    claim = read_unsubscribe_token(SECRET, token(), ISSUED + timedelta(days=3), MAX_AGE)
    assert claim == UnsubscribeClaim("reader@corp.com", "acme", "marketing", ISSUED)


def test_brand_and_purpose_may_be_absent() -> None:
    claim = read_unsubscribe_token(SECRET, token(brand=None, purpose=None), ISSUED, MAX_AGE)
    assert (claim.brand, claim.purpose) == (None, None)


def test_issued_at_is_kept_to_the_second_in_utc() -> None:
    local = datetime(2026, 11, 25, 12, 0, 12, 999_999).astimezone(UTC).replace(microsecond=999_999)
    claim = read_unsubscribe_token(SECRET, token(issued_at=local), local, MAX_AGE)
    assert claim.issued_at == local.replace(microsecond=0) and claim.issued_at.tzinfo is UTC


def test_a_naive_issued_at_is_read_as_utc() -> None:
    naive = ISSUED.replace(tzinfo=None)
    assert read_unsubscribe_token(SECRET, token(issued_at=naive), ISSUED, MAX_AGE).issued_at == ISSUED


@given(
    email=st.emails(),
    brand=st.none() | st.text(max_size=100),
    purpose=st.none() | st.text(max_size=32),
    seconds=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_every_claim_round_trips_through_a_url_safe_token(email: str, brand: str | None, purpose: str | None,
                                                          seconds: int) -> None:
    issued_at = datetime.fromtimestamp(seconds, UTC)
    value = make_unsubscribe_token(SECRET, email, brand, purpose, issued_at)
    assert URL_SAFE.fullmatch(value)
    assert read_unsubscribe_token(SECRET, value, issued_at, MAX_AGE) == UnsubscribeClaim(
        email, brand, purpose, issued_at)


def test_the_token_is_valid_through_the_last_second_of_its_age() -> None:
    value = token()
    assert read_unsubscribe_token(SECRET, value, ISSUED + timedelta(days=MAX_AGE), MAX_AGE)
    error = refusal(value, now=ISSUED + timedelta(days=MAX_AGE, seconds=1))
    assert error.reason == "expired" and f"{MAX_AGE} days" in error.detail


def test_a_token_from_a_clock_ahead_is_accepted() -> None:
    """Only the secret's holder can mint one, so a node whose clock runs fast is no threat."""
    assert read_unsubscribe_token(SECRET, token(), ISSUED - timedelta(minutes=5), MAX_AGE)


def test_expiry_uses_the_callers_max_age() -> None:
    now = ISSUED + timedelta(days=45)
    assert read_unsubscribe_token(SECRET, token(), now, 60)
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, token(), now, 30)


def test_every_single_character_change_is_refused() -> None:
    value = token()
    for index, char in enumerate(value):
        for replacement in {"A", "_", "."} - {char}:
            tampered = value[:index] + replacement + value[index + 1:]
            with pytest.raises(InvalidUnsubscribeToken):
                read_unsubscribe_token(SECRET, tampered, ISSUED, MAX_AGE)


def test_a_swapped_payload_is_refused() -> None:
    """The signature of one recipient's token does not carry another's address."""
    mine, theirs = token(email="me@corp.com"), token(email="them@corp.com")
    forged = theirs.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1]
    assert refusal(forged).reason == "invalid"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert refusal(token(secret="another-secret")).reason == "invalid"


def test_another_signed_value_of_the_same_secret_is_refused() -> None:
    """The salt keeps tokens apart from anything else signed with the service secret."""
    other = URLSafeSerializer(SECRET, signer_kwargs={"digest_method": hashlib.sha256})
    assert refusal(other.dumps(["reader@corp.com", None, None, 1_795_712_400])).reason == "invalid"


@pytest.mark.parametrize("payload", [
    {"email": "reader@corp.com"},
    ["reader@corp.com", None, None],
    ["", None, None, 1_795_712_400],
    ["reader@corp.com", 1, None, 1_795_712_400],
    ["reader@corp.com", None, None, "1795712400"],
    ["reader@corp.com", None, None, True],
    ["reader@corp.com", None, None, 10**20],
])
def test_a_genuinely_signed_payload_of_the_wrong_shape_is_refused(payload: object) -> None:
    serializer = URLSafeSerializer(SECRET, salt=tokens._SALT, signer_kwargs={"digest_method": hashlib.sha256})
    assert refusal(serializer.dumps(payload)).reason == "invalid"


@pytest.mark.parametrize("value", ["", ".", "abc", "abc.def", "..", "\u00e9t\u00e9.\u00e9", "\ud800.x"])
def test_garbage_is_refused_without_a_crash(value: str) -> None:
    assert refusal(value).reason == "invalid"


def test_a_refusal_is_a_400_that_names_no_internals() -> None:
    error = refusal(token()[:-4])
    assert isinstance(error, BadRequest) and status_of(error) == 400
    assert error.detail == "This unsubscribe link is not valid."


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CONSENTGATE_SECRET_KEY"):
        token(secret="")
    with pytest.raises(ConfigError):
        read_unsubscribe_token("", token(), ISSUED, MAX_AGE)
