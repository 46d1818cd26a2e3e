"""Webhook signatures: Twilio, Telnyx, generic HMAC and the outbound ``t=…,v1=…`` header."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from consentgate.core.signatures import (
    generic_signature,
    sign_outbound,
    twilio_signature,
    verify_generic,
    verify_outbound,
    verify_telnyx,
    verify_twilio,
)

# --- Twilio -------------------------------------------------------------------------------------

DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
# The worked example on Twilio's "Webhooks security" page (twilio.com/docs/usage/webhooks/webhooks-security).
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
# twilio-node's own test fixture: same URL and token, other numbers.
NODE_PARAMS = {**DOC_PARAMS, "Caller": "+14158675309", "From": "+14158675309"}
NODE_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def reference_twilio(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """Twilio's steps done by hand on a flat list of (name, value) pairs, sorted as whole pairs."""
    data = url
    for name, value in sorted(pairs):
        data += f"{name}{value}"
    mac = hmac.HMAC(token.encode("utf-8"), digestmod=hashlib.sha1)
    mac.update(data.encode("utf-8"))
    return base64.standard_b64encode(mac.digest()).decode("ascii")


def test_twilio_matches_the_published_example() -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert verify_twilio(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_twilio_matches_twilio_nodes_fixture() -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, NODE_PARAMS) == NODE_SIGNATURE


def test_twilio_matches_an_independent_reference() -> None:
    params = {"MessageSid": "SM1", "Body": "Stop texting me & <you>", "From": "+13055550133",
              "To": "+18005550100", "NumMedia": "0", "OptOutType": "STOP", "a": "lower sorts last"}
    url = "https://consentgate.example.com/v1/webhooks/sms/twilio?x=1&y=%20"
    assert twilio_signature("tok", url, params) == reference_twilio("tok", url, list(params.items()))


def test_twilio_signs_every_value_of_a_repeated_parameter_in_value_order() -> None:
    params: dict[str, str | list[str]] = {"MediaUrl": ["https://b.example/2", "https://a.example/1"],
                                          "Body": "hi"}
    pairs = [("MediaUrl", "https://b.example/2"), ("MediaUrl", "https://a.example/1"), ("Body", "hi")]
    expected = reference_twilio("tok", "https://x.example/hook", pairs)
    assert twilio_signature("tok", "https://x.example/hook", params) == expected
    assert verify_twilio("tok", "https://x.example/hook", params, expected)


def test_twilio_sorts_names_case_sensitively() -> None:
    """Upper case sorts before lower case, as Unix sort and Twilio do."""
    signature = twilio_signature("tok", "https://x.example/", {"b": "1", "B": "2", "a": "3"})
    assert signature == reference_twilio("tok", "https://x.example/", [("B", "2"), ("a", "3"), ("b", "1")])


def test_twilio_accepts_the_url_with_or_without_the_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    signed_with_port = twilio_signature(DOC_TOKEN, with_port, DOC_PARAMS)
    assert verify_twilio(DOC_TOKEN, DOC_URL, DOC_PARAMS, signed_with_port)
    assert verify_twilio(DOC_TOKEN, with_port, DOC_PARAMS, DOC_SIGNATURE)
    http = "http://mycompany.com/myapp.php"
    assert verify_twilio(DOC_TOKEN, http, DOC_PARAMS,
                         twilio_signature(DOC_TOKEN, "http://mycompany.com:80/myapp.php", DOC_PARAMS))


def test_twilio_does_not_treat_another_port_as_the_default() -> None:
    signed = twilio_signature(DOC_TOKEN, "https://mycompany.com:8443/myapp.php?foo=1&bar=2", DOC_PARAMS)
    assert not verify_twilio(DOC_TOKEN, DOC_URL, DOC_PARAMS, signed)
    assert not verify_twilio(DOC_TOKEN, "https://mycompany.com:80/myapp.php?foo=1&bar=2", DOC_PARAMS,
                             DOC_SIGNATURE)


