"""Loading and validating policies."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from consentgate.core.policy import build, from_canonical, legacy_canonical_json, load_policy, parse_policy
from consentgate.errors import PolicyError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "policies" / "default.yaml"


def _default() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def _parse(data: dict) -> None:
    parse_policy(yaml.safe_dump(data), "test.yaml")


def test_default_policy_loads_with_the_documented_rules() -> None:
    loaded = load_policy(DEFAULT)
    p = loaded.policy
    assert set(p.channels) == {"sms", "voice", "email", "postal", "linkedin"}
    assert p.channels["postal"].kind is None and p.channels["sms"].kind == "phone"
    assert loaded.requirement("postal", "marketing").minimum == "none"
    assert loaded.requirement("sms", "marketing").minimum == "express_written"
    assert loaded.requirement("voice", "marketing").minimum == "express_written"
    assert loaded.requirement("sms", "informational").minimum == "express"
    assert loaded.requirement("email", "marketing").minimum == "none"
    assert loaded.rank("express_written") > loaded.rank("express") > loaded.rank("uncertain")
    assert p.quiet_hours.federal.start.hour == 8 and p.quiet_hours.federal.end.hour == 21
    assert p.quiet_hours.states["CT"].start.hour == 9
    assert {"FL", "OK", "MD", "WA"} <= set(p.quiet_hours.states)
    assert loaded.deadline_business_days("sms") == 10
    assert p.consent_types["express_written"].requires_proof


def test_every_regulatory_rule_cites_its_source() -> None:
    p = load_policy(DEFAULT).policy
    assert p.quiet_hours.federal.source == "47 CFR 64.1200(c)(1)"
    assert all(w.source for w in p.quiet_hours.states.values())
    # A rule no regulation asks for says why it is there instead.
    assert all(r.source or r.description for r in p.consent_requirements if r.minimum != "uncertain")
    assert all(d.source for d in p.revocation.deadlines.values())
    assert p.sms.keywords.source


def test_version_is_the_hash_of_the_content_not_the_formatting() -> None:
    text = DEFAULT.read_text()
    reformatted = yaml.safe_dump(yaml.safe_load(text), sort_keys=False, default_flow_style=True, width=60)
    assert parse_policy(text).version == parse_policy(reformatted).version
    changed = _default()
    changed["reservations"]["ttl"] = "20m"
    assert parse_policy(yaml.safe_dump(changed)).version != parse_policy(text).version


def test_the_order_of_the_consent_types_is_content_and_survives_storage() -> None:
    # Consent types rank from strongest to weakest as listed: listed in another order, "express"
    # would meet a requirement of "express_written". Stored canonical content once sorted them.
    written = parse_policy(DEFAULT.read_text())
    alphabetical = parse_policy(yaml.safe_dump(_default(), sort_keys=True))
    assert list(alphabetical.policy.consent_types) != list(written.policy.consent_types)
    assert alphabetical.version != written.version
    assert alphabetical.rank("express") > alphabetical.rank("express_written")
    assert written.rank("express_written") > written.rank("express")
    stored = from_canonical(written.canonical)
    assert stored is not None and list(stored.consent_types) == list(written.policy.consent_types)
    assert build(stored).version == written.version
    # Content stored the old way cannot tell the ranking.
    assert from_canonical(legacy_canonical_json(written.policy)) is None


def test_two_cadences_for_one_segment_are_refused() -> None:
    data = _default()
    name, cadence = next(iter(data["segment_cadences"].items()))
    data["segment_cadences"][f" {name.upper()}"] = cadence
    with pytest.raises(PolicyError, match=rf"segment_cadences\. {name.upper()}: the same segment as '{name}'"):
        parse_policy(yaml.safe_dump(data, sort_keys=False), "test.yaml")


def test_purposes_whose_opt_out_stops_re_permission_must_exist() -> None:
    data = _default()
    data["repermission"]["revoked_with"] = ["marketting"]
    with pytest.raises(PolicyError, match=r"repermission.revoked_with.0: unknown purpose 'marketting'"):
        _parse(data)
    # Left out, the list names marketing, which a policy calling it something else simply lacks.
    data = _default()
    del data["repermission"]["revoked_with"]
    assert parse_policy(yaml.safe_dump(data)).policy.repermission.revoked_with == ["marketing"]
    renamed = parse_policy(yaml.safe_dump(data).replace("marketing", "promotions"))
    assert "marketing" not in renamed.policy.purposes


def test_bad_yaml_names_the_file_and_line() -> None:
    with pytest.raises(PolicyError, match=r"broken\.yaml: not valid YAML \(line \d+"):
        parse_policy("name: x\nchannels: [sms\n", "broken.yaml")


def test_unknown_channel_in_a_cap_names_the_path() -> None:
    data = _default()
    data["fatigue_caps"][1]["channels"] = ["fax"]
    with pytest.raises(PolicyError, match=r"test\.yaml: fatigue_caps\.1\.channels\.0: unknown channel 'fax'"):
        _parse(data)


def test_negative_window_is_refused() -> None:
    data = _default()
    data["fatigue_caps"][0]["window"] = "-24h"
    with pytest.raises(PolicyError, match=r"fatigue_caps\.0\.window: .*negative"):
        _parse(data)


def test_unknown_timezone_is_refused() -> None:
    data = _default()
    data["revocation"]["calendar"]["timezone"] = "Mars/Olympus_Mons"
    with pytest.raises(PolicyError, match=r"revocation\.calendar\.timezone: unknown timezone"):
        _parse(data)


def test_overlapping_keyword_families_are_refused() -> None:
    data = _default()
    data["sms"]["keywords"]["opt_in"].append("stop")
    with pytest.raises(PolicyError, match=r"sms\.keywords: keyword 'stop' is in two families"):
        _parse(data)


@pytest.mark.parametrize("text", ["confirmation_text", "help_text", "opt_in_text"])
def test_an_empty_reply_text_is_refused(text: str) -> None:
    data = _default()
    data["sms"][text] = ""
    with pytest.raises(PolicyError, match=rf"sms\.{text}: "):
        _parse(data)


def test_window_that_ends_before_it_starts_is_refused() -> None:
    data = _default()
    data["quiet_hours"]["states"]["FL"]["end"] = "07:00"
    with pytest.raises(PolicyError, match=r"quiet_hours\.states\.FL"):
        _parse(data)


def test_unknown_field_is_refused() -> None:
    data = _default()
    data["quiet_hours"]["federal"]["strat"] = "08:00"
    with pytest.raises(PolicyError, match=r"quiet_hours\.federal\.strat"):
        _parse(data)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot be read"):
        load_policy(tmp_path / "nope.yaml")


def test_requirement_on_unknown_consent_type_is_refused() -> None:
    data = _default()
    data["consent_requirements"][0]["minimum"] = "telepathic"
    with pytest.raises(PolicyError, match=r"consent_requirements\.0\.minimum: unknown consent type"):
        _parse(data)


def test_default_policy_classifies_the_reply_corpus_like_the_built_in_rules() -> None:
    import csv

    from consentgate.core.keywords import DEFAULT_US_KEYWORDS, classify

    rules = load_policy(DEFAULT).keyword_rules
    with (ROOT / "tests" / "data" / "sms_replies.csv").open(encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    assert len(texts) > 300
    differing = [t for t in texts if classify(t, rules).intent != classify(t, DEFAULT_US_KEYWORDS).intent]
    assert differing == []
