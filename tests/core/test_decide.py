"""decide(): every rule of the gate over plain facts, and the invariants that must never break."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.core.eligibility import decide
from consentgate.core.facts import (
    ConsentFact,
    ContactPointFact,
    EligibilityRequest,
    IdentityFact,
    RevocationFact,
    Subject,
    SuppressionFact,
    TouchFact,
)
from consentgate.core.policy import LoadedPolicy, build
from consentgate.core.reasons import ReasonCode

NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)         # Wednesday 12:00 in New York
PHONE = ContactPointFact(id=10, identity_id=1, kind="phone", value="+12125550100")   # New York
EMAIL = ContactPointFact(id=11, identity_id=1, kind="email", value="pat@corp.com")
PERSON = IdentityFact(id=1, account_domain="corp.com")


def consent(channel: str = "sms", purpose: str = "marketing", kind: str = "express_written", cp: int | None = 10,
            captured: datetime = NOON_NY - timedelta(days=30), cid: int = 1, **extra: object) -> ConsentFact:
    return ConsentFact(id=cid, contact_point_id=cp, channel=channel, purpose=purpose, consent_type=kind,
                       captured_at=captured, source="web_form", recorded_at=captured,
                       proof_uri="https://proof.example.com/1", **extra)  # type: ignore[arg-type]


def revocation(channels: tuple[str, ...] = ("sms",), purposes: tuple[str, ...] = ("*",), rid: int = 1,
               received: datetime = NOON_NY - timedelta(days=1), brands: tuple[str, ...] = ("*",),
               **extra: object) -> RevocationFact:
    return RevocationFact(id=rid, identity_id=1, scope="identity", channels=channels, purposes=purposes,
                          brands=brands, received_at=received, effective_at=received, source="sms_keyword",
                          **extra)  # type: ignore[arg-type]


def touch(at: datetime, tid: int = 1, **extra: object) -> TouchFact:
    fields = {"channel": "sms", "purpose": "marketing", "state": "sent"} | extra
    return TouchFact(id=tid, identity_id=1, at=at, **fields)  # type: ignore[arg-type]


def subject(target: ContactPointFact = PHONE, **facts: object) -> Subject:
    return Subject(identity=PERSON, target=target, contact_points=(PHONE, EMAIL), **facts)  # type: ignore[arg-type]


def ask(s: Subject, policy: LoadedPolicy, channel: str = "sms", purpose: str = "marketing",
        at: datetime = NOON_NY, **extra: object) -> set[ReasonCode]:
    decision = decide(s, EligibilityRequest(channel=channel, purpose=purpose, at=at, **extra), policy)  # type: ignore[arg-type]
    assert decision.allowed == (not decision.reasons)
    return set(decision.codes)


def test_consent_rules(policy: LoadedPolicy) -> None:
    assert ask(Subject(identity=None, target=None), policy) == {ReasonCode.UNKNOWN_IDENTITY}
    assert ask(subject(), policy) == {ReasonCode.NO_CONSENT}
    assert ask(subject(consents=(consent(),)), policy) == set()
    assert ask(subject(consents=(consent(kind="express"),)), policy) == {ReasonCode.CONSENT_INSUFFICIENT}
    expired = consent(expires_at=NOON_NY - timedelta(seconds=1))
    assert ask(subject(consents=(expired,)), policy) == {ReasonCode.CONSENT_EXPIRED}
    # Consent is per address and channel: an email consent does not allow a text.
    assert ask(subject(consents=(consent(channel="email", cp=11),)), policy) == {ReasonCode.NO_CONSENT}
    # Email marketing is opt-out based; transactional needs no consent.
    assert ask(subject(target=EMAIL), policy, channel="email") == set()
    assert ask(subject(), policy, purpose="transactional") == set()


def test_latest_consent_wins(policy: LoadedPolicy) -> None:
    weaker_later = consent(kind="express", captured=NOON_NY - timedelta(days=1), cid=2)
    assert ask(subject(consents=(consent(), weaker_later)), policy) == {ReasonCode.CONSENT_INSUFFICIENT}


def test_uncertain_consent_allows_one_repermission_touch(policy: LoadedPolicy) -> None:
    uncertain = (consent(kind="uncertain"), consent(kind="uncertain", purpose="repermission", cid=2))
    assert ask(subject(consents=uncertain), policy) == {ReasonCode.REPERMISSION_ONLY}
    assert ask(subject(consents=uncertain), policy, purpose="repermission") == set()
    used = subject(consents=uncertain, touches=(touch(NOON_NY - timedelta(days=2), purpose="repermission"),))
    assert ask(used, policy, purpose="repermission") == {ReasonCode.REPERMISSION_ONLY}


def test_revocations_by_scope(policy: LoadedPolicy) -> None:
    consents = (consent(), consent(purpose="transactional", cid=2))
    marketing_only = subject(consents=consents, revocations=(revocation(purposes=("marketing",)),))
    assert ask(marketing_only, policy) == {ReasonCode.REVOKED}
    assert ask(marketing_only, policy, purpose="transactional") == set()
    everything = subject(consents=consents, revocations=(revocation(channels=("*",)),))
    assert ask(everything, policy, purpose="transactional") == {ReasonCode.REVOKED}
    # A STOP stops the person: email through the same identity-wide scope when it names email.
    assert ask(subject(target=EMAIL, revocations=(revocation(channels=("*",)),)), policy, channel="email") == {
        ReasonCode.REVOKED}
    account = RevocationFact(id=9, identity_id=77, scope="account", channels=("*",), purposes=("*",),
                             brands=("*",), received_at=NOON_NY, effective_at=NOON_NY, source="manual",
                             account_domain="corp.com")
    assert ask(subject(target=EMAIL, revocations=(account,)), policy, channel="email") == {ReasonCode.ACCOUNT_DNC}
    # Another company's stop is not this person's; a stop the person made holds for them whatever
    # company they are at now (a merge may have left them with the survivor's).
    elsewhere = replace(account, account_domain="other.org")
    assert ask(subject(target=EMAIL, revocations=(elsewhere,)), policy, channel="email") == set()
    moved = subject(target=EMAIL, revocations=(replace(elsewhere, identity_id=1),))
    assert ask(moved, policy, channel="email") == {ReasonCode.ACCOUNT_DNC}
    absorbed = replace(subject(target=EMAIL, revocations=(elsewhere,)), identity=replace(PERSON, merged_ids=(77,)))
    assert ask(absorbed, policy, channel="email") == {ReasonCode.ACCOUNT_DNC}
    lifted = revocation(lifted_at=NOON_NY - timedelta(hours=1))
    assert ask(subject(consents=consents, revocations=(lifted,)), policy) == set()


def test_an_opt_out_of_marketing_stops_re_permission_touches(policy: LoadedPolicy) -> None:
    # Asking someone who unsubscribed from marketing to confirm their consent is marketing again.
    unsubscribed = revocation(channels=("email",), purposes=("marketing",))
    uncertain = consent(channel="email", purpose="repermission", kind="uncertain", cp=11)
    asked = subject(target=EMAIL, consents=(uncertain,), revocations=(unsubscribed,))
    assert ask(asked, policy, channel="email", purpose="repermission") == {ReasonCode.REVOKED}
    assert ask(replace(asked, revocations=()), policy, channel="email", purpose="repermission") == set()
    informational = replace(unsubscribed, purposes=("informational",))
    assert ask(replace(asked, revocations=(informational,)), policy, channel="email", purpose="repermission") == set()


def test_only_a_later_proven_opt_in_undoes_a_revocation(policy: LoadedPolicy) -> None:
    stop = revocation(received=NOON_NY - timedelta(days=5))
    old = consent(captured=NOON_NY - timedelta(days=30))
    assert ask(subject(consents=(old,), revocations=(stop,)), policy) == {ReasonCode.REVOKED}
    fresh = consent(captured=NOON_NY - timedelta(days=1), cid=2)
    assert ask(subject(consents=(old, fresh), revocations=(stop,)), policy) == set()
    unproven = replace(fresh, proof_uri=None, consent_type="express")
    assert ReasonCode.REVOKED in ask(subject(consents=(old, unproven), revocations=(stop,)), policy)
    tomb = revocation(tombstone=True)
    assert ask(subject(consents=(old,), revocations=(tomb,)), policy) == {ReasonCode.DNC_INTERNAL}


def test_brands_compare_in_any_spelling(policy: LoadedPolicy) -> None:
    # Brand names come from every system a company runs: an opt-out from "Acme" stops "acme".
    stop = revocation(brands=("Acme",))
    for spelling in ("Acme", "acme", " ACME "):
        assert ask(subject(consents=(consent(),), revocations=(stop,)), policy, brand=spelling) == {ReasonCode.REVOKED}
    assert ask(subject(consents=(consent(),), revocations=(stop,)), policy, brand="Globex") == set()
    # A consent given to "ACME" is a consent to "Acme"; the latest statement wins across spellings.
    branded = consent(brand="ACME", cid=2)
    assert ask(subject(consents=(branded,)), policy, brand="acme") == set()
    weaker = replace(branded, id=3, brand="acme", consent_type="express", proof_uri=None,
                     captured_at=branded.captured_at + timedelta(days=1))
    assert ask(subject(consents=(branded, weaker)), policy, brand="Acme") == {ReasonCode.CONSENT_INSUFFICIENT}


def test_a_later_crm_record_does_not_take_a_proven_opt_in_back(policy: LoadedPolicy) -> None:
    # Found by random sequences of opt-outs and consents: only the latest statement was looked
    # at, so a CRM sync after the person's proven opt-in brought their old opt-out back.
    stop = revocation(channels=("email",), received=NOON_NY - timedelta(days=5))
    opted_in = consent(channel="email", kind="double_opt_in", cp=11, captured=NOON_NY - timedelta(days=3), cid=2)
    crm = replace(opted_in, id=3, proof_uri=None, consent_type="implied_ebr", source="crm_import",
                  captured_at=NOON_NY - timedelta(days=1), recorded_at=NOON_NY - timedelta(days=1))
    assert ask(subject(target=EMAIL, consents=(opted_in, crm), revocations=(stop,)), policy, channel="email") == set()
    # An opt-in made before the number changed hands was the previous owner's: it undoes nothing.
    sms_stop = revocation(received=NOON_NY - timedelta(days=5))
    sms_opt_in = consent(captured=NOON_NY - timedelta(days=3), cid=4)
    handed_over = SuppressionFact(id=9, kind="reassigned", contact_point_id=10, identity_id=1,
                                  created_at=NOON_NY - timedelta(days=2), since=NOON_NY - timedelta(days=2))
    assert ReasonCode.REVOKED in ask(subject(consents=(sms_opt_in,), revocations=(sms_stop,),
                                             suppressions=(handed_over,)), policy)


def test_suppressions(policy: LoadedPolicy) -> None:
    at = NOON_NY - timedelta(days=3)
    dnc = SuppressionFact(id=1, kind="dnc_national", contact_point_id=10, identity_id=1, created_at=at)
    assert ask(subject(consents=(consent(),), suppressions=(dnc,)), policy) == set()   # waived by written consent
    express = consent(kind="express", purpose="marketing")
    assert ReasonCode.DNC_NATIONAL in ask(subject(consents=(express,), suppressions=(dnc,)), policy)
    reassigned = SuppressionFact(id=2, kind="reassigned", contact_point_id=10, identity_id=1, created_at=at,
                                 since=at)
    assert ask(subject(consents=(consent(),), suppressions=(reassigned,)), policy) == {
        ReasonCode.REASSIGNED_NUMBER, ReasonCode.NO_CONSENT}
    new_owner = consent(captured=at + timedelta(hours=1), cid=3)
    assert ask(subject(consents=(consent(), new_owner), suppressions=(reassigned,)), policy) == set()
    hold = SuppressionFact(id=3, kind="legal_hold", contact_point_id=None, identity_id=1, created_at=at)
    assert ask(subject(target=EMAIL, suppressions=(hold,)), policy, channel="email") == {ReasonCode.LEGAL_HOLD}
    bounce = SuppressionFact(id=4, kind="bounce", contact_point_id=11, identity_id=1, created_at=at)
    assert ask(subject(target=EMAIL, suppressions=(bounce,)), policy, channel="email") == {
        ReasonCode.SUPPRESSED_BOUNCE}
    assert ask(subject(consents=(consent(),), suppressions=(bounce,)), policy) == set()
    complaint = SuppressionFact(id=5, kind="complaint", contact_point_id=11, identity_id=1, created_at=at)
    assert ask(subject(target=EMAIL, suppressions=(complaint,)), policy, channel="email") == {
        ReasonCode.SUPPRESSED_COMPLAINT}
    # The policy's complaint rule spares transactional mail (a receipt still goes out).
    assert ask(subject(target=EMAIL, suppressions=(complaint,)), policy, channel="email",
               purpose="transactional") == set()


def test_quiet_hours_in_every_zone_of_a_number(policy: LoadedPolicy) -> None:
    alaska = ContactPointFact(id=12, identity_id=1, kind="phone", value="+19075550100")
    s = Subject(identity=IdentityFact(id=1), target=alaska, consents=(consent(cp=12),))
    # 08:30 in Anchorage is 07:30 on Adak: not yet inside the window everywhere.
    at = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)
    decision = decide(s, EligibilityRequest("sms", "marketing", at), policy)
    assert decision.codes == {ReasonCode.QUIET_HOURS}
    assert decision.next_allowed_at == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert decide(s, EligibilityRequest("sms", "marketing", decision.next_allowed_at), policy).allowed


def test_each_policy_judges_by_its_own_calling_window(policy: LoadedPolicy) -> None:
    # People placed alike share their windows; two policies served one after the other (a
    # reload) must not share them: 09:00 in New York is inside 08:00-21:00, outside 10:00-21:00.
    quiet = policy.policy.quiet_hours
    later = build(policy.policy.model_copy(update={"quiet_hours": quiet.model_copy(
        update={"federal": quiet.federal.model_copy(update={"start": time(10, 0)})})}))
    s = subject(consents=(consent(),))
    nine = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    for _ in range(2):
        assert ask(s, policy, at=nine) == set()
        assert ask(s, later, at=nine) == {ReasonCode.QUIET_HOURS}


def test_known_timezone_comes_first_and_state_rules_stack(policy: LoadedPolicy) -> None:
    person = IdentityFact(id=1, timezone="America/Los_Angeles", state="FL")
    s = Subject(identity=person, target=PHONE, consents=(consent(),))
    # 20:30 in New York is 17:30 in Los Angeles, where this person is.
    assert decide(s, EligibilityRequest("sms", "marketing", datetime(2026, 11, 26, 1, 30, tzinfo=UTC)),
                  policy).allowed
    # 20:30 Los Angeles: inside the federal window, outside Florida's 20:00 close.
    late = decide(s, EligibilityRequest("sms", "marketing", datetime(2026, 11, 26, 4, 30, tzinfo=UTC)), policy)
    assert late.codes == {ReasonCode.STATE_RULE}


def test_sunday_states(policy: LoadedPolicy) -> None:
    person = IdentityFact(id=1, state="AL", timezone="America/Chicago")
    s = Subject(identity=person, target=PHONE, consents=(consent(),))
    sunday = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    decision = decide(s, EligibilityRequest("sms", "marketing", sunday), policy)
    assert decision.codes == {ReasonCode.STATE_RULE}
    assert decision.next_allowed_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_state_cap_counts_texts_and_calls_together(policy: LoadedPolicy) -> None:
    florida = ContactPointFact(id=10, identity_id=1, kind="phone", value="+13055550100")
    touches = (touch(NOON_NY - timedelta(hours=5), 1), touch(NOON_NY - timedelta(hours=3), 2, channel="voice"),
               touch(NOON_NY - timedelta(hours=1), 3))
    s = Subject(identity=PERSON, target=florida, consents=(consent(),), touches=touches)
    decision = decide(s, EligibilityRequest("sms", "marketing", NOON_NY), policy)
    assert decision.codes == {ReasonCode.STATE_RULE}
    # The oldest touch leaves the 24 h window at 07:00 in Miami; the calling window opens at 08:00.
    assert decision.next_allowed_at == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def test_segment_cadence(policy: LoadedPolicy) -> None:
    base = subject(target=EMAIL)
    first = NOON_NY - timedelta(days=1)
    two = (touch(first, 1, channel="email", segment="no_show"),
           touch(first + timedelta(hours=1), 2, channel="email", segment="no_show"))
    decision = decide(replace(base, touches=two), EligibilityRequest("email", "marketing", NOON_NY,
                                                                     segment="no_show"), policy)
    assert decision.codes == {ReasonCode.SEGMENT_CADENCE}
    assert decision.next_allowed_at == first + timedelta(days=7)


def test_a_reservation_for_a_later_send_holds_its_slot(policy: LoadedPolicy) -> None:
    # Asked at noon about a send at one o'clock, a reservation held at noon counts then, even
    # one whose time to live ends before one o'clock: it may be confirmed before it runs out.
    later = NOON_NY + timedelta(hours=1)
    held = (touch(NOON_NY - timedelta(days=1), 1, channel="email", program="reactivation"),
            touch(later, 2, channel="email", program="reactivation", state="reserved",
                  expires_at=NOON_NY + timedelta(minutes=15)))
    asked = EligibilityRequest("email", "marketing", later, program="reactivation", asked_at=NOON_NY)
    assert decide(subject(target=EMAIL, touches=held), asked, policy).codes == {ReasonCode.FATIGUE_CAP}
    # Once it has run out unconfirmed, the slot is free again.
    lapsed = replace(asked, asked_at=NOON_NY + timedelta(minutes=15))
    assert decide(subject(target=EMAIL, touches=held), lapsed, policy).allowed


def test_a_blank_brand_is_no_brand_to_a_revocation(policy: LoadedPolicy) -> None:
    # A send that names no brand may be for any brand: a brand-scoped opt-out stops it, blank or not.
    stop = revocation(brands=("Acme",))
    for blank in (None, "", " "):
        assert ask(subject(consents=(consent(),), revocations=(stop,)), policy, brand=blank) == {ReasonCode.REVOKED}


def test_a_per_account_cap_counts_the_persons_own_touches(policy: LoadedPolicy) -> None:
    cap = {"name": "company_daily", "channels": ["email"], "max": 1, "window": "1d", "per": "account"}
    per_company = build(policy.policy.model_validate(
        {**policy.policy.model_dump(mode="json"), "fatigue_caps": [cap]}))
    own = (touch(NOON_NY - timedelta(hours=2), 1, channel="email"),)
    # Someone with no company (a free-mail address) is a company of one.
    alone = replace(subject(target=EMAIL, touches=own), identity=replace(PERSON, account_domain=None))
    assert ask(alone, per_company, channel="email") == {ReasonCode.FATIGUE_CAP}
    # A touch made while the person was at another company is still theirs.
    moved = subject(target=EMAIL, touches=own, account_touches=())
    assert ask(moved, per_company, channel="email") == {ReasonCode.FATIGUE_CAP}
    colleague = replace(own[0], id=2, identity_id=2)
    assert ask(subject(target=EMAIL, account_touches=(colleague,)), per_company, channel="email") == {
        ReasonCode.FATIGUE_CAP}
    assert ask(subject(target=EMAIL), per_company, channel="email") == set()


def test_no_next_allowed_at_when_the_consent_lapses_before_the_wait_ends(policy: LoadedPolicy) -> None:
    late = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)            # 22:00 in New York: the window opens at 08:00
    lapsing = consent(expires_at=datetime(2026, 11, 26, 6, 0, tzinfo=UTC))
    decision = decide(subject(consents=(lapsing,)), EligibilityRequest("sms", "marketing", late), policy)
    assert decision.codes == {ReasonCode.QUIET_HOURS} and decision.next_allowed_at is None
    lasting = replace(lapsing, expires_at=datetime(2026, 12, 26, tzinfo=UTC))
    decision = decide(subject(consents=(lasting,)), EligibilityRequest("sms", "marketing", late), policy)
    assert decision.next_allowed_at == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def test_programs_and_segments_compare_in_any_spelling(policy: LoadedPolicy) -> None:
    # A sender writing "Reactivation" or "No_Show " is held to the same caps and cadences.
    base = subject(target=EMAIL)
    first = NOON_NY - timedelta(days=1)
    two = (touch(first, 1, channel="email", program="Reactivation"),
           touch(first + timedelta(hours=1), 2, channel="sms", program="reactivation "))
    capped = decide(replace(base, touches=two), EligibilityRequest("email", "marketing", NOON_NY,
                                                                   program="REACTIVATION"), policy)
    assert capped.codes == {ReasonCode.FATIGUE_CAP}
    shown = (touch(first, 1, channel="email", segment="no_show"),
             touch(first + timedelta(hours=1), 2, channel="email", segment="No_Show"))
    paced = decide(replace(base, touches=shown), EligibilityRequest("email", "marketing", NOON_NY,
                                                                    segment="NO_SHOW "), policy)
    assert paced.codes == {ReasonCode.SEGMENT_CADENCE}
    assert paced.next_allowed_at == first + timedelta(days=7)
    assert paced.reasons[0].data["segment"] == "no_show"


# -- invariants ---------------------------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
channels = st.sampled_from(["sms", "voice", "email", "postal", "linkedin"])
purposes = st.sampled_from(["marketing", "informational", "transactional", "repermission"])


@st.composite
def subjects(draw: st.DrawFn) -> Subject:
    at = draw(instants)
    kinds = st.sampled_from(["express_written", "express", "implied_ebr", "double_opt_in", "uncertain"])
    consents = tuple(
        consent(channel=draw(channels), purpose=draw(purposes), kind=draw(kinds),
                cp=draw(st.sampled_from([10, 11, None])), captured=at - timedelta(days=draw(st.integers(1, 400))),
                cid=i, expires_at=draw(st.none() | st.integers(-48, 96).map(lambda h: at + timedelta(hours=h))))
        for i in range(draw(st.integers(0, 6))))
    touches = tuple(touch(at - timedelta(hours=draw(st.integers(0, 24 * 20))), i, channel=draw(channels),
                          purpose=draw(purposes), program=draw(st.sampled_from([None, "reactivation"])),
                          segment=draw(st.sampled_from([None, "stalled", "no_show", "churned"])),
                          state=draw(st.sampled_from(["sent", "reserved", "released"])),
                          expires_at=at + timedelta(minutes=5))
                    for i in range(draw(st.integers(0, 8))))
    person = IdentityFact(id=1, account_domain="corp.com", timezone=draw(st.sampled_from(
        [None, "America/New_York", "America/Denver", "Pacific/Honolulu"])), state=draw(st.sampled_from(
        [None, "FL", "AL", "RI", "TX"])))
    target = draw(st.sampled_from([PHONE, EMAIL, None]))   # None: a channel that reaches the person
    return Subject(identity=person, target=target, contact_points=(PHONE, EMAIL), consents=consents,
                   touches=touches)


def _request(draw_at: datetime, channel: str, purpose: str, segment: str | None = None) -> EligibilityRequest:
    return EligibilityRequest(channel=channel, purpose=purpose, at=draw_at, program="reactivation", segment=segment)


def _for(s: Subject, channel: str) -> str:
    """A channel that goes where the subject's target is (no target: postal or LinkedIn)."""
    if s.target is None:
        return channel if channel in ("postal", "linkedin") else "postal"
    if s.target is EMAIL:
        return "email"
    return channel if channel in ("sms", "voice") else "sms"


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(subjects(), channels, purposes, instants)
@SETTINGS
def test_revoked_address_is_never_allowed(policy: LoadedPolicy, s: Subject, channel: str, purpose: str,
                                          at: datetime) -> None:
    channel = _for(s, channel)
    # Every consent predates the revocation: nothing can undo it.
    stop = revocation(channels=("*",), received=at + timedelta(days=0) - timedelta(seconds=1))
    decision = decide(replace(s, revocations=(stop,)), _request(at, channel, purpose), policy)
    assert not decision.allowed and ReasonCode.REVOKED in decision.codes


