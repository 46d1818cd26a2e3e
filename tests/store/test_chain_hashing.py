"""The chain's bulk hashing: a template filled with ids hashes exactly like the whole content,
and a fixed shape writes exactly the JSON the encoder writes."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.store import chain

values = st.one_of(st.none(), st.integers(-10**6, 10**6), st.booleans(), st.floats(allow_nan=False),
                   st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
                   st.sampled_from(["%", "%d", "%%s", '"', "\\", f'"id":{-(2**63)}', "{}", "é", "\u2028"]),
                   st.lists(st.text(max_size=3), max_size=2))
keys = st.text(alphabet='abcdefghijklmnop_%"é', min_size=1, max_size=12)
contents = st.dictionaries(keys, values, max_size=12)
ids = st.integers(1, 2**53)


@given(contents, ids, ids, ids)
@settings(max_examples=300)
def test_a_filled_template_hashes_like_the_content(content: dict, event_id: int, identity_id: int,  # type: ignore[type-arg]
                                                    cp_id: int) -> None:
    later = {"id": event_id, "identity_id": identity_id, "contact_point_id": cp_id}
    shape = chain.Shape(chain._CANONICAL, content, tuple(later))
    expected = chain.hash_canonical("consent_event", {**content, **later})
    assert chain.hash_template("consent_event", shape.template(content), later) == expected


@given(contents)
@settings(max_examples=300)
def test_a_shape_writes_what_the_encoder_writes(content: dict) -> None:  # type: ignore[type-arg]
    for encoder in (chain._CANONICAL, chain._PERSONAL):
        assert chain.Shape(encoder, content).encode(content) == encoder.encode(content)


@given(st.text(max_size=20), st.one_of(st.none(), st.text(max_size=40)), st.one_of(st.none(), st.text(max_size=40)))
def test_the_personal_digest_is_the_one_the_chain_began_with(address: str, ip: str | None, agent: str | None) -> None:
    values = {"ip": ip, "user_agent": agent, "address": address}
    payload = json.dumps(values, sort_keys=True)
    assert chain.pii_digest("salt", values) == hashlib.sha256(f"salt|{payload}".encode()).hexdigest()
    # An importer's way, the values in the shape's order: the same digest.
    shape = chain.personal_shape(values)
    assert chain.pii_digest_of(shape, "salt", [values[k] for k in shape.keys]) == chain.pii_digest("salt", values)


def test_a_value_spelled_like_a_slot_is_kept_as_text() -> None:
    tricky = f'"id":{-(2**63)}, %d'
    template = chain.Shape(chain._CANONICAL, ["consent_text"], ("id",)).template({"consent_text": tricky})
    assert chain.hash_template("t", template, {"id": 7}) == chain.hash_canonical("t", {"consent_text": tricky, "id": 7})


def test_the_consent_shape_covers_every_hashed_column() -> None:
    shape = chain.content_shape("consent_event", ("id",))
    assert set(shape.keys) == {*chain.hashed_columns("consent_event"), "pii_digest"} - {"id"}
