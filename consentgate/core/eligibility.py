"""The decision: may this person be contacted on this channel now, for this purpose?

``decide()`` is a pure function of plain facts, the policy and the request (``request.at`` is
"now"): no clock, no store, no Flask. It collects every rule that denies, not only the first,
so a sender and an auditor see the whole picture. It fails closed: an unknown person, a
missing address, a channel the policy does not know, or a (channel, purpose) the policy has no
consent rule for is a denial.

Two readings the law leaves to us, chosen to protect the person:
- A revocation is undone only by the person's own later, proven opt-in on the same address and
  channel: a consent captured after the revocation was received that carries a proof URI (or
  came by SMS keyword, where the message itself is the proof). A CRM re-import never does it.
- Suppressions name an address (bounce, complaint, DNC, reassigned) and stop that address;
  legal hold and litigator stop the whole person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

from consentgate.core.addresses import companies_of
from consentgate.core.caps import Limit, cadence_limit, cap_limits, repermission_touches
from consentgate.core.consent import current_consents, is_expired
from consentgate.core.facts import (
    IDENTITY_WIDE_SUPPRESSIONS,
    ConsentFact,
    Decision,
    EligibilityRequest,
    Reason,
    RevocationFact,
    Subject,
    SuppressionFact,
)
from consentgate.core.policy import NO_CONSENT_NEEDED, LoadedPolicy, label_in, label_key, matches
from consentgate.core.quiet_hours import Window, applicable_windows, recipient_states, steady_minute, windows_at
from consentgate.core.reasons import TIME_BOUND, ReasonCode

_MAX_SETTLE_STEPS = 64


def decide(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> Decision:
    reasons = _standing_reasons(subject, request, policy)
    consent, consent_reasons = _consent(subject, request, policy)
    reasons += consent_reasons
    place = _place(subject, request, policy)
    timed = _timed_reasons(subject, request, policy, request.at, place)
    reasons += [Reason(limit.code, limit.message, limit.data) for limit in timed]
    if reasons:
        next_at = None
        if all(r.code in TIME_BOUND for r in reasons):
            next_at = _settle(subject, request, policy, timed, place)
            if next_at is not None and _changes_by(subject, request, next_at):
                # Waiting helps only if nothing else denies when the wait is over (a consent
                # that has expired by then, say).
                later = replace(request, at=next_at)
                if _standing_reasons(subject, later, policy) or _consent(subject, later, policy)[1]:
                    next_at = None
        return Decision(False, tuple(reasons), next_at, consent)
    return Decision(True, (), None, consent)


def _changes_by(subject: Subject, request: EligibilityRequest, until: datetime) -> bool:
    """Whether a fact takes effect or lapses after the request's instant and by ``until``: a
    consent expiring (the usual case) or recorded, a revocation or suppression taking effect.
    Otherwise the rules that waiting does not cure answer at ``until`` as they did at ``at``."""
    at = request.at
    # Plain loops: every check outside calling hours asks this.
    for c in subject.consents:
        if (c.expires_at is not None and at < c.expires_at <= until) or at < c.recorded_at <= until:
            return True
    for r in subject.revocations:
        if at < r.effective_at <= until:
            return True
    return any(at < s.created_at <= until for s in subject.suppressions)


def _standing_reasons(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> list[Reason]:
    """Rules that waiting does not cure."""
    channel = policy.channels.get(request.channel)
    if channel is None or not channel.enabled:
        return [Reason(ReasonCode.CHANNEL_DISABLED, f"channel {request.channel!r} is not enabled by the policy")]
    if subject.identity is None:
        return [Reason(ReasonCode.UNKNOWN_IDENTITY, "no identity has this address: nobody to have consented")]
    if subject.target is None and channel.kind is not None:
        return [Reason(ReasonCode.NO_CONSENT, f"the identity has no {channel.kind} address for {request.channel}")]
    reasons = [_revocation_reason(r, subject) for r in _revocations_in_force(subject, request, policy)]
    reasons += _suppression_reasons(subject, request, policy)
    return reasons


def _applies(brands: tuple[str, ...], wanted: str | None) -> bool:
    # A revocation naming specific brands stops a send that names no brand (a blank name is
    # none): it may be any brand.
    return wanted is None or not label_key(wanted) or label_in(brands, wanted)


def _in_force(lifted_at: datetime | None, since: datetime, at: datetime) -> bool:
    return since <= at and (lifted_at is None or lifted_at > at)


def _revocations_in_force(subject: Subject, request: EligibilityRequest,
                          policy: LoadedPolicy) -> list[RevocationFact]:
    assert subject.identity is not None
    out = []
    companies: frozenset[str] | None = None
    for revocation in subject.revocations:
        if not _in_force(revocation.lifted_at, revocation.effective_at, request.at):
            continue
        # "Nobody at my company" includes the person who said it, whatever company a merge left them with.
        if revocation.scope == "account" and not subject.identity.owns(revocation.identity_id):
            if companies is None:
                companies = companies_of(subject.identity.account_domain, subject.contact_points,
                                         policy.free_mail_domains)
            if revocation.account_domain not in companies:
                continue
        if not (matches(revocation.channels, request.channel) and _stops_purpose(revocation, request, policy)
                and _applies(revocation.brands, request.brand)):
            continue
        if _overridden(revocation, subject, request, policy):
            continue
        out.append(revocation)
    return out


def _stops_purpose(revocation: RevocationFact, request: EligibilityRequest, policy: LoadedPolicy) -> bool:
    if matches(revocation.purposes, request.purpose):
        return True
    repermission = policy.policy.repermission
    return request.purpose == repermission.purpose and any(p in revocation.purposes for p in repermission.revoked_with)


def _overridden(revocation: RevocationFact, subject: Subject, request: EligibilityRequest,
                policy: LoadedPolicy) -> bool:
    """The person opted in again, after this revocation, on this address and channel, with proof.

    Any such statement counts, not only the latest: a CRM record of consent written after it
    does not take the person's opt-in back (and never undoes an opt-out itself). One voided by
    a later reassignment of the number was someone else's."""
    if revocation.scope == "account":
        return False
    for consent in _statements(subject, request):
        if (consent.captured_at > revocation.received_at and (consent.proof_uri or consent.source == "sms_keyword")
                and not is_expired(consent, request.at) and not _void(consent, subject, policy, request.at)):
            return True
    return False