@given(subjects(), channels, purposes, instants, st.sampled_from(["legal_hold", "litigator"]))
@SETTINGS
def test_suppressed_person_is_never_allowed(policy: LoadedPolicy, s: Subject, channel: str, purpose: str,
                                            at: datetime, kind: str) -> None:
    hold = SuppressionFact(id=1, kind=kind, contact_point_id=None, identity_id=1, created_at=at - timedelta(days=1))
    assert not decide(replace(s, suppressions=(hold,)), _request(at, _for(s, channel), purpose), policy).allowed


@given(subjects(), channels, instants)
@SETTINGS
def test_marketing_only_revocation_never_stops_transactional(policy: LoadedPolicy, s: Subject, channel: str,
                                                             at: datetime) -> None:
    channel = _for(s, channel)
    marketing = revocation(channels=("*",), purposes=("marketing",), received=at - timedelta(days=1))
    before = decide(s, _request(at, channel, "transactional"), policy)
    after = decide(replace(s, revocations=(marketing,)), _request(at, channel, "transactional"), policy)
    assert before.allowed == after.allowed and ReasonCode.REVOKED not in after.codes


@given(subjects(), channels, purposes, instants, st.integers(0, 24 * 10),
       st.sampled_from([None, "stalled", "no_show"]))
@SETTINGS
def test_adding_a_touch_never_allows_what_was_denied(policy: LoadedPolicy, s: Subject, channel: str, purpose: str,
                                                     at: datetime, hours_ago: int, segment: str | None) -> None:
    channel = _for(s, channel)
    request = _request(at, channel, purpose, segment)
    before = decide(s, request, policy)
    extra = touch(at - timedelta(hours=hours_ago), 999, channel=channel, purpose=purpose, program="reactivation",
                  segment=segment)
    after = decide(replace(s, touches=(*s.touches, extra)), request, policy)
    if not before.allowed:
        assert not after.allowed


