"""The policy: every rule that varies by law or business choice, loaded from YAML and frozen.

``load_policy(path)`` parses and validates a file and returns a ``LoadedPolicy`` that carries the
frozen model, its ``version`` (sha256 of the canonical content) and the lookups the hot path needs,
computed once. Any problem raises ``PolicyError`` naming the file, the path inside it and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from consentgate.core.durations import format_duration, parse_duration
from consentgate.core.keywords import KeywordRules, keyword_sets_overlap
from consentgate.core.reasons import ReasonCode
from consentgate.errors import PolicyError

WILDCARD = "*"
NO_CONSENT_NEEDED = "none"
SUPPRESSION_KINDS = ("bounce", "complaint", "dnc_national", "reassigned", "legal_hold", "litigator")


# Longer than any window or pause a policy means, and short enough that an instant the API
# accepts (years 1900-2999) plus or minus it stays a date Python can hold.
LONGEST_DURATION = timedelta(days=36525)


def _positive_duration(value: Any) -> timedelta:
    duration = parse_duration(value)
    if duration < timedelta(0):
        raise ValueError(f"{value!r} is negative: a window or pause must be zero or longer")
    if duration > LONGEST_DURATION:
        raise ValueError(f"{value!r} is longer than a hundred years")
    return duration


Duration = Annotated[
    timedelta,
    BeforeValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted 08:00 as sexagesimal minutes (480); take it as meant.
        if not 0 <= value < 24 * 60:
            raise ValueError(f"{value!r} is not a time of day like '08:00'")
        return time(value // 60, value % 60)
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a time of day like '08:00'") from exc


Clock = Annotated[time, BeforeValidator(_clock), PlainSerializer(lambda t: t.strftime("%H:%M"))]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# A channel with no address of its own (postal mail, LinkedIn): it reaches the person, so its
# consents, opt-outs and touches are the person's, not one of their contact points'.
NO_ADDRESS = "none"


class ChannelSpec(Rule):
    address: Literal["phone", "email", "none"]
    enabled: bool = True

    @property
    def kind(self) -> str | None:
        """The kind of contact point the channel sends to; None for a channel that reaches the person."""
        return None if self.address == NO_ADDRESS else self.address


class ConsentTypeSpec(Rule):
    requires_proof: bool = False
    description: str | None = None
    source: str | None = None


class ConsentRequirement(Rule):
    channels: list[str]
    purposes: list[str]
    minimum: str
    description: str | None = None
    source: str | None = None


class RepermissionSpec(Rule):
    purpose: str = "repermission"
    max_touches: int = Field(1, ge=1)
    window: Duration = timedelta(days=30)
    # An opt-out of these purposes stops re-permission touches too: asking someone who said
    # "no more marketing" to confirm their consent is itself a marketing message (after an email
    # unsubscribe, CAN-SPAM allows no further commercial message). Names a policy without them
    # does not define are ignored unless the policy lists them itself.
    revoked_with: list[str] = Field(default_factory=lambda: ["marketing"])


class WindowSpec(Rule):
    start: Clock
    end: Clock
    no_sunday: bool = False
    no_holidays: bool = False
    source: str | None = None


class QuietHoursSpec(Rule):
    channels: list[str]
    purposes: list[str]
    federal: WindowSpec
    states: dict[str, WindowSpec] = {}

    @field_validator("states")
    @classmethod
    def _state_codes(cls, states: dict[str, WindowSpec]) -> dict[str, WindowSpec]:
        for code in states:
            if len(code) != 2 or not code.isalpha() or not code.isupper():
                raise ValueError(f"{code!r} is not a two-letter upper-case state code")
        return states


class FatigueCap(Rule):
    name: str
    description: str | None = None
    channels: list[str] = [WILDCARD]
    purposes: list[str] = [WILDCARD]
    programs: list[str] = [WILDCARD]
    segments: list[str] = [WILDCARD]
    states: list[str] | None = None
    max: int = Field(ge=1)
    window: Duration
    per: Literal["identity", "account"] = "identity"
    reason: Literal[ReasonCode.FATIGUE_CAP, ReasonCode.STATE_RULE] = ReasonCode.FATIGUE_CAP
    source: str | None = None


class CadenceStage(Rule):
    touches: int = Field(ge=1)
    after: Duration = timedelta(0)
    within: Duration


class SegmentCadence(Rule):
    stages: list[CadenceStage] = Field(min_length=1)
    pause: Duration = timedelta(0)
    description: str | None = None


class SuppressionRule(Rule):
    channels: list[str]
    purposes: list[str]
    reason: ReasonCode
    waived_by: str | None = None
    voids_consent_before_since: bool = False
    source: str | None = None


# Upper bounds on counts of days and years: far beyond what any law or business asks, and low
# enough that the dates worked out from them stay in the calendar (a deadline is counted day by
# day; a revocation whose deadline overflowed would fail to be written at all).
MOST_BUSINESS_DAYS = 365
MOST_YEARS = 100


class DeadlineSpec(Rule):
    business_days: int = Field(ge=1, le=MOST_BUSINESS_DAYS)
    target_hours: int | None = Field(None, ge=1, le=24 * MOST_BUSINESS_DAYS)
    source: str | None = None


class CalendarSpec(Rule):
    country: str = "US"
    timezone: str = "America/New_York"


class RevocationSpec(Rule):
    calendar: CalendarSpec = CalendarSpec()
    at_risk_business_days: int = Field(2, ge=0, le=MOST_BUSINESS_DAYS)
    deadlines: dict[str, DeadlineSpec] = {}
    default_business_days: int = Field(10, ge=1, le=MOST_BUSINESS_DAYS)


class ScopeSpec(Rule):
    channels: list[str] = [WILDCARD]
    purposes: list[str] = [WILDCARD]
    brands: list[str] = [WILDCARD]


class KeywordFamilies(Rule):
    opt_out: list[str]
    opt_in: list[str]
    help: list[str]
    source: str | None = None


class SmsSpec(Rule):
    opt_out_scope: ScopeSpec
    keywords: KeywordFamilies
    free_text_opt_out: list[str] = []
    wrong_number: list[str] = []
    # An opt-out must be confirmed (47 CFR 64.1200(a)(12)) and HELP answered: neither may be empty.
    confirmation_text: str = Field(min_length=1)
    help_text: str = Field(min_length=1)
    # Sent once when START lifts an opt-out (CTIA: an opt-in is confirmed); None sends nothing.
    opt_in_text: str | None = Field(None, min_length=1)
    confirmation_source: str | None = None


class EmailUnsubscribeSpec(Rule):
    purposes: list[str] = ["marketing"]
    token_max_age_days: int = Field(60, ge=30, le=366 * MOST_YEARS)
    source: str | None = None


class ReservationSpec(Rule):
    ttl: Duration = timedelta(minutes=15)


class RetentionSpec(Rule):
    tombstone_years: int = Field(5, ge=1, le=MOST_YEARS)
    # The decision log is the evidence a sender checked before a touch, needed as long as the
    # touch can be sued over (TCPA: 4 years, 28 U.S.C. 1658), and by far the fastest-growing table.
    decision_log_years: int = Field(5, ge=1, le=MOST_YEARS)
    source: str | None = None


class ControllerSpec(Rule):
    """The organisation consent is given to, as consent receipts name it (all optional)."""

    name: str | None = None
    contact: str | None = None
    address: str | None = None
    email: str | None = None
    phone: str | None = None
    url: str | None = None
    policy_url: str | None = None
    jurisdiction: str = "US"
    language: str = "en"


class IdentitySpec(Rule):
    default_region: str = "US"
    casefold_email_local_part: bool = True
    free_mail_domains: list[str] = []

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region!r} is not a region phonenumbers knows (e.g. 'US', 'GB')")
        return region


class Policy(Rule):
    name: str
    description: str | None = None
    controller: ControllerSpec = ControllerSpec()
    identity: IdentitySpec = IdentitySpec()
    channels: dict[str, ChannelSpec] = Field(min_length=1)
    purposes: list[str] = Field(min_length=1)
    consent_types: dict[str, ConsentTypeSpec] = Field(min_length=1)
    consent_requirements: list[ConsentRequirement]
    repermission: RepermissionSpec = RepermissionSpec()
    quiet_hours: QuietHoursSpec
    fatigue_caps: list[FatigueCap] = []
    segment_cadences: dict[str, SegmentCadence] = {}
    suppressions: dict[str, SuppressionRule]
    revocation: RevocationSpec = RevocationSpec()
    sms: SmsSpec
    email_unsubscribe: EmailUnsubscribeSpec = EmailUnsubscribeSpec()
    reservations: ReservationSpec = ReservationSpec()
    retention: RetentionSpec = RetentionSpec()


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with its version and the lookups computed once at load."""

    policy: Policy
    version: str
    source: str
    canonical: str
    # The version as hashed before the canonical content kept the consent types' ranking: a
    # decision logged under it was made under this policy when it matches.
    legacy_version: str = field(repr=False)
    keyword_rules: KeywordRules = field(repr=False)
    _ranks: dict[str, int] = field(repr=False)
    _requirements: dict[tuple[str, str], ConsentRequirement] = field(repr=False)

    def rank(self, consent_type: str) -> int:
        """Strength of a consent type: higher is stronger; unknown types rank below all."""
        return self._ranks.get(consent_type, -1)

    def requirement(self, channel: str, purpose: str) -> ConsentRequirement | None:
        """The consent requirement for (channel, purpose), or None when the policy names none."""
        return self._requirements.get((channel, purpose))

    def deadline_business_days(self, channel: str) -> int:
        spec = self.policy.revocation.deadlines.get(channel)
        return spec.business_days if spec else self.policy.revocation.default_business_days

    @property
    def channels(self) -> dict[str, ChannelSpec]:
        return self.policy.channels

    @property
    def purposes(self) -> list[str]:
        return self.policy.purposes

    def cadence(self, segment: str | None) -> tuple[str, SegmentCadence] | None:
        """The segment's cadence and its name in the policy, whatever the spelling asked for."""
        return self._cadences.get(label_key(segment)) if segment is not None else None

    @cached_property
    def _cadences(self) -> dict[str | None, tuple[str, SegmentCadence]]:
        return {label_key(name): (name, spec) for name, spec in self.policy.segment_cadences.items()}

    @cached_property
    def free_mail_domains(self) -> frozenset[str]:
        return frozenset(self.policy.identity.free_mail_domains)

    @cached_property
    def person_channels(self) -> frozenset[str]:
        """The channels that reach the person rather than an address (``address: none``)."""
        return frozenset(name for name, spec in self.channels.items() if spec.kind is None)