@pytest.mark.parametrize("token, url, params, signature", [
    ("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),                               # another account
    (DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE),       # altered parameter
    (DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Extra": ""}, DOC_SIGNATURE),            # added parameter
    (DOC_TOKEN, "https://mycompany.com/myapp.php", DOC_PARAMS, DOC_SIGNATURE),   # query string dropped
    (DOC_TOKEN, DOC_URL.replace("https", "http"), DOC_PARAMS, DOC_SIGNATURE),    # other scheme
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE[:-2]),                        # truncated
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, ""),                                        # missing header
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, "sïgnature"),                               # non-ASCII garbage
    ("", DOC_URL, DOC_PARAMS, twilio_signature("", DOC_URL, DOC_PARAMS)),        # no token configured
    (DOC_TOKEN, "https://mycompany.com:port/x", DOC_PARAMS, DOC_SIGNATURE),      # unparseable port
])
def test_twilio_refuses(token: str, url: str, params: dict[str, str], signature: str) -> None:
    assert verify_twilio(token, url, params, signature) is False


# --- Telnyx -------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
BODY = b'{"data":{"event_type":"message.received","payload":{"text":"STOP"}}}'


def telnyx_headers(key: SigningKey, body: bytes, at: datetime) -> tuple[str, str]:
    stamp = str(int(at.timestamp()))
    signature = key.sign(stamp.encode() + b"|" + body).signature
    return base64.b64encode(signature).decode(), stamp


@pytest.fixture
def telnyx_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def telnyx_public(telnyx_key: SigningKey) -> str:
    return base64.b64encode(bytes(telnyx_key.verify_key)).decode()


def test_telnyx_accepts_a_fresh_signed_event(telnyx_key: SigningKey, telnyx_public: str) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW - timedelta(seconds=30))
    assert verify_telnyx(telnyx_public, signature, stamp, BODY, NOW) is True


def test_telnyx_accepts_the_edges_of_the_tolerance(telnyx_key: SigningKey, telnyx_public: str) -> None:
    for offset in (-300, 300):
        signature, stamp = telnyx_headers(telnyx_key, BODY, NOW + timedelta(seconds=offset))
        assert verify_telnyx(telnyx_public, signature, stamp, BODY, NOW, tolerance_s=300)


def test_telnyx_refuses_a_tampered_body(telnyx_key: SigningKey, telnyx_public: str) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW)
    assert verify_telnyx(telnyx_public, signature, stamp, BODY.replace(b"STOP", b"HELP"), NOW) is False


def test_telnyx_refuses_another_key(telnyx_key: SigningKey) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW)
    other = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    assert verify_telnyx(other, signature, stamp, BODY, NOW) is False


def test_telnyx_refuses_a_timestamp_it_did_not_sign(telnyx_key: SigningKey, telnyx_public: str) -> None:
    signature, _ = telnyx_headers(telnyx_key, BODY, NOW)
    assert verify_telnyx(telnyx_public, signature, str(int(NOW.timestamp()) + 1), BODY, NOW) is False


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_telnyx_refuses_stale_or_future_timestamps(telnyx_key: SigningKey, telnyx_public: str,
                                                   offset: int) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW + timedelta(seconds=offset))
    assert verify_telnyx(telnyx_public, signature, stamp, BODY, NOW) is False


@pytest.mark.parametrize("field, value", [
    ("public_key", "not base64!"),
    ("public_key", base64.b64encode(b"short").decode()),
    ("public_key", ""),
    ("signature", "%%%"),
    ("signature", base64.b64encode(b"x" * 63).decode()),
    ("signature", ""),
    ("signature", "sïg"),
    ("timestamp", ""),
    ("timestamp", "soon"),
    ("timestamp", "+1795712400"),
    ("timestamp", " 1795712400"),
    ("timestamp", "\u0661\u0667\u0669\u0665"),  # Arabic-Indic digits: int() reads them, Telnyx never does
    ("timestamp", "9" * 40),
])
def test_telnyx_answers_false_to_garbage(telnyx_key: SigningKey, telnyx_public: str, field: str,
                                         value: str) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW)
    args = {"public_key": telnyx_public, "signature": signature, "timestamp": stamp, field: value}
    assert verify_telnyx(args["public_key"], args["signature"], args["timestamp"], BODY, NOW) is False


def test_telnyx_reads_a_naive_now_as_utc(telnyx_key: SigningKey, telnyx_public: str) -> None:
    signature, stamp = telnyx_headers(telnyx_key, BODY, NOW)
    assert verify_telnyx(telnyx_public, signature, stamp, BODY, NOW.replace(tzinfo=None))


# --- Generic ------------------------------------------------------------------------------------