@given(subjects(), channels, purposes, instants, st.sampled_from([None, "stalled", "no_show", "churned"]))
@SETTINGS
def test_next_allowed_at_is_allowed(policy: LoadedPolicy, s: Subject, channel: str, purpose: str, at: datetime,
                                    segment: str | None) -> None:
    channel = _for(s, channel)
    decision = decide(s, _request(at, channel, purpose, segment), policy)
    if decision.next_allowed_at is not None:
        assert decision.next_allowed_at >= at
        later = decide(s, _request(decision.next_allowed_at, channel, purpose, segment), policy)
        assert later.allowed, later.reasons


@given(st.integers(1, 6), st.lists(st.integers(0, 24 * 7 - 1), min_size=0, max_size=12), instants)
@SETTINGS
def test_caps_are_never_exceeded(policy: LoadedPolicy, _: int, offsets: list[int], at: datetime) -> None:
    """Granting reservations one at a time never puts more than the cap inside its window."""
    s = subject(target=EMAIL)
    touches: list[TouchFact] = []
    for i, hours in enumerate(sorted(offsets, reverse=True)):
        when = at - timedelta(hours=hours)
        decision = decide(replace(s, touches=tuple(touches)),
                          EligibilityRequest("email", "marketing", when, program="reactivation"), policy)
        if decision.allowed:
            touches.append(touch(when, i, channel="email", program="reactivation"))
    times = sorted(t.at for t in touches)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < timedelta(days=7)) <= 2