# The consent types rank from strongest to weakest in the order the policy lists them; sorted
# keys would lose that order, so the canonical content also keeps it as a list under this key.
RANKING_KEY = "consent_type_ranking"


def canonical_json(policy: Policy) -> str:
    """The canonical content a policy version is the hash of: sorted keys, no whitespace, and the
    consent types' ranking (``RANKING_KEY``)."""
    return _sorted_json({**policy.model_dump(mode="json"), RANKING_KEY: list(policy.consent_types)})


def legacy_canonical_json(policy: Policy) -> str:
    """The canonical content as versions were hashed before the ranking was kept (sorted keys only)."""
    return _sorted_json(policy.model_dump(mode="json"))


def _sorted_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def from_canonical(canonical: str) -> Policy | None:
    """The policy a canonical content describes; None when it was stored without the consent
    types' ranking (``legacy_canonical_json``), which it then cannot tell."""
    data = json.loads(canonical)
    ranking = data.pop(RANKING_KEY, None)
    if ranking is None:
        return None
    data["consent_types"] = {name: data["consent_types"][name] for name in ranking}
    return Policy.model_validate(data)


def build(policy: Policy, source: str = "<memory>") -> LoadedPolicy:
    """Cross-check a parsed policy and compute its version and lookups."""
    problems = list(_reference_problems(policy))
    if problems:
        raise PolicyError(_describe(source, problems))
    types = list(policy.consent_types)
    ranks = {name: len(types) - i for i, name in enumerate(types)}
    requirements: dict[tuple[str, str], ConsentRequirement] = {}
    for requirement in policy.consent_requirements:
        for channel in _expand(requirement.channels, policy.channels):
            for purpose in _expand(requirement.purposes, policy.purposes):
                requirements.setdefault((channel, purpose), requirement)
    canonical = canonical_json(policy)
    return LoadedPolicy(
        policy=policy,
        version=hashlib.sha256(canonical.encode()).hexdigest(),
        source=source,
        canonical=canonical,
        legacy_version=hashlib.sha256(legacy_canonical_json(policy).encode()).hexdigest(),
        keyword_rules=_keyword_rules(policy),
        _ranks=ranks,
        _requirements=requirements,
    )