RAW = b'{"from":"+13055550133","to":"+18005550100","text":"quit","message_id":"g-1"}'


def test_generic_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    expected = "sha256=" + hmac.new(b"s3cret", RAW, hashlib.sha256).hexdigest()
    assert generic_signature("s3cret", RAW) == expected
    assert verify_generic("s3cret", RAW, expected)


def test_generic_tolerates_upper_case_hex_and_surrounding_space() -> None:
    signature = generic_signature("s3cret", RAW)
    assert verify_generic("s3cret", RAW, "  SHA256=" + signature.removeprefix("sha256=").upper() + " ")


@pytest.mark.parametrize("secret, body, header", [
    ("s3cret", RAW + b" ", generic_signature("s3cret", RAW)),       # body changed after signing
    ("other", RAW, generic_signature("s3cret", RAW)),               # another secret
    ("s3cret", RAW, generic_signature("s3cret", RAW).removeprefix("sha256=")),  # no scheme
    ("s3cret", RAW, "sha1=" + hmac.new(b"s3cret", RAW, hashlib.sha1).hexdigest()),
    ("s3cret", RAW, "sha256=" + "0" * 64),
    ("s3cret", RAW, ""),
    ("s3cret", RAW, "sha256=ünïcode"),
    ("", RAW, generic_signature("", RAW)),                          # no secret configured
])
def test_generic_refuses(secret: str, body: bytes, header: str) -> None:
    assert verify_generic(secret, body, header) is False


# --- Outbound -----------------------------------------------------------------------------------

TS = 1_795_712_400
PAYLOAD = b'{"event":"revocation.created","revocation_id":7}'


def test_outbound_header_is_timestamp_and_hmac_of_timestamp_dot_body() -> None:
    mac = hmac.new(b"downstream", f"{TS}.".encode() + PAYLOAD, hashlib.sha256).hexdigest()
    assert sign_outbound("downstream", TS, PAYLOAD) == f"t={TS},v1={mac}"


def test_outbound_verifies_what_it_signs() -> None:
    header = sign_outbound("downstream", TS, PAYLOAD)
    assert verify_outbound("downstream", header, PAYLOAD)
    assert verify_outbound("downstream", header, PAYLOAD, now=datetime.fromtimestamp(TS + 299, UTC))


def test_outbound_accepts_any_of_several_v1_entries() -> None:
    """A sender rotating its secret signs with both; either one is enough."""
    old = sign_outbound("old-secret", TS, PAYLOAD).split(",")[1]
    header = f"{sign_outbound('new-secret', TS, PAYLOAD)}, {old}, v2=future-scheme"
    assert verify_outbound("old-secret", header, PAYLOAD)
    assert verify_outbound("new-secret", header, PAYLOAD)


@pytest.mark.parametrize("secret, header, body, now", [
    ("other", sign_outbound("downstream", TS, PAYLOAD), PAYLOAD, None),
    ("downstream", sign_outbound("downstream", TS, PAYLOAD), PAYLOAD + b"\n", None),
    ("downstream", sign_outbound("downstream", TS, PAYLOAD).replace(f"t={TS}", f"t={TS + 1}"), PAYLOAD, None),
    ("downstream", sign_outbound("downstream", TS, PAYLOAD), PAYLOAD, datetime.fromtimestamp(TS + 301, UTC)),
    ("downstream", sign_outbound("downstream", TS, PAYLOAD), PAYLOAD, datetime.fromtimestamp(TS - 301, UTC)),
    ("downstream", sign_outbound("downstream", TS, PAYLOAD).split(",")[1], PAYLOAD, None),   # no t=
    ("downstream", f"t={TS},t={TS}," + sign_outbound("downstream", TS, PAYLOAD).split(",")[1], PAYLOAD, None),
    ("downstream", f"t=soon,v1={'0' * 64}", PAYLOAD, None),
    ("downstream", "", PAYLOAD, None),
    ("downstream", "garbage", PAYLOAD, None),
    ("downstream", f"t={TS},v1=ü", PAYLOAD, None),
    ("", sign_outbound("", TS, PAYLOAD), PAYLOAD, None),
])
def test_outbound_refuses(secret: str, header: str, body: bytes, now: datetime | None) -> None:
    assert verify_outbound(secret, header, body, now=now) is False