def _revocation_reason(revocation: RevocationFact, subject: Subject) -> Reason:
    data = {"revocation_id": revocation.id, "received_at": revocation.received_at, "source": revocation.source,
            "channels": list(revocation.channels), "purposes": list(revocation.purposes)}
    if revocation.tombstone:
        return Reason(ReasonCode.DNC_INTERNAL, "this address opted out before its owner's data was erased",
                      {"tombstone_id": revocation.id, "received_at": revocation.received_at})
    if revocation.scope == "account":
        return Reason(ReasonCode.ACCOUNT_DNC, f"everyone at {revocation.account_domain} asked not to be contacted",
                      data | {"account_domain": revocation.account_domain})
    return Reason(ReasonCode.REVOKED, f"the person revoked consent ({revocation.source})", data)


def _suppression_reasons(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> list[Reason]:
    out = []
    for suppression in subject.suppressions:
        rule = policy.policy.suppressions.get(suppression.kind)
        if rule is None or not _in_force(suppression.lifted_at, suppression.created_at, request.at):
            continue
        # An address's suppression stops that address; a channel without one is stopped only
        # by those that stop the whole person.
        if suppression.kind not in IDENTITY_WIDE_SUPPRESSIONS and suppression.contact_point_id != _target_id(subject):
            continue
        if not (matches(rule.channels, request.channel) and matches(rule.purposes, request.purpose)):
            continue
        if rule.waived_by and _has_consent_of(subject, request, policy, rule.waived_by, suppression):
            continue
        if rule.voids_consent_before_since and _has_consent_of(subject, request, policy, None, suppression):
            continue
        out.append(Reason(rule.reason, _suppression_message(suppression),
                          {"suppression_id": suppression.id, "kind": suppression.kind,
                           **({"since": suppression.since} if suppression.since else {}),
                           **({"source": rule.source} if rule.source else {})}))
    return out


def _suppression_message(suppression: SuppressionFact) -> str:
    return {
        "bounce": "the address hard-bounced",
        "complaint": "the person marked a message as spam",
        "dnc_national": "the number is on the National Do Not Call Registry",
        "reassigned": "the number was reassigned to someone else",
        "legal_hold": "the person is under a legal hold",
        "litigator": "the person is on a litigator list",
    }.get(suppression.kind, f"suppressed ({suppression.kind})")


def _has_consent_of(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy, minimum: str | None,
                    suppression: SuppressionFact) -> bool:
    """A valid consent strong enough to lift a suppression (or, for a reassigned number, any given since)."""
    for consent in _valid(subject, request, policy):
        if minimum is not None and policy.rank(consent.consent_type) >= policy.rank(minimum):
            return True
        if minimum is None and suppression.since is not None and consent.captured_at >= suppression.since:
            return True
    return False


def _target_id(subject: Subject) -> int | None:
    """The contact point a send goes to; None for a channel that reaches the person (the only
    case ``decide`` goes on without a target)."""
    return subject.target.id if subject.target is not None else None


def _statements(subject: Subject, request: EligibilityRequest) -> list[ConsentFact]:
    """Every consent event on the target address (none: the person's own) for this channel and
    purpose that covers the brand, recorded by the time of the send."""
    target = _target_id(subject)
    return [c for c in subject.consents
            if c.contact_point_id == target and c.channel == request.channel
            and c.purpose == request.purpose and c.recorded_at <= request.at
            and (c.brand is None or label_key(c.brand) == label_key(request.brand))]


def _candidates(subject: Subject, request: EligibilityRequest) -> list[ConsentFact]:
    """The current consents among ``_statements``: the latest per contact point, channel,
    purpose and brand."""
    return list(current_consents(_statements(subject, request)).values())


def _void(consent: ConsentFact, subject: Subject, policy: LoadedPolicy, at: datetime) -> bool:
    """A consent captured before its number was reassigned belongs to someone else."""
    for suppression in subject.suppressions:
        rule = policy.policy.suppressions.get(suppression.kind)
        if (rule is not None and rule.voids_consent_before_since and suppression.since is not None
                and suppression.contact_point_id == consent.contact_point_id
                and _in_force(suppression.lifted_at, suppression.created_at, at)
                and consent.captured_at < suppression.since):
            return True
    return False


def _valid(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> list[ConsentFact]:
    return [c for c in _candidates(subject, request)
            if not is_expired(c, request.at) and not _void(c, subject, policy, request.at)]


def _consent(subject: Subject, request: EligibilityRequest,
             policy: LoadedPolicy) -> tuple[ConsentFact | None, list[Reason]]:
    if _undecidable(subject, request, policy):
        return None, []
    valid = sorted(_valid(subject, request, policy), key=lambda c: (policy.rank(c.consent_type), c.captured_at),
                   reverse=True)
    best = valid[0] if valid else None
    requirement = policy.requirement(request.channel, request.purpose)
    if requirement is None:
        return best, [Reason(ReasonCode.NO_CONSENT, f"the policy has no consent rule for {request.channel} "
                             f"{request.purpose}: the gate says no")]
    reasons: list[Reason] = []
    minimum = requirement.minimum
    if request.purpose == policy.policy.repermission.purpose:
        sent = repermission_touches(policy, subject.touches, request.asked)
        if sent >= policy.policy.repermission.max_touches:
            reasons.append(Reason(ReasonCode.REPERMISSION_ONLY, f"the re-permission touch was already used "
                                  f"({sent} of {policy.policy.repermission.max_touches})", {"touches": sent}))
    if minimum == NO_CONSENT_NEEDED:
        return best, reasons
    data = {"required": minimum, **({"source": requirement.source} if requirement.source else {})}
    if best is not None and policy.rank(best.consent_type) >= policy.rank(minimum):
        return best, reasons
    if best is not None and best.consent_type == "uncertain":
        reasons.append(Reason(ReasonCode.REPERMISSION_ONLY, "consent of uncertain provenance allows only a "
                              f"{policy.policy.repermission.purpose} touch", data | {"consent_id": best.id}))
    elif best is not None:
        reasons.append(Reason(ReasonCode.CONSENT_INSUFFICIENT, f"{best.consent_type} consent does not meet the "
                              f"required {minimum}", data | {"consent_id": best.id, "consent_type": best.consent_type}))
    elif any(is_expired(c, request.at) for c in _candidates(subject, request)):
        reasons.append(Reason(ReasonCode.CONSENT_EXPIRED, "the consent has expired", data))
    else:
        reasons.append(Reason(ReasonCode.NO_CONSENT, f"no {minimum} consent for {request.channel} "
                              f"{request.purpose} on this address", data))
    return None, reasons


def _undecidable(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> bool:
    """Nothing further to weigh: ``_standing_reasons`` has denied already (nobody, no such
    channel, no address for a channel that needs one)."""
    channel = policy.channels.get(request.channel)
    return subject.identity is None or channel is None or (subject.target is None and channel.kind is not None)


Place = tuple[tuple[Window, ...], frozenset[str]]


def _place(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy) -> Place:
    """Where the recipient is, for the time-bound rules: the calling windows and the states."""
    states = recipient_states(subject.identity, subject.target)
    windows = applicable_windows(policy, request.channel, request.purpose, subject.identity, subject.target, states)
    return windows, states


def _timed_reasons(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy, at: datetime,
                   place: Place, describe: bool = True) -> list[Limit]:
    """Rules that waiting cures: calling windows, caps and cadences, judged at ``at``.

    ``describe=False`` leaves the calling-window messages empty: searching for the next allowed
    instant needs only which rules still deny and until when.
    """
    if _undecidable(subject, request, policy):
        return []
    windows, states = place
    out = list(_window_limits(windows, at, describe))
    out += cap_limits(policy, request, at, subject.touches, subject.account_touches, states)
    cadence = cadence_limit(policy, request, at, subject.touches)
    if cadence is not None:
        out.append(cadence)
    return out


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@lru_cache(maxsize=4096)
def _window_limits(windows: tuple[Window, ...], at: datetime, describe: bool) -> tuple[Limit, ...]:
    """The calling windows closed at ``at``, as limits.

    Whether a window is open changes only at whole minutes (nearly always: ``steady_minute``),
    so the limits are worked out once per minute and placement and cached: every check has an
    instant of its own, and working them out costs more than the rest of the decision. Only the
    recipient's exact local time is the instant's own (cached too: a batch asks at one instant).
    """
    if not windows:
        return ()
    minute = at.astimezone(UTC).replace(second=0, microsecond=0)
    if minute == at or not steady_minute(windows, minute):
        return _limits_at(windows, at, describe)
    limits = _limits_at(windows, minute, describe)
    if not describe:
        return limits
    return tuple(Limit(limit.code, limit.message, limit.next_allowed_at, MappingProxyType(
        {**limit.data, "local_time": at.astimezone(ZoneInfo(limit.data["zone"])).isoformat()})) for limit in limits)


@lru_cache(maxsize=4096)
def _limits_at(windows: tuple[Window, ...], at: datetime, describe: bool) -> tuple[Limit, ...]:
    """The calling windows closed at ``at``, as limits (formatting the messages costs more than deciding)."""
    closed, opens = windows_at(windows, at)
    if not describe:
        return tuple(Limit(c.window.code, "", opens) for c in closed)
    out = []
    for c in closed:
        where = "federal" if c.window.name == "federal" else c.window.name
        spec, local = c.window.spec, c.local
        # Formatted by hand: strftime is most of the cost of a check outside calling hours.
        out.append(Limit(c.window.code, f"outside the {where} calling window "
                         f"{spec.start.hour:02}:{spec.start.minute:02}-{spec.end.hour:02}:{spec.end.minute:02} "
                         f"at the recipient ({_WEEKDAYS[local.weekday()]} {local.hour:02}:{local.minute:02} "
                         f"{c.zone})", opens,
                         MappingProxyType({"window": where, "local_time": local.isoformat(), "zone": c.zone,
                                           **({"source": spec.source} if spec.source else {})})))
    return tuple(out)


def _settle(subject: Subject, request: EligibilityRequest, policy: LoadedPolicy,
            limits: list[Limit], place: Place) -> datetime | None:
    """The earliest instant at which no time-bound rule denies, if one exists."""
    candidate = request.at
    for _ in range(_MAX_SETTLE_STEPS):
        if not limits:
            return candidate.astimezone(UTC)
        if any(limit.next_allowed_at is None for limit in limits):
            return None
        candidate = max(limit.next_allowed_at for limit in limits if limit.next_allowed_at is not None)
        limits = _timed_reasons(subject, request, policy, candidate, place, describe=False)
    return None