def parse_policy(text: str, source: str = "<memory>") -> LoadedPolicy:
    """Parse YAML text into a LoadedPolicy; every problem names ``source`` and the path inside it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        raise PolicyError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a YAML mapping at the top level")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise PolicyError(_describe(source, problems)) from None
    return build(policy, source)


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load and validate a policy file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return parse_policy(text, str(path))


def _describe(source: str, problems: list[tuple[str, str]]) -> str:
    return f"{source}: " + "; ".join(f"{where or '(top)'}: {what}" for where, what in problems)


def _expand(values: list[str], known: Iterable[str]) -> list[str]:
    return list(known) if WILDCARD in values else values


def _reference_problems(p: Policy) -> Iterable[tuple[str, str]]:
    """Everything that refers to a name must refer to one the policy defines."""
    channels, purposes, types = set(p.channels), set(p.purposes), set(p.consent_types)

    def check(path: str, values: Iterable[str], known: set[str], what: str) -> Iterable[tuple[str, str]]:
        for i, value in enumerate(values):
            if value != WILDCARD and value not in known:
                yield f"{path}.{i}", f"unknown {what} {value!r} (known: {', '.join(sorted(known))})"

    for i, req in enumerate(p.consent_requirements):
        yield from check(f"consent_requirements.{i}.channels", req.channels, channels, "channel")
        yield from check(f"consent_requirements.{i}.purposes", req.purposes, purposes, "purpose")
        if req.minimum != NO_CONSENT_NEEDED and req.minimum not in types:
            yield f"consent_requirements.{i}.minimum", f"unknown consent type {req.minimum!r}"
    if p.repermission.purpose not in purposes:
        yield "repermission.purpose", f"unknown purpose {p.repermission.purpose!r}"
    if "revoked_with" in p.repermission.model_fields_set:
        yield from check("repermission.revoked_with", p.repermission.revoked_with, purposes, "purpose")
    yield from check("quiet_hours.channels", p.quiet_hours.channels, channels, "channel")
    yield from check("quiet_hours.purposes", p.quiet_hours.purposes, purposes, "purpose")
    for name, window in [("federal", p.quiet_hours.federal), *p.quiet_hours.states.items()]:
        path = "quiet_hours.federal" if name == "federal" else f"quiet_hours.states.{name}"
        if window.end <= window.start:
            yield path, f"the window ends ({window.end:%H:%M}) before it starts ({window.start:%H:%M})"
    for i, cap in enumerate(p.fatigue_caps):
        yield from check(f"fatigue_caps.{i}.channels", cap.channels, channels, "channel")
        yield from check(f"fatigue_caps.{i}.purposes", cap.purposes, purposes, "purpose")
        if cap.window <= timedelta(0):
            yield f"fatigue_caps.{i}.window", "a cap needs a window longer than zero"
    for name, cadence in p.segment_cadences.items():
        for j, stage in enumerate(cadence.stages):
            if stage.within <= timedelta(0):
                yield f"segment_cadences.{name}.stages.{j}.within", "a stage needs a window longer than zero"
    for kind, rule in p.suppressions.items():
        if kind not in SUPPRESSION_KINDS:
            yield f"suppressions.{kind}", f"unknown suppression kind (known: {', '.join(SUPPRESSION_KINDS)})"
        yield from check(f"suppressions.{kind}.channels", rule.channels, channels, "channel")
        yield from check(f"suppressions.{kind}.purposes", rule.purposes, purposes, "purpose")
        if rule.waived_by is not None and rule.waived_by not in types:
            yield f"suppressions.{kind}.waived_by", f"unknown consent type {rule.waived_by!r}"
    for kind in SUPPRESSION_KINDS:
        if kind not in p.suppressions:
            yield f"suppressions.{kind}", "missing: every suppression kind needs a rule"
    for channel in p.revocation.deadlines:
        if channel not in channels:
            yield f"revocation.deadlines.{channel}", f"unknown channel {channel!r}"
    try:
        ZoneInfo(p.revocation.calendar.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield "revocation.calendar.timezone", f"unknown timezone {p.revocation.calendar.timezone!r}"
    scope = p.sms.opt_out_scope
    yield from check("sms.opt_out_scope.channels", scope.channels, channels, "channel")
    yield from check("sms.opt_out_scope.purposes", scope.purposes, purposes, "purpose")
    yield from check("email_unsubscribe.purposes", p.email_unsubscribe.purposes, purposes, "purpose")
    for word in keyword_sets_overlap(_keyword_rules(p)):
        yield "sms.keywords", f"keyword {word!r} is in two families: families must not overlap"
    # Segments compare trimmed and case-folded: two cadences one segment would match are ambiguous.
    cadences: dict[str | None, str] = {}
    for name in p.segment_cadences:
        if label_key(name) in cadences:
            yield (f"segment_cadences.{name}",
                   f"the same segment as {cadences[label_key(name)]!r} (case and spaces aside)")
        cadences[label_key(name)] = name


def _keyword_rules(p: Policy) -> KeywordRules:
    return KeywordRules(
        opt_out=frozenset(p.sms.keywords.opt_out),
        opt_in=frozenset(p.sms.keywords.opt_in),
        help=frozenset(p.sms.keywords.help),
        free_text_opt_out=tuple(p.sms.free_text_opt_out),
        wrong_number=tuple(p.sms.wrong_number),
    )


def matches(values: list[str] | tuple[str, ...], wanted: str) -> bool:
    """True when a policy list (which may hold ``*``) covers ``wanted``."""
    return WILDCARD in values or wanted in values


def label_key(label: str | None) -> str | None:
    """A free-form name (brand, program, segment) as such names are compared: "Acme", "ACME" and
    " acme " are one. They come from every system a company runs: an opt-out from "Acme" must
    stop "acme", and a cap on "reactivation" must count a "Reactivation" touch."""
    return label.strip().casefold() if label is not None else None


def label_in(labels: list[str] | tuple[str, ...], label: str) -> bool:
    """``matches`` for free-form names: a list (which may hold ``*``) covers ``label`` in any spelling."""
    if WILDCARD in labels or label in labels:
        return True
    # Decisions run this for every cap and touch: names spelled as the policy spells them are
    # settled above, and no name at all here, without case-folding the whole list.
    key = label_key(label)
    return bool(key) and any(label_key(known) == key for known in labels)
