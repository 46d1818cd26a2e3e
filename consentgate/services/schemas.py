"""Request shapes shared by the HTTP API, the batch endpoints and the CSV imports.

Pydantic checks types and shapes here; rules that need the policy (known channels, proof
requirements, normalised addresses) are checked by the use-cases, which name the field too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consentgate.services.identities import AddressRef
from consentgate.store.models import MAX_ID

_NUL = "must not contain NUL (U+0000) characters"


def _refuse_nul(value: Any) -> Any:
    """A value with NUL (U+0000) anywhere in its text is refused: PostgreSQL text cannot hold it,
    and the write would fail after validation had passed."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(_NUL)
    if isinstance(value, list | tuple):
        for item in value:
            _refuse_nul(item)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_nul(item)
    return value


class Request(BaseModel):
    """Anything a request carries: no field may hold NUL (``_refuse_nul``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # One pass over the body rather than a validator per field: an import validates a
        # million rows, and a call per field was a sixth of the validation.
        if isinstance(data, dict):
            for name, value in data.items():
                if type(value) is str:
                    if "\x00" in value:
                        raise ValueError(f"{name}: {_NUL}")
                elif value is not None:
                    try:
                        _refuse_nul(value)
                    except ValueError as exc:
                        raise ValueError(f"{name}: {exc}") from None
        return data


class Strict(Request):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# An id of a stored row, as a request may name one.
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]

_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)
# How far a client's clock may be from ours: a captured_at this far ahead is not "in the future",
# an eligibility ``at`` this far back is not "in the past".
CLOCK_SKEW = timedelta(minutes=5)


def _plausible(value: datetime) -> datetime:
    # Beyond these, converting to UTC or adding a window overflows Python's datetime (a 500).
    # Aware instants compare as instants whatever their offsets, without converting either.
    if _EARLIEST <= value < _LATEST:
        return value
    raise ValueError("must be between the years 1900 and 2999")


# An instant as a request gives it: with its offset, and within a range every calculation can reach.
Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]


class AddressIn(Strict):
    """An address: exactly one of email, phone or identity_id (checked with the policy)."""

    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    identity_id: RowId | None = None

    def ref(self) -> AddressRef:
        return AddressRef(email=self.email, phone=self.phone, identity_id=self.identity_id)


# ISO 3166-2:US (states, DC, territories). The state rules are keyed by these codes, so a state
# given without a country is read as one of them, and a typo is refused rather than matching no rule.
US_STATES = frozenset(holidays.US.subdivisions)


class Attributes(Strict):
    timezone: str | None = Field(None, max_length=64, description="IANA time zone, e.g. America/Chicago")
    # Before ``state``: the state's validator reads it.
    country: str | None = Field(None, max_length=2, description="ISO 3166-1 alpha-2")
    state: str | None = Field(None, max_length=3, description="the region's ISO 3166-2 code without the country "
                              "(FL, ON, NSW); without `country`, a US state")
    name: str | None = Field(None, max_length=300)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York)") from None
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 2 or not value.isascii() or not value.isalpha():
            raise ValueError("a two-letter code is required")
        return value.upper()

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not 1 <= len(value) <= 3 or not value.isascii() or not value.isalnum():
            raise ValueError("one to three letters or digits are required (ISO 3166-2, without the country)")
        code = value.upper()
        if info.data.get("country") in (None, "US") and code not in US_STATES:
            raise ValueError(f"{value!r} is not a US state or territory (give `country` for a region elsewhere)")
        return code


class IdentityIn(Strict):
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    company_domain: str | None = Field(None, max_length=253)
    external_id: str | None = Field(None, min_length=1, max_length=200)
    attributes: Attributes | None = None
    status_at_last_touch: str | None = Field(None, max_length=100)
    last_touch_channel: str | None = Field(None, max_length=32)
    last_touch_at: Instant | None = None
    test_record: bool | None = Field(None, description="a synthetic person (QA): kept out of every report")


class MergeIn(Strict):
    other_identity_id: RowId


class ConsentIn(AddressIn):
    channel: str = Field(min_length=1, max_length=32)
    purpose: str = Field(min_length=1, max_length=32)
    consent_type: str = Field(min_length=1, max_length=32)
    captured_at: Instant
    source: str = Field(min_length=1, max_length=100)
    proof_uri: str | None = Field(None, max_length=2000)
    proof_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    brand: str | None = Field(None, min_length=1, max_length=100)
    consent_text: str | None = Field(None, max_length=20_000)
    ip: str | None = Field(None, max_length=64)
    user_agent: str | None = Field(None, max_length=1000)
    expires_at: Instant | None = None


# How much of the person's own words a revocation keeps (an inbound message keeps them all).
RAW_TEXT_MAX = 20_000

RevocationSource = Literal["sms_keyword", "sms_free_text", "email_one_click", "email_link", "api",
                           "manual", "complaint", "bounce", "import"]


class RevocationIn(AddressIn):
    channels: list[str] = Field(min_length=1)
    purposes: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    brands: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=lambda: ["*"],
                                                                             min_length=1)
    scope: Literal["identity", "account"] = "identity"
    source: RevocationSource
    reason: str | None = Field(None, max_length=2000)
    raw_text: str | None = Field(None, max_length=RAW_TEXT_MAX)
    received_at: Instant | None = None


SuppressionKind = Literal["bounce", "complaint", "dnc_national", "reassigned", "legal_hold", "litigator"]


class SuppressionIn(AddressIn):
    kind: SuppressionKind
    since: Instant | None = None
    note: str | None = Field(None, max_length=2000)


class BatchIn(BaseModel):
    # Not a ``Request``: each item is validated on its own, so that a bad one fails only itself.
    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(min_length=1, max_length=10_000)


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """Pydantic keeps offsets as written; the store keeps UTC."""
    return value.astimezone(UTC) if value is not None else None
