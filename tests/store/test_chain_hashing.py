"""The chain's bulk hashing: a template filled with ids hashes exactly like the whole content."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.store import chain

values = st.one_of(st.none(), st.integers(-10**6, 10**6), st.booleans(),
                   st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
                   st.sampled_from(["%", "%d", "%%s", '"', "\\", f'"id":{-(2**63)}', "{}", "é"]))
contents = st.dictionaries(st.text(alphabet="abcdefghijklmnop_", min_size=1, max_size=12), values, max_size=12)
ids = st.integers(1, 2**53)


@given(contents, ids, ids, ids)
@settings(max_examples=300)
def test_a_filled_template_hashes_like_the_content(content: dict, event_id: int, identity_id: int,  # type: ignore[type-arg]
                                                    cp_id: int) -> None:
    later = {"id": event_id, "identity_id": identity_id, "contact_point_id": cp_id}
    template = chain.content_template(content, tuple(later))
    expected = chain.hash_canonical("consent_event", {**content, **later})
    assert chain.hash_template("consent_event", template, later) == expected


def test_a_value_spelled_like_a_slot_is_kept_as_text() -> None:
    tricky = f'"id":{-(2**63)}, %d'
    template = chain.content_template({"consent_text": tricky}, ("id",))
    assert chain.hash_template("t", template, {"id": 7}) == chain.hash_canonical("t", {"consent_text": tricky, "id": 7})