@given(st.lists(st.integers(0, 24 * 9), min_size=1, max_size=10), st.integers(1, 60), instants)
@SETTINGS
def test_reservations_for_later_sends_never_exceed_a_cap(policy: LoadedPolicy, hours_ahead: list[int],
                                                          ttl_minutes: int, now: datetime) -> None:
    """Senders asking at one moment about sends at later instants: the reservations they are
    granted never put more than the cap inside a window, whenever those reservations run out."""
    s = subject(target=EMAIL)
    touches: list[TouchFact] = []
    for i, hours in enumerate(hours_ahead):
        when = now + timedelta(hours=hours)
        decision = decide(replace(s, touches=tuple(touches)), EligibilityRequest(
            "email", "marketing", when, program="reactivation", asked_at=now), policy)
        if decision.allowed:
            touches.append(touch(when, i, channel="email", program="reactivation", state="reserved",
                                 expires_at=now + timedelta(minutes=ttl_minutes)))
    times = sorted(t.at for t in touches)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < timedelta(days=7)) <= 2


def test_a_channel_the_policy_turned_off_is_never_allowed() -> None:
    from pathlib import Path

    from consentgate.core.policy import parse_policy

    text = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
    off = parse_policy(text.replace("  voice: {address: phone}", "  voice: {address: phone, enabled: false}"))
    calls = consent(channel="voice")
    assert ask(subject(consents=(calls,)), off, channel="voice") == {ReasonCode.CHANNEL_DISABLED}
    assert ask(subject(consents=(consent(),)), off) == set()   # texts are still on
